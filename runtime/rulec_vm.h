/* rulec's VM: the layouts Python fills (through cffi, which reads this file)
 * and the functions it calls. See docs/vm.md. */
#ifndef RULEC_VM_H
#define RULEC_VM_H

#include "rulec_abi.h"

typedef struct rulec_vm_block {
    const int32_t *code;      /* n_code instructions of 5 int32: op, d, a, b, c */
    int32_t n_prologue;       /* the first n_prologue run once per call */
    int32_t n_code;
    uint32_t key;             /* the block's random-draw key */
    int32_t advance;          /* whether a step adds one to time */
    float *const *regs;       /* every register's array */
    const int32_t *domain;    /* per register: 0 nodes, 1 half-edges, 2 edges */
    int32_t n_slots;          /* registers 0..n_slots-1 are the state's slots */
    const uint8_t *written;   /* per slot register: 1 if a step writes it */
    /* per half-edge, the node that owns it, for operands read through it
       (fused operands, vm.c.j2), on a graph of at most SMALL_HALF_EDGES
       half-edges (native.py); NULL elsewhere: the VM fills a buffer per
       chunk of half-edges from row_ptr */
    const int32_t *owner;
    /* Tiles (a large graph, one state): n_tiles > 0 runs each step's first
       n_code - n_epilogue instructions over nodes tiles[t] .. tiles[t+1]-1
       (and their half-edges) for each t in turn, then the last n_epilogue
       over everything; local[r] is 1 for a register that holds only the
       current tile's elements. n_tiles 0: each step runs whole. */
    const int64_t *tiles;
    int32_t n_tiles;
    int32_t n_epilogue;
    const uint8_t *local;
} rulec_vm_block;

/* Run a block up to `steps` times; see vm.c.j2. */
int64_t rulec_vm_run(const rulec_graph *g, rulec_state *state, const float *params,
                     const rulec_vm_block *p, int64_t steps, int check_finite,
                     int32_t until_reg, const int32_t *until, int32_t n_until, int32_t *status);

/* The most lanes (copies of a state) one call runs side by side. */
enum { RULEC_VM_MAX_LANES = 64 };

/* Run a block on L lanes, registers lane-minor; see vm.c.j2. */
int64_t rulec_vm_run_lanes(const rulec_graph *g, int32_t L, const uint64_t *seeds,
                           uint64_t *times, const float *params, const rulec_vm_block *p,
                           int64_t steps, int32_t until_reg, const int32_t *until,
                           int32_t n_until, const uint8_t *active, int64_t *done,
                           int32_t *status);

int rulec_vm_version(void);

#endif /* RULEC_VM_H */
