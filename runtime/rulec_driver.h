/* rulec's protocol driver: the phases of a protocol and an evaluation's
 * layout, as Python fills them (through cffi, which reads this file: the
 * codes below are defined here only, and rulec.learning.driver reads them
 * from the library). See docs/vm.md. */
#ifndef RULEC_DRIVER_H
#define RULEC_DRIVER_H

#include "rulec_vm.h"

enum rulec_phase_op { RULEC_PHASE_WRITE = 0, RULEC_PHASE_RUN = 1, RULEC_PHASE_READ = 2 };
/* which examples a phase runs for: all, training ones, scoring ones */
enum rulec_phase_when { RULEC_WHEN_ALWAYS = 0, RULEC_WHEN_TRAIN = 1, RULEC_WHEN_TEST = 2 };
enum rulec_phase_nodes { RULEC_NODES_INPUTS = 0, RULEC_NODES_OUTPUTS = 1, RULEC_NODES_ALL = 2 };
/* what a write phase writes: its value, the example's input bits, its target
 * bits, or the error: the mean over the outputs of target - output, from the
 * example's last read, on the phase's nodes */
enum rulec_phase_source { RULEC_SOURCE_VALUE = 0, RULEC_SOURCE_INPUT = 1,
                          RULEC_SOURCE_TARGET = 2, RULEC_SOURCE_ERROR = 3 };
enum rulec_failure { RULEC_FAILED_NONE = 0, RULEC_FAILED_NON_FINITE = 1, RULEC_FAILED_BUDGET = 2,
                     RULEC_FAILED_OUTPUTS = 3 };

/* The VM's rulec_vm_run (rulec_vm.h), handed in by the VM backend: the driver
 * is built without the VM and calls it through this pointer. */
typedef int64_t (*rulec_vm_run_fn)(const rulec_graph *g, rulec_state *state, const float *params,
                                   const rulec_vm_block *p, int64_t steps, int check_finite,
                                   int32_t until_reg, const int32_t *until, int32_t n_until,
                                   int32_t *status);

typedef struct rulec_phase {
    int32_t op;       /* rulec_phase_op */
    int32_t when;     /* rulec_phase_when */
    int32_t slot;     /* write/read: node slot; run: the `until` slot, or -1 */
    int32_t nodes;    /* rulec_phase_nodes */
    int32_t source;   /* write: rulec_phase_source */
    float value;
    int32_t block;    /* run: block index, or -1 (an optional block the rule lacks) */
    int64_t steps;    /* run: steps, or the budget with `until` or `settle` */
    double settle;    /* run, > 0: step until a step moves node slot `watch` on `nodes`
                         by at most this much (the budget: steps) */
    int32_t watch;
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
    rulec_vm_run_fn vm_run;                    /* runs vm[b] (with vm) */
    const rulec_kernel *kernels;
    const uint8_t *kernel_writes;              /* with kernels, or NULL: n_blocks x slots (node,
                                                  edge, shared slots in order), 1 where
                                                  block b's steps write the slot */
    int32_t n_node_slots, n_edge_slots, n_shared_slots;
    /* results */
    double *accuracy;                          /* per epoch */
    double *loss;
    float *outputs;                            /* 2 x n_patterns x n_out: the last complete
                                                  epoch's outputs, then working rows */
    int32_t epochs_done;
    int64_t steps;
    int32_t failure;        /* rulec_failure */
    int32_t failed_phase;   /* the phase that failed */
    int64_t phase_steps;    /* steps that phase ran, the failing one included */
} rulec_evaluation;

/* The VM's rulec_vm_run_lanes (rulec_vm.h). */
typedef int64_t (*rulec_vm_run_lanes_fn)(const rulec_graph *g, int32_t L, const uint64_t *seeds,
                                         uint64_t *times, const float *params,
                                         const rulec_vm_block *p, int64_t steps,
                                         int32_t until_reg, const int32_t *until,
                                         int32_t n_until, const uint8_t *active, int64_t *done,
                                         int32_t *status);

/* One evaluation on each of L lanes at once (seeds side by side in the VM's
 * lane registers; see rulec_evaluate_lanes). The task, protocol, stop_at,
 * hold and vm of the rulec_evaluation are the lanes'; its per-run fields are
 * here, one per lane. e->epochs is the most epochs a lane runs. */
typedef struct rulec_lanes {
    int32_t n_lanes;
    rulec_vm_run_lanes_fn run;
    float *const *node;         /* the node slots' lane registers (n_nodes x L each) */
    rulec_state *const *states; /* or, for the C kernels (e->kernels; run and node
                                   unused): one state per lane, run one after another
                                   in the call, each lane's seed and time set in its
                                   state first and its time read back after */
    const uint64_t *seeds;      /* per lane */
    uint64_t *times;            /* per lane, in/out */
    const int32_t *epochs;      /* per lane: its epochs (<= e->epochs; 0: not run) */
    int32_t train;              /* 0: scoring passes only, no training pass */
    const int32_t *orders;      /* L x e->epochs x n_patterns */
    const int32_t *score_orders;
    double *accuracy, *loss;    /* L x e->epochs */
    float *outputs;             /* L x 2 x n_patterns x n_out, as e->outputs per lane */
    int32_t *epochs_done, *failure, *failed_phase;
    int32_t *streak;            /* in/out: epochs in a row at stop_at so far (a run
                                   in several calls carries it from call to call) */
    int64_t *steps, *phase_steps;
} rulec_lanes;

/* A whole evaluation of a rule on a task; see rulec_driver.c. */
int32_t rulec_evaluate(const rulec_graph *g, rulec_state *state, const float *params,
                       rulec_evaluation *e);

/* The same evaluation on every lane, on the VM; see rulec_driver.c. */
int32_t rulec_evaluate_lanes(const rulec_graph *g, const float *params, rulec_evaluation *e,
                             rulec_lanes *l);

/* `count` examples on each lane with epochs[s] > 0 (training ones if
 * l->train, else scoring ones): lane s's j-th is pattern orders[s * count +
 * j] (score_orders when scoring), its outputs into its working rows
 * (outputs + (2s + 1) * n_patterns * n_out, row = the pattern). No epochs
 * and no scoring: steps, failure, failed_phase and phase_steps per lane. */
int32_t rulec_examples_lanes(const rulec_graph *g, const float *params, rulec_evaluation *e,
                             rulec_lanes *l, int32_t count);

/* `count` shuffles of 0..n-1 into out (count x n), exactly as numpy's
 * Generator.permutation(n) draws them one after another, from the 32-bit
 * words of a bit generator's 64-bit outputs raw[0..n_raw) (the low half of
 * an output first), starting at word first_word (1: raw[0]'s low half was
 * used before). Fisher-Yates from the last element down, each index by
 * masked rejection. Returns the index of the first word not used, or -1 if
 * raw ran out (draw more and call again). */
int64_t rulec_permutations(const uint64_t *raw, int64_t n_raw, int64_t first_word, int32_t n,
                           int32_t count, int32_t *out);

#endif /* RULEC_DRIVER_H */
