"""A C module's kernels for one rule, called on states.

A call sets the state's time and seed in its C view, runs the kernel (the
time loop is in C) and reads the time back.
"""

from __future__ import annotations

from ... import ir
from ...state import State
from ..toolchain import ffi
from ..views import ParamArray, graph_view, run_chunked, state_view


class NativeBlocks:
    """The kernels of one rule, loaded from a (possibly shared) module."""

    def __init__(self, program: ir.Program, module, prefix: str) -> None:
        self.program = program
        self.module = module
        self.kernels = {label: module.kernel(prefix, label) for label in program.block_labels}
        self._params = ParamArray(ffi(), program)
        self.graph_needs = ir.graph_arrays(program)

    def run(self, label: str, state: State, params: dict[str, float], steps: int,
            threads: int = 1, check_finite: bool = False) -> int:
        """Run a block `steps` times; returns the steps run (fewer if check_finite
        stopped at a non-finite step). Long runs go in chunks (run_chunked),
        so Ctrl-C stops them promptly."""
        view = state_view(state, self.program)
        struct = view.struct
        struct.time = state.time
        struct.seed = state.seed
        kernel = self.kernels[label]
        graph = graph_view(state.graph, self.graph_needs).struct
        values = self._params(params)
        finite = 1 if check_finite else 0

        def call(n: int) -> int:
            done = kernel(graph, struct, values, n, threads, finite)
            if done < 0:
                raise MemoryError(f"out of memory running block {label!r} of rule "
                                  f"{self.program.name!r}")
            return done

        try:
            return run_chunked(call, steps)
        finally:
            state.time = int(struct.time)
