"""The VM against the compiled C kernels, in one run.

    python bench/vm.py            # the full table (about a minute)
    python bench/vm.py --quick    # fewer repeats
    python bench/vm.py --direct-stores   # only: the VM with and without direct stores
    python bench/vm.py --shared-registers   # only: its temporaries unshared and shared
    python bench/vm.py --code-passes   # only: without and with fused operands and tiles
    python bench/vm.py --memory   # only: bytes per half-edge, the VM against the kernels

1. Step time, single thread: the VM and the gcc kernel of the same rule,
   stepped K steps in one call (so Python's per-call cost is amortized), on
   graphs of 7 nodes (layered:2,4,1), 50 nodes, 1,000 nodes and 2^20
   half-edges, for the example rules and for 40 random rules (20 with --quick): the
   median and largest ratio, and how many are within 2x.
2. Getting a new rule ready to run: VM translation against a gcc compile
   (cold cache), per rule.
3. Random rules evaluated on XOR with rulec.learning.evaluate (20 epochs):
   rules per second with the VM and with gcc, each rule's translation or
   compile included (into an empty cache; the VM and the driver, built once
   per cache, are built before the clock starts).
4. Full-budget XOR evaluations per CPU-second (100 epochs, no early stop): the
   C protocol driver on the VM and on gcc kernels, against the Python
   protocol driver (engine='python') on the same rule, the VM with 8,
   32 and 64 seeds side by side as lanes, and the C kernels with 64 seeds
   in one call (learning.evaluate_seeds).
5. Memory: as --memory below.

--direct-stores: the example rules translated with and without the pass
that stores a slot straight into its register (docs/vm.md), their
instruction counts, and their step times alternated in this process.

--code-passes: the example rules on the VM with none of its code passes
(the quick tier, translate(optimize=False): no dead code or dead-store
removal, direct stores, hoisting, fused operands, masked draws or tiles)
and as it runs now, with the gcc kernel, alternated in this process (VM /
C step-time ratios, and the workspace in bytes per half-edge on 2^20
half-edges).

--memory (also the end of the full table): on 2^20 half-edges, the bytes
per half-edge each backend holds for the example rules: the state, the
graph arrays its code reads (row_ptr, nbr and degree, and rev, eid or
edge_half where read), and for the VM its registers (the workspace, and the
built-ins and constants it keeps on the half-edges); the kernels' spare
buffers (a second copy of each slot a block writes, while a call runs) as
their peak.

--shared-registers: on 2^20 half-edges, the example rules with an array per
temporary and with temporaries that are never live at once sharing one
(docs/vm.md): bytes per half-edge, and step times alternated in this
process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import rulec
from rulec import graphs
from rulec import learning as tasks
from rulec.backends.vm.translate import translate
from rulec.generate import Options, SeededSource, rule

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
LANES = (8, 32, 64)  # seeds side by side in part 4 (learning.evaluate_seeds)
NAMES = ("hebbian", "diffusion", "oja", "backprop", "flow")  # the examples measured


def example_texts() -> dict[str, str]:
    """The text of each example of NAMES."""
    return {n: open(os.path.join(EXAMPLES, f"{n}.rule")).read() for n in NAMES}


def register_bytes(compiled: rulec.Rule, graph: rulec.Graph) -> int:
    """The bytes of a VM rule's registers on `graph` beyond its state: the
    workspace, and the built-ins and constants it keeps (as laid out now:
    native.SHARE_BYTES and TILE_ELEMENTS decide)."""
    from rulec.backends.vm import native

    layout = native._Layout(compiled.runner.blocks.vm, graph, compiled.runner.blocks.ffi)
    return layout.workspace_floats * 4 + sum(a.nbytes for a in layout.keep
                                             if isinstance(a, np.ndarray))


def step_seconds(compiled: rulec.Rule, graph: rulec.Graph, steps: int, repeats: int) -> float:
    state = compiled.state(graph)
    rng = np.random.default_rng(0)
    for _, _, array in state.slots():
        array[...] = rng.normal(size=array.size).astype(np.float32) * 0.1
    compiled.step(state, steps=1)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compiled.step(state, steps=steps)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def big_graph() -> rulec.Graph:
    """The large graph of every part: ~2^20 half-edges."""
    return graphs.erdos_renyi(1 << 16, 16 / (1 << 16), seed=1)


def graph_set(quick: bool) -> dict[str, tuple[rulec.Graph, int]]:
    """name -> (graph, steps per call)."""
    big = big_graph()
    return {
        "7 nodes": (graphs.layered([2, 4, 1]), 20000 if not quick else 5000),
        "50 nodes": (graphs.erdos_renyi(50, 0.2, seed=1), 5000 if not quick else 1000),
        "1,000 nodes": (graphs.erdos_renyi(1000, 0.01, seed=1), 500 if not quick else 100),
        f"2^20 half-edges ({big.n_half_edges})": (big, 10 if not quick else 3),
    }


def direct_stores(quick: bool) -> None:
    """The VM with its direct-store pass and without it, alternated."""
    import importlib

    module = importlib.import_module("rulec.backends.vm.translate")
    names, texts = NAMES, example_texts()
    new = {n: rulec.compile(texts[n], backend="vm") for n in names}
    kept = module._direct_stores
    module._direct_stores = lambda code, pending: code
    try:  # a comment makes another rule: no cached translation is reused
        old = {n: rulec.compile(texts[n] + "\n# without\n", backend="vm") for n in names}
    finally:
        module._direct_stores = kept
    print("instructions, without -> with: " + ", ".join(
        f"{n} {old[n].runner.blocks.vm.instructions} -> {new[n].runner.blocks.vm.instructions}"
        for n in names))
    print("step time without -> with (microseconds, medians of 3 alternated runs):")
    for graph_name, (graph, steps) in graph_set(quick).items():
        row = []
        for n in names:
            a, b = [], []
            for _ in range(3):
                a.append(step_seconds(old[n], graph, steps, 3))
                b.append(step_seconds(new[n], graph, steps, 3))
            ta, tb = statistics.median(a), statistics.median(b)
            row.append(f"{n} {ta * 1e6:.2f} -> {tb * 1e6:.2f} ({ta / tb:.2f}x)")
        print(f"  {graph_name}: " + "; ".join(row))


def shared_registers(quick: bool) -> None:
    """The VM's registers with an array per temporary and shared, alternated."""
    from rulec.backends.vm import native

    graph = big_graph()
    half_edges = graph.n_half_edges
    names = NAMES
    saved = native.SHARE_BYTES
    print(f"{half_edges} half-edges; bytes per half-edge and ms per step, "
          "an array per temporary -> shared (medians of 3 alternated runs)")
    try:
        for name in names:
            text = open(os.path.join(EXAMPLES, f"{name}.rule")).read()
            sizes, times = [], [[], []]
            for rep in range(3):
                for which, share in enumerate((1 << 62, 0)):  # never, always
                    native.SHARE_BYTES = share
                    # a comment makes a new rule: its own registers
                    rule = rulec.compile(text + f"\n# {rep} {which}\n", backend="vm")
                    times[which].append(step_seconds(rule, graph, 3 if quick else 5, 3))
                    if rep == 0:
                        sizes.append(register_bytes(rule, graph) / half_edges)
            before, after = (statistics.median(t) for t in times)
            print(f"  {name:<10} registers {sizes[0]:5.1f} -> {sizes[1]:5.1f} B; "
                  f"step {before * 1e3:6.2f} -> {after * 1e3:6.2f} ms ({before / after:.2f}x)")
    finally:
        native.SHARE_BYTES = saved


def code_passes(quick: bool) -> None:
    """The VM without any of its code passes and with them all, against the
    gcc kernel, alternated (ratios of medians)."""
    from rulec.backends.vm import native
    from rulec.backends.vm.backend import VMBackend

    names, texts = NAMES, example_texts()
    saved = native.TILE_ELEMENTS
    # the quick translation (optimize=False) is the VM's code with no pass run
    old = {n: rulec.Rule(p, "vm", native=VMBackend(p, optimize=False))
           for n, p in ((n, rulec.compile(texts[n], backend="numpy").program) for n in names)}
    new = {n: rulec.compile(texts[n], backend="vm") for n in names}
    c = {n: rulec.compile(texts[n], backend="c") for n in names}
    print("instructions per step of update, before -> now: " + ", ".join(
        f"{n} {len(old[n].runner.blocks.vm.blocks['update'].step)} -> "
        f"{len(new[n].runner.blocks.vm.blocks['update'].step)}" for n in names))
    print("VM / C step time, before -> now (medians of 3 alternated runs):")
    rounds = 3
    for graph_name, (graph, steps) in graph_set(quick).items():
        if graph_name.startswith("1,000"):
            continue
        row = []
        for n in names:
            ratios = [[], []]
            for _ in range(rounds):
                t_c = step_seconds(c[n], graph, steps, 3)
                native.TILE_ELEMENTS = 1 << 62  # before: whole arrays
                ratios[0].append(step_seconds(old[n], graph, steps, 3) / t_c)
                native.TILE_ELEMENTS = saved
                ratios[1].append(step_seconds(new[n], graph, steps, 3) / t_c)
            a, b = (statistics.median(r) for r in ratios)
            row.append(f"{n} {a:.2f} -> {b:.2f}")
        print(f"  {graph_name}: " + "; ".join(row))
    graph = next(g for name, (g, _) in graph_set(True).items() if name.startswith("2^20"))
    row = []
    for n in names:
        sizes = []
        for compiled, tile in ((old[n], 1 << 62), (new[n], saved)):
            native.TILE_ELEMENTS = tile
            sizes.append(register_bytes(compiled, graph) / graph.n_half_edges)
        native.TILE_ELEMENTS = saved
        row.append(f"{n} {sizes[0]:.1f} -> {sizes[1]:.1f}")
    print("registers beyond the state on 2^20 half-edges, bytes per half-edge: "
          + "; ".join(row))


def memory() -> None:
    """Bytes per half-edge on 2^20 half-edges: the VM against the kernels."""
    from rulec import ir
    from rulec.backends.views import graph_view_bytes

    graph = big_graph()
    h = graph.n_half_edges
    print(f"  {h} half-edges; bytes per half-edge: state + graph arrays (+ the VM's registers) "
          "-> total; the kernels' peak adds a second copy of each slot a block writes")
    for name, text in example_texts().items():
        vm = rulec.compile(text, backend="vm")
        program = vm.program
        state = vm.state(graph)
        slots = sum(array.nbytes for _, _, array in state.slots())
        registers = register_bytes(vm, graph)
        vm_total = slots + graph_view_bytes(graph, vm.runner.blocks.graph_needs) + registers
        c_total = slots + graph_view_bytes(graph, ir.graph_arrays(program))
        written = {slot for block in program.blocks for slot in ir.written_slots(block.statements)}
        spare = sum(array.nbytes for kind, slot, array in state.slots()
                    if (kind, slot) in written)
        print(f"    {name:<10} state {slots / h:5.1f}  vm registers {registers / h:5.1f}  "
              f"vm {vm_total / h:5.1f}  c {c_total / h:5.1f} (peak {(c_total + spare) / h:5.1f})  "
              f"ratio {vm_total / c_total:4.2f} ({vm_total / (c_total + spare):4.2f} to the "
              "peak)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--direct-stores", action="store_true",
                        help="only compare the VM with and without its direct-store pass")
    parser.add_argument("--shared-registers", action="store_true",
                        help="only compare the VM's registers unshared and shared, 2^20 "
                             "half-edges")
    parser.add_argument("--code-passes", action="store_true",
                        help="only compare the VM without and with fused operands, hoisting, "
                             "dead stores and tiles")
    parser.add_argument("--memory", action="store_true",
                        help="only the bytes per half-edge of the VM and the kernels")
    args = parser.parse_args()
    if args.memory:
        memory()
        return
    if args.direct_stores:
        direct_stores(args.quick)
        return
    if args.shared_registers:
        shared_registers(args.quick)
        return
    if args.code_passes:
        code_passes(args.quick)
        return
    repeats = 3 if args.quick else 5
    print(f"rulec {rulec.__version__}; one thread; times are medians of {repeats} runs\n")

    print("1. Step time: VM / gcc kernel (microseconds per step)")
    names, rules = NAMES, example_texts()
    randoms = [r for r in (rule(SeededSource(s), Options(max_depth=3)) for s in range(200))
               if "update" in r.program.block_labels][:20 if args.quick else 40]
    for graph_name, (graph, steps) in graph_set(args.quick).items():
        print(f"  {graph_name}:")
        for name, text in rules.items():
            vm = rulec.compile(text, backend="vm")
            c = rulec.compile(text, backend="c")
            t_vm = step_seconds(vm, graph, steps, repeats)
            t_c = step_seconds(c, graph, steps, repeats)
            print(f"    {name:<10} vm {t_vm * 1e6:10.2f}  c {t_c * 1e6:10.2f}  "
                  f"ratio {t_vm / t_c:6.2f}")
        ratios = []
        for generated in randoms:
            vm = rulec.Rule(generated.program, "vm")
            c = rulec.Rule(generated.program, "c")
            ratios.append(step_seconds(vm, graph, steps // 4 or 1, repeats)
                          / step_seconds(c, graph, steps // 4 or 1, repeats))
        within = sum(r <= 2.0 for r in ratios)
        print(f"    random rules ({len(ratios)}): ratio median {statistics.median(ratios):.2f}, "
              f"max {max(ratios):.2f}; within 2x: {within} ({within / len(ratios):.0%})")

    print("\n2. A new rule ready to run (ms per rule)")
    fresh = [rule(SeededSource(1000 + s), Options()) for s in range(200)]
    start = time.perf_counter()
    for generated in fresh:
        translate(generated.program)
    per_translate = (time.perf_counter() - start) / len(fresh)
    with tempfile.TemporaryDirectory() as cache:
        saved = os.environ.get("RULEC_CACHE_DIR")
        os.environ["RULEC_CACHE_DIR"] = cache
        try:
            start = time.perf_counter()
            for generated in fresh[:10]:
                rulec.Rule(generated.program, "c")
            per_compile = (time.perf_counter() - start) / 10
            start = time.perf_counter()
            rulec.compile_many([g.program for g in fresh[10:110]])
            per_batch = (time.perf_counter() - start) / 100
        finally:
            if saved is None:
                del os.environ["RULEC_CACHE_DIR"]
            else:
                os.environ["RULEC_CACHE_DIR"] = saved
    print(f"  VM translation {per_translate * 1e3:.2f}; gcc one rule {per_compile * 1e3:.1f}; "
          f"gcc batch of 100 {per_batch * 1e3:.1f}")

    print("\n3. Random rules on XOR (layered:2,4,1, 20 epochs, rulec.learning.evaluate)")
    task, topology = tasks.TASKS["xor"], tasks.layered([2, 4, 1])
    names = ("inp", "is_in", "target", "train", "a", "ready", "dready", "h")
    options = Options(node_names=names, node_slots=(7, 8))
    candidates = [rule(SeededSource(50_000 + s), options) for s in range(30 if args.quick else 60)]
    warm = ("node inp, is_in, target, train, a, ready, dready\n"
            "update {\n    a = inp\n    ready = 1\n    dready = 1\n}\n")
    for backend in ("vm", "c"):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["RULEC_CACHE_DIR"] = cache
            # the VM and the protocol driver are built once per cache, not per
            # rule: built here first, so only each rule's own cost is timed
            tasks.evaluate(rulec.compile(warm, backend=backend), task, topology, epochs=1)
            failures: dict[str, int] = {}
            start = time.perf_counter()
            steps = 0
            for generated in candidates:
                compiled = rulec.Rule(generated.program, backend)
                result = tasks.evaluate(compiled, task, topology, epochs=20, seed=1)
                steps += result.steps
                reason = (result.failure or "ran all epochs").split(":")[0][:40]
                failures[reason] = failures.get(reason, 0) + 1
            seconds = time.perf_counter() - start
            if saved is None:
                os.environ.pop("RULEC_CACHE_DIR", None)
            else:
                os.environ["RULEC_CACHE_DIR"] = saved
        print(f"  {backend}: {len(candidates) / seconds:7.1f} rules/s "
              f"({len(candidates)} rules, {steps / len(candidates):.0f} steps each on average)")
    print("  outcomes: " + "; ".join(f"{k}: {v}" for k, v in sorted(failures.items())))

    print("\n4. Full-budget evaluations on XOR (100 epochs, no early stop), per CPU-second "
          "of this process (the machine may be shared)")
    delta_fixed = ("param lr = 1\nnode inp, target, train, a, h\nedge w\n"
                   "init { w = 0.5 * gauss() }\nupdate {\n"
                   "    h = tanh(sum((w * nbr.inp)[incoming]))\n"
                   "    a = sigmoid(sum((w * nbr.h)[incoming]))\n"
                   "    w[incoming] -= train * lr * (a - target) * nbr.h\n}\n")
    cases = [("backprop.rule, handshake", rules["backprop"], tasks.Protocol()),
             ("a delta rule, fixed-time 2+2 steps", delta_fixed,
              tasks.FixedTime(forward=2, learn=2))]
    seconds = 1.0 if args.quick else 3.0
    for name, text, protocol in cases:
        line = []
        for backend, engine in (("vm", "c"), ("c", "c"), ("c", "python"), ("vm", "python")):
            compiled = rulec.compile(text, backend=backend)
            count = 0
            start, cpu = time.perf_counter(), time.process_time()
            while time.perf_counter() - start < seconds:
                result = tasks.evaluate(compiled, task, topology, protocol, epochs=100,
                                        seed=count, stop_at=None, engine=engine)
                count += 1
            rate = count / (time.process_time() - cpu)
            line.append(f"{backend}+{engine} driver {rate:8.1f}")
        # the same evaluations, seeds side by side as lanes of the VM, and 64
        # seeds in one call on the C kernels (a state each, one after another)
        for backend, widths in (("vm", LANES), ("c", (64,))):
            compiled = rulec.compile(text, backend=backend)
            for lanes in widths:
                count = 0
                start, cpu = time.perf_counter(), time.process_time()
                while time.perf_counter() - start < seconds:
                    tasks.evaluate_seeds(compiled, task, topology, protocol, epochs=100,
                                         seeds=range(count, count + lanes), stop_at=None)
                    count += lanes
                line.append(f"{backend} lanes x{lanes} "
                            f"{count / (time.process_time() - cpu):8.1f}")
        print(f"  {name}: {result.steps} steps; " + ", ".join(line))

    print("\n5. Memory")
    memory()


if __name__ == "__main__":
    main()
