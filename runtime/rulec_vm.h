/* rulec's VM and protocol driver: the layouts Python fills (through cffi,
 * which reads this file) and the functions it calls. See docs/vm.md. */
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
} rulec_vm_block;

typedef struct rulec_phase {
    int32_t op;       /* 0 write, 1 run, 2 read */
    int32_t when;     /* 0 always, 1 training examples, 2 scoring examples */
    int32_t slot;     /* write/read: node slot; run: the `until` slot, or -1 */
    int32_t nodes;    /* 0 inputs, 1 outputs, 2 all nodes */
    int32_t source;   /* write: 0 value, 1 input bits, 2 target bits */
    float value;
    int32_t block;    /* run: block index, or -1 (an optional block the rule lacks) */
    int64_t steps;    /* run: steps, or the budget with `until` */
} rulec_phase;

typedef struct rulec_evaluation {
    /* the task and topology */
    int32_t n_patterns, n_in, n_out;
    const float *inputs, *targets;             /* n_patterns x n_in, n_patterns x n_out */
    const int32_t *input_nodes, *output_nodes; /* n_input_nodes, n_out */
    int32_t n_input_nodes;
    float threshold;
    /* the protocol */
    const rulec_phase *phases;
    int32_t n_phases;
    /* the run */
    int32_t epochs;
    const int32_t *orders;                     /* epochs x n_patterns: training order */
    const int32_t *score_orders;               /* epochs x n_patterns: scoring order */
    float stop_at;                             /* > 1: run every epoch */
    int32_t hold;                              /* stop after `hold` epochs in a row at stop_at */
    int32_t streak;                            /* in/out: epochs in a row at stop_at so far */
    const rulec_vm_block *const *vm;           /* per block, or NULL: use kernels */
    const rulec_kernel *kernels;
    int32_t n_node_slots, n_edge_slots, n_shared_slots;
    /* results */
    double *accuracy;                          /* per epoch */
    double *loss;
    float *outputs;                            /* 2 x n_patterns x n_out: the last complete
                                                  epoch's outputs, then working rows */
    int32_t epochs_done;
    int64_t steps;
    int32_t failure;        /* 0 none, 1 non-finite state, 2 budget exhausted, 3 outputs not finite */
    int32_t failed_phase;   /* the phase that failed */
    int64_t phase_steps;    /* steps that phase ran, the failing one included */
} rulec_evaluation;

/* Run a block up to `steps` times; see vm.c.j2. */
int64_t rulec_vm_run(const rulec_graph *g, rulec_state *state, const float *params,
                     const rulec_vm_block *p, int64_t steps, int check_finite,
                     int32_t until_reg, const int32_t *until, int32_t n_until, int32_t *status);

/* A whole evaluation of a rule on a task; see vm.c.j2. */
int32_t rulec_evaluate(const rulec_graph *g, rulec_state *state, const float *params,
                       rulec_evaluation *e);

int rulec_vm_version(void);

#endif /* RULEC_VM_H */
