/* rulec's protocol driver: a whole evaluation of a rule on a learning task
 * in one call (rulec.learning.driver; the Python reference is
 * rulec.learning.evaluate). A protocol is data: a list of phases
 * (rulec_driver.h) run for every example. Blocks run on the VM (vm[b],
 * through the VM's rulec_vm_run, handed in as e->vm_run) or as a C module's
 * kernels (kernels[b]). Built on its own and cached (docs/vm.md). */
#include <string.h>

#include "rulec_runtime.h"
#include "rulec_driver.h"

/* Whether every slot of the state with written[i] == which is finite (i
 * over the node, edge and shared slots in the state's order); written NULL:
 * every slot. */
static int rulec_state_finite(const rulec_graph *g, const rulec_state *state,
                              const rulec_evaluation *e, const uint8_t *written, int which)
{
    int finite = 1;
    int32_t s = 0;
    for (int32_t i = 0; i < e->n_node_slots; ++i, ++s)
        if (written == 0 || written[s] == which)
            finite &= rulec_all_finite(state->node[i], g->n_nodes);
    for (int32_t i = 0; i < e->n_edge_slots; ++i, ++s)
        if (written == 0 || written[s] == which)
            finite &= rulec_all_finite(state->edge[i], 2 * g->n_edges);
    for (int32_t i = 0; i < e->n_shared_slots; ++i, ++s)
        if (written == 0 || written[s] == which)
            finite &= rulec_all_finite(state->shared[i], g->n_edges);
    return finite;
}

/* Run block b up to `steps` times (until node slot `until` > 0 on `nodes`, if
 * until >= 0); returns the steps run; *status 0 all ran, 1 reached, 2 non-finite. */
static int64_t rulec_driver_run(const rulec_graph *g, rulec_state *state, const float *params,
                                const rulec_evaluation *e, int32_t b, int64_t steps,
                                int32_t until, const int32_t *nodes, int32_t n_nodes,
                                int32_t *status)
{
    if (e->vm != 0)
        return e->vm_run(g, state, params, e->vm[b], steps, 1, until, nodes,
                            until >= 0 ? n_nodes : 0, status);
    *status = 0;
    if (until < 0) {
        const int64_t done = e->kernels[b](g, state, params, steps, 1, 1);
        if (done < steps || !rulec_state_finite(g, state, e, 0, 0))
            *status = 2;
        return done;
    }
    /* Stepped one step at a time, so the slots block b's steps write are
       checked after every step; the others cannot change during this call,
       so they are checked once, and a non-finite value there fails the first
       step, as a check of every slot after every step would (the VM's
       rulec_vm_run does the same). */
    const int32_t n_slots = e->n_node_slots + e->n_edge_slots + e->n_shared_slots;
    const uint8_t *written = e->kernel_writes != 0 ? e->kernel_writes + (int64_t)b * n_slots : 0;
    const int unwritten_finite = written == 0 || rulec_state_finite(g, state, e, written, 0);
    int64_t done = 0;
    for (;;) {
        const float *values = state->node[until];
        int reached = 1;
        for (int32_t i = 0; i < n_nodes && reached; ++i)
            reached = values[nodes[i]] > 0.0f;
        if (reached) {
            *status = 1;
            return done;
        }
        if (done == steps)
            return done;
        /* one step, unchecked: the state is checked here, once (a kernel's
           check_finite cannot tell a last step that failed from one that did not) */
        const int64_t ran = e->kernels[b](g, state, params, 1, 1, 0);
        done += ran > 0 ? ran : 0;
        if (ran < 1 || !unwritten_finite || !rulec_state_finite(g, state, e, written, 1)) {
            *status = 2;
            return done;
        }
    }
}

/* The most nodes a settle phase watches without a heap buffer. */
#define RULEC_SETTLE_STACK 256

/* Run block b one step at a time until a step moves node slot `watch` on
 * `nodes` by at most `settle` (largest absolute change), at most `steps`
 * steps; returns the steps run; *status 1 settled, 0 budget, 2 non-finite. */
static int64_t rulec_driver_settle(const rulec_graph *g, rulec_state *state, const float *params,
                                   const rulec_evaluation *e, const rulec_phase *ph,
                                   const int32_t *nodes, int32_t n_nodes, int32_t *status)
{
    float stack[RULEC_SETTLE_STACK];
    float *before = n_nodes <= RULEC_SETTLE_STACK ? stack
                  : (float *)rulec_malloc(sizeof(float) * (size_t)n_nodes);
    int64_t done = 0;
    *status = 0;
    if (before == 0) {
        *status = 2;
        return 0;
    }
    while (done < ph->steps) {
        const float *values = state->node[ph->watch];  /* a kernel may swap buffers */
        for (int32_t i = 0; i < n_nodes; ++i) before[i] = values[nodes[i]];
        int32_t step_status = 0;
        done += rulec_driver_run(g, state, params, e, ph->block, 1, -1, nodes, 0, &step_status);
        if (step_status == 2) {
            *status = 2;
            break;
        }
        values = state->node[ph->watch];
        double moved = 0.0;
        for (int32_t i = 0; i < n_nodes; ++i) {
            const double change = (double)rulec_fabsf(values[nodes[i]] - before[i]);
            moved = change > moved ? change : moved;
        }
        if (moved <= ph->settle) {
            *status = 1;
            break;
        }
    }
    if (before != stack)
        rulec_free(before);
    return done;
}

/* A write phase for example k into `values`, element j at values[j *
 * stride] (a state's slot, stride 1, or one lane of lane registers);
 * `outputs`: the example's last read (for the error). */
static void rulec_driver_write(const rulec_graph *g, const rulec_evaluation *e,
                               const rulec_phase *ph, float *values, int64_t stride, int32_t k,
                               const float *outputs)
{
    if (ph->source == RULEC_SOURCE_INPUT) {
        for (int32_t j = 0; j < e->n_input_nodes; ++j)
            values[e->input_nodes[j] * stride] = j < e->n_in ? e->inputs[k * e->n_in + j] : 1.0f;
    } else if (ph->source == RULEC_SOURCE_TARGET) {
        for (int32_t j = 0; j < e->n_out; ++j)
            values[e->output_nodes[j] * stride] = e->targets[k * e->n_out + j];
    } else if (ph->source == RULEC_SOURCE_ERROR) {
        /* float sums in output order, as the Python reference adds them */
        float error = 0.0f;
        for (int32_t j = 0; j < e->n_out; ++j)
            error += e->targets[k * e->n_out + j] - outputs[j];
        error /= (float)e->n_out;
        for (int64_t j = 0; j < g->n_nodes; ++j) values[j * stride] = error;
    } else if (ph->nodes == RULEC_NODES_INPUTS) {
        for (int32_t j = 0; j < e->n_input_nodes; ++j) values[e->input_nodes[j] * stride] = ph->value;
    } else if (ph->nodes == RULEC_NODES_OUTPUTS) {
        for (int32_t j = 0; j < e->n_out; ++j) values[e->output_nodes[j] * stride] = ph->value;
    } else {
        for (int64_t j = 0; j < g->n_nodes; ++j) values[j * stride] = ph->value;
    }
}

/* One example: the phases in order; returns 0, or a failure code. */
static int32_t rulec_driver_example(const rulec_graph *g, rulec_state *state,
                                    const float *params, rulec_evaluation *e, int32_t k,
                                    int train, float *outputs)
{
    for (int32_t i = 0; i < e->n_phases; ++i) {
        const rulec_phase *ph = e->phases + i;
        if ((ph->when == RULEC_WHEN_TRAIN && !train) || (ph->when == RULEC_WHEN_TEST && train))
            continue;
        if (ph->op == RULEC_PHASE_WRITE) {
            rulec_driver_write(g, e, ph, state->node[ph->slot], 1, k, outputs);
        } else if (ph->op == RULEC_PHASE_READ) {
            const float *values = state->node[ph->slot];
            for (int32_t j = 0; j < e->n_out; ++j)
                outputs[j] = values[e->output_nodes[j]];
        } else if (ph->block >= 0) {
            const int32_t *nodes = ph->nodes == RULEC_NODES_INPUTS ? e->input_nodes : e->output_nodes;
            const int32_t n_nodes = ph->nodes == RULEC_NODES_INPUTS ? e->n_input_nodes : e->n_out;
            int32_t status = 0;
            const int settles = ph->settle > 0.0;
            const int64_t done = settles
                ? rulec_driver_settle(g, state, params, e, ph, nodes, n_nodes, &status)
                : rulec_driver_run(g, state, params, e, ph->block, ph->steps, ph->slot, nodes,
                                   n_nodes, &status);
            e->steps += done;
            if (status == 2 || ((ph->slot >= 0 || settles) && status != 1)) {
                e->failed_phase = i;
                e->phase_steps = done;
                return status == 2 ? RULEC_FAILED_NON_FINITE : RULEC_FAILED_BUDGET;
            }
        }
    }
    return 0;
}

/* One pass over the `count` patterns in `order` (training or scoring), each
 * example's outputs into its row of `work`; returns 0, or a failure code. */
static int32_t rulec_driver_pass(const rulec_graph *g, rulec_state *state, const float *params,
                                 rulec_evaluation *e, const int32_t *order, int32_t count,
                                 int train, float *work)
{
    for (int32_t p = 0; p < count; ++p) {
        const int32_t k = order[p];
        const int32_t failure = rulec_driver_example(g, state, params, e, k, train,
                                                     work + k * e->n_out);
        if (failure)
            return failure;
    }
    return 0;
}

/* An epoch's score from its outputs `work` (n_patterns x n_out): the share
 * of patterns right on every output, and the mean squared error; 0 if an
 * output is NaN or inf (the epoch fails), else 1. */
static int rulec_driver_score(const rulec_evaluation *e, const float *work, double *accuracy,
                              double *loss)
{
    const int32_t P = e->n_patterns, O = e->n_out;
    int correct = 0;
    double sum = 0.0;
    for (int32_t k = 0; k < P; ++k) {
        int ok = 1;
        for (int32_t j = 0; j < O; ++j) {
            const float out = work[k * O + j], want = e->targets[k * O + j];
            if (!(out - out == 0.0f))  /* NaN or inf */
                return 0;
            ok &= (out > e->threshold) == (want > 0.5f);
            const float diff = out - want;
            sum += (double)(diff * diff);
        }
        correct += ok;
    }
    *accuracy = (double)correct / (double)P;
    *loss = sum / (double)(P * O);
    return 1;
}

/* rulec_evaluate's epochs; with train 0, scoring passes only (no training
 * pass: the confirm passes). */
static int32_t rulec_driver_epochs(const rulec_graph *g, rulec_state *state,
                                   const float *params, rulec_evaluation *e, int train)
{
    const int32_t P = e->n_patterns, O = e->n_out;
    /* an epoch's outputs go to the working rows; a complete epoch's are kept
       in the first rows, so a failure leaves the last complete epoch's there
       (as the Python reference does) */
    float *const work = e->outputs + P * O;
    e->failure = 0;
    for (int32_t epoch = 0; epoch < e->epochs; ++epoch) {
        /* a training example's outputs are not scored: the scoring pass
           overwrites every row */
        int32_t failure = train ? rulec_driver_pass(g, state, params, e, e->orders + epoch * P,
                                                    P, 1, work)
                                : 0;
        if (!failure)
            failure = rulec_driver_pass(g, state, params, e, e->score_orders + epoch * P, P,
                                        0, work);
        if (failure) {
            e->failure = failure;
            return failure;
        }
        if (!rulec_driver_score(e, work, e->accuracy + epoch, e->loss + epoch)) {
            e->failure = RULEC_FAILED_OUTPUTS;
            return RULEC_FAILED_OUTPUTS;
        }
        memcpy(e->outputs, work, sizeof(float) * (size_t)(P * O));
        e->epochs_done = epoch + 1;
        e->streak = e->accuracy[epoch] >= e->stop_at ? e->streak + 1 : 0;
        if (e->streak >= e->hold)
            break;
    }
    return 0;
}

int32_t rulec_evaluate(const rulec_graph *g, rulec_state *state, const float *params,
                       rulec_evaluation *e)
{
    return rulec_driver_epochs(g, state, params, e, 1);
}

/* Lane s of l as a rulec_evaluation of its own (the run fields its own
 * part of l's arrays, E epochs apart), from e's task and protocol. */
static rulec_evaluation rulec_lane_evaluation(const rulec_evaluation *e, const rulec_lanes *l,
                                              int32_t s, int32_t epochs, int64_t E)
{
    const int64_t P = e->n_patterns, O = e->n_out;
    rulec_evaluation one = *e;
    one.epochs = epochs;
    one.orders = l->orders + s * E * P;
    one.score_orders = l->score_orders + s * E * P;
    one.accuracy = l->accuracy + s * E;
    one.loss = l->loss + s * E;
    one.outputs = l->outputs + s * 2 * P * O;
    one.streak = l->streak[s];
    one.epochs_done = 0;
    one.steps = 0;
    one.failure = one.failed_phase = 0;
    one.phase_steps = 0;
    return one;
}

/* rulec_evaluate_lanes and rulec_examples_lanes with l->states (the C
 * kernels, which have no lane registers): each lane is its own state, run
 * after the one before it in this call, as rulec_evaluate runs it; count
 * < 0: epochs, else `count` examples (rulec_examples_lanes). */
static int32_t rulec_states_run(const rulec_graph *g, const float *params, rulec_evaluation *e,
                                rulec_lanes *l, int32_t count)
{
    const int32_t P = e->n_patterns, O = e->n_out;
    for (int32_t s = 0; s < l->n_lanes; ++s) {
        l->epochs_done[s] = l->failure[s] = l->failed_phase[s] = 0;
        l->steps[s] = l->phase_steps[s] = 0;
        if (l->epochs[s] <= 0)
            continue;
        rulec_state *state = l->states[s];
        state->seed = l->seeds[s];
        state->time = l->times[s];
        rulec_evaluation one = count < 0 ? rulec_lane_evaluation(e, l, s, l->epochs[s], e->epochs)
                                         : rulec_lane_evaluation(e, l, s, 1, 0);
        if (count < 0) {
            rulec_driver_epochs(g, state, params, &one, l->train);
        } else {
            const int32_t *order = (l->train ? l->orders : l->score_orders)
                                 + (int64_t)s * count;
            one.failure = rulec_driver_pass(g, state, params, &one, order, count, l->train,
                                            l->outputs + ((int64_t)s * 2 + 1) * P * O);
        }
        l->times[s] = state->time;
        l->epochs_done[s] = one.epochs_done;
        l->failure[s] = one.failure;
        l->failed_phase[s] = one.failed_phase;
        l->phase_steps[s] = one.phase_steps;
        l->steps[s] = one.steps;
        l->streak[s] = one.streak;
    }
    return 0;
}

/* numpy's Generator.permutation(n), count times (rulec_driver.h) */
int64_t rulec_permutations(const uint64_t *raw, int64_t n_raw, int64_t first_word, int32_t n,
                           int32_t count, int32_t *out)
{
    int64_t used = first_word;  /* 32-bit words */
    for (int32_t c = 0; c < count; ++c) {
        int32_t *x = out + (int64_t)c * n;
        for (int32_t i = 0; i < n; ++i) x[i] = i;
        for (int32_t i = n - 1; i >= 1; --i) {
            uint32_t mask = (uint32_t)i;  /* the smallest 2^k - 1 >= i */
            mask |= mask >> 1;
            mask |= mask >> 2;
            mask |= mask >> 4;
            mask |= mask >> 8;
            mask |= mask >> 16;
            uint32_t j;
            do {
                if (used >= 2 * n_raw)
                    return -1;
                const uint64_t word = raw[used >> 1];
                j = ((used & 1) ? (uint32_t)(word >> 32) : (uint32_t)word) & mask;
                ++used;
            } while (j > (uint32_t)i);
            const int32_t keep = x[i];
            x[i] = x[j];
            x[j] = keep;
        }
    }
    return used;
}

/* ------------------------------------------------------------------ lanes
 * rulec_evaluate on L lanes at once, on the VM's lane registers: each lane
 * is one seed's evaluation (its own state, seed, time and orders), and the
 * lanes go through the same phases in lockstep, so one VM instruction
 * serves every lane. A lane that waits (it reached a phase's `until` before
 * the others, or it stopped: a failure, its goal held, its epochs done) is
 * frozen, so each lane's results are exactly what rulec_evaluate gives for
 * its seed alone: the same accuracies, losses, outputs, steps and failure. */

/* The write phase `ph` on every lane in `alive`, lane s at its example[s]. */
static void rulec_lanes_write(const rulec_graph *g, const rulec_evaluation *e,
                              const rulec_lanes *l, const rulec_phase *ph,
                              const uint8_t *alive, const int32_t *example)
{
    const int32_t L = l->n_lanes, P = e->n_patterns, O = e->n_out;
    for (int32_t s = 0; s < L; ++s) {
        if (!alive[s])
            continue;
        /* the example's last read, in its lane's working rows */
        const float *outputs = l->outputs + ((int64_t)s * 2 + 1) * P * O
                             + (int64_t)example[s] * O;
        rulec_driver_write(g, e, ph, l->node[ph->slot] + s, L, example[s], outputs);
    }
}

/* A settle phase (rulec_driver_settle) on the lanes in `alive`, one step at
 * a time: a lane that settled waits for the others; one that failed leaves
 * `alive`. */
static void rulec_lanes_settle(const rulec_graph *g, const float *params,
                               const rulec_evaluation *e, rulec_lanes *l, const rulec_phase *ph,
                               int32_t index, uint8_t *alive)
{
    const int32_t L = l->n_lanes;
    const int inputs = ph->nodes == RULEC_NODES_INPUTS;
    const int32_t *nodes = inputs ? e->input_nodes : e->output_nodes;
    const int32_t n_nodes = inputs ? e->n_input_nodes : e->n_out;
    const float *values = l->node[ph->watch];
    float stack[RULEC_SETTLE_STACK];
    const int64_t size = (int64_t)n_nodes * L;
    float *before = size <= RULEC_SETTLE_STACK ? stack
                  : (float *)rulec_malloc(sizeof(float) * (size_t)size);
    uint8_t waiting[RULEC_VM_MAX_LANES];
    int64_t taken[RULEC_VM_MAX_LANES], done[RULEC_VM_MAX_LANES];
    int32_t status[RULEC_VM_MAX_LANES];
    for (int32_t s = 0; s < L; ++s) {
        waiting[s] = alive[s];
        taken[s] = 0;
    }
    for (int64_t step = 0; step < ph->steps && before != 0; ++step) {
        int any = 0;
        for (int32_t s = 0; s < L; ++s)
            any |= waiting[s];
        if (!any)
            break;
        for (int32_t i = 0; i < n_nodes; ++i)
            for (int32_t s = 0; s < L; ++s)
                before[(int64_t)i * L + s] = values[(int64_t)nodes[i] * L + s];
        l->run(g, L, l->seeds, l->times, params, e->vm[ph->block], 1, -1, 0, 0, waiting, done,
               status);
        for (int32_t s = 0; s < L; ++s) {
            if (!waiting[s])
                continue;
            taken[s] += done[s];
            if (status[s] == 2) {
                l->failure[s] = RULEC_FAILED_NON_FINITE;
                l->failed_phase[s] = index;
                l->phase_steps[s] = taken[s];
                waiting[s] = alive[s] = 0;
                continue;
            }
            double moved = 0.0;
            for (int32_t i = 0; i < n_nodes; ++i) {
                const double change = (double)rulec_fabsf(values[(int64_t)nodes[i] * L + s]
                                                          - before[(int64_t)i * L + s]);
                moved = change > moved ? change : moved;
            }
            if (moved <= ph->settle)
                waiting[s] = 0;
        }
    }
    for (int32_t s = 0; s < L; ++s) {
        if (!alive[s] && !taken[s])
            continue;
        l->steps[s] += taken[s];
        if (waiting[s]) {  /* its budget ran out before it settled */
            l->failure[s] = before != 0 ? RULEC_FAILED_BUDGET : RULEC_FAILED_NON_FINITE;
            l->failed_phase[s] = index;
            l->phase_steps[s] = taken[s];
            alive[s] = 0;
        }
    }
    if (before != stack && before != 0)
        rulec_free(before);
}

/* `count` examples (training or scoring) on the lanes in `alive`, lane s's
 * j-th the pattern order[s * stride + j]; a lane that fails leaves `alive`. */
static void rulec_lanes_pass(const rulec_graph *g, const float *params, rulec_evaluation *e,
                             rulec_lanes *l, const int32_t *order, int64_t stride,
                             int32_t count, int train, uint8_t *alive)
{
    const int32_t L = l->n_lanes, P = e->n_patterns, O = e->n_out;
    int32_t example[RULEC_VM_MAX_LANES];
    int64_t done[RULEC_VM_MAX_LANES];
    int32_t status[RULEC_VM_MAX_LANES];
    for (int32_t p = 0; p < count; ++p) {
        int any = 0;
        for (int32_t s = 0; s < L; ++s) {
            example[s] = alive[s] ? order[s * stride + p] : 0;
            any |= alive[s];
        }
        if (!any)
            return;
        for (int32_t i = 0; i < e->n_phases; ++i) {
            const rulec_phase *ph = e->phases + i;
            if ((ph->when == RULEC_WHEN_TRAIN && !train) || (ph->when == RULEC_WHEN_TEST && train))
                continue;
            if (ph->op == RULEC_PHASE_WRITE) {
                rulec_lanes_write(g, e, l, ph, alive, example);
            } else if (ph->op == RULEC_PHASE_READ) {
                const float *values = l->node[ph->slot];
                for (int32_t s = 0; s < L; ++s) {
                    if (!alive[s])
                        continue;
                    float *row = l->outputs + ((int64_t)s * 2 + 1) * P * O
                               + (int64_t)example[s] * O;
                    for (int32_t j = 0; j < O; ++j)
                        row[j] = values[(int64_t)e->output_nodes[j] * L + s];
                }
            } else if (ph->block >= 0 && ph->settle > 0.0) {
                rulec_lanes_settle(g, params, e, l, ph, i, alive);
            } else if (ph->block >= 0) {
                const int inputs = ph->nodes == RULEC_NODES_INPUTS;
                const int32_t *nodes = inputs ? e->input_nodes : e->output_nodes;
                const int32_t n_nodes = inputs ? e->n_input_nodes : e->n_out;
                l->run(g, L, l->seeds, l->times, params, e->vm[ph->block], ph->steps, ph->slot,
                       nodes, ph->slot >= 0 ? n_nodes : 0, alive, done, status);
                for (int32_t s = 0; s < L; ++s) {
                    if (!alive[s])
                        continue;
                    l->steps[s] += done[s];
                    if (status[s] == 2 || (ph->slot >= 0 && status[s] != 1)) {
                        l->failure[s] = status[s] == 2 ? RULEC_FAILED_NON_FINITE
                                                       : RULEC_FAILED_BUDGET;
                        l->failed_phase[s] = i;
                        l->phase_steps[s] = done[s];
                        alive[s] = 0;
                    }
                }
            }
        }
    }
}

int32_t rulec_evaluate_lanes(const rulec_graph *g, const float *params, rulec_evaluation *e,
                             rulec_lanes *l)
{
    const int32_t L = l->n_lanes, P = e->n_patterns, O = e->n_out, E = e->epochs;
    if (L < 1 || L > RULEC_VM_MAX_LANES)
        return -1;
    if (l->states != 0)
        return e->kernels == 0 ? -1 : rulec_states_run(g, params, e, l, -1);
    if (e->vm == 0 || l->run == 0)
        return -1;
    uint8_t alive[RULEC_VM_MAX_LANES];
    for (int32_t s = 0; s < L; ++s) {
        alive[s] = l->epochs[s] > 0;
        l->epochs_done[s] = l->failure[s] = l->failed_phase[s] = 0;  /* streak: in/out */
        l->steps[s] = l->phase_steps[s] = 0;
    }
    for (int32_t epoch = 0; epoch < E; ++epoch) {
        int any = 0;
        for (int32_t s = 0; s < L; ++s) {
            alive[s] = alive[s] && epoch < l->epochs[s];
            any |= alive[s];
        }
        if (!any)
            break;
        if (l->train)
            rulec_lanes_pass(g, params, e, l, l->orders + (int64_t)epoch * P, (int64_t)E * P, P,
                             1, alive);
        rulec_lanes_pass(g, params, e, l, l->score_orders + (int64_t)epoch * P, (int64_t)E * P,
                         P, 0, alive);
        for (int32_t s = 0; s < L; ++s) {
            if (!alive[s])
                continue;
            float *kept = l->outputs + (int64_t)s * 2 * P * O;
            const float *work = kept + P * O;
            if (!rulec_driver_score(e, work, l->accuracy + (int64_t)s * E + epoch,
                                    l->loss + (int64_t)s * E + epoch)) {
                l->failure[s] = RULEC_FAILED_OUTPUTS;
                alive[s] = 0;
                continue;
            }
            memcpy(kept, work, sizeof(float) * (size_t)(P * O));
            l->epochs_done[s] = epoch + 1;
            const double accuracy = l->accuracy[(int64_t)s * E + epoch];
            l->streak[s] = accuracy >= e->stop_at ? l->streak[s] + 1 : 0;
            if (l->streak[s] >= e->hold)
                alive[s] = 0;
        }
    }
    return 0;
}

int32_t rulec_examples_lanes(const rulec_graph *g, const float *params, rulec_evaluation *e,
                             rulec_lanes *l, int32_t count)
{
    const int32_t L = l->n_lanes;
    if (L < 1 || L > RULEC_VM_MAX_LANES || count < 0)
        return -1;
    if (l->states != 0)
        return e->kernels == 0 ? -1 : rulec_states_run(g, params, e, l, count);
    if (e->vm == 0 || l->run == 0)
        return -1;
    uint8_t alive[RULEC_VM_MAX_LANES];
    for (int32_t s = 0; s < L; ++s) {
        alive[s] = l->epochs[s] > 0;
        l->failure[s] = l->failed_phase[s] = 0;
        l->steps[s] = l->phase_steps[s] = 0;
    }
    rulec_lanes_pass(g, params, e, l, l->train ? l->orders : l->score_orders, count, count,
                     l->train, alive);
    return 0;
}
