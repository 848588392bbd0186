"""Backends: what runs a checked rule's blocks on a state.

A backend is a class with

    __init__(program, source=None)   prepare a checked ir.Program (build, translate)
    run(label, state, params, steps, threads, check_finite) -> steps run

and optionally `run_until(label, state, params, budget, slot, nodes,
check_finite)` (step until a node slot is > 0 on `nodes`, in one call).
`run` runs block `label` `steps` times (time advances unless it is `init`)
and returns how many steps ran: fewer only when check_finite is set and a
step left NaN or inf in the state (the state is then the one after that
step). `Rule` dispatches through this registry with no backend branches; a
new backend is one new module registered here.

    numpy  the reference interpreter (rulec.reference), the definition
    c      SIMD C kernels built with the system compiler (rulec.native)
    vm     a bytecode VM in C, built once, no compiler call per rule
"""

from __future__ import annotations

from collections.abc import Callable


class ReferenceBackend:
    """The NumPy reference interpreter, one per graph (the last used is kept)."""

    name = "numpy"

    def __init__(self, program, source: str | None = None) -> None:
        self.program = program
        self._for: tuple = (None, None)

    def _interpreter(self, graph):
        from ..reference import Interpreter

        if self._for[0] is not graph:
            self._for = (graph, Interpreter(self.program, graph))
        return self._for[1]

    def run(self, label, state, params, steps, threads=1, check_finite=False) -> int:
        import numpy as np

        interpreter = self._interpreter(state.graph)
        advance = label != "init"
        if not check_finite:
            interpreter.run(label, state, params, steps, advance_time=advance)
            return steps
        for step in range(1, steps + 1):
            interpreter.run(label, state, params, 1, advance_time=advance)
            if not all(np.isfinite(array).all() for _, _, array in state.slots()):
                return step
        return steps


class CBackend:
    """SIMD C kernels (rulec.native); `prebuilt` passes kernels built by compile_many."""

    name = "c"

    def __init__(self, program, source: str | None = None, prebuilt=None) -> None:
        from ..native import compile_native

        self.native = prebuilt or compile_native([program], [source])[0]

    @classmethod
    def many(cls, programs, sources) -> list[CBackend]:
        """One shared object for every program: one compiler call."""
        from ..native import compile_native

        natives = compile_native(programs, sources)
        return [cls(p, None, prebuilt=n) for p, n in zip(programs, natives, strict=True)]

    def run(self, label, state, params, steps, threads=1, check_finite=False) -> int:
        return self.native.run(label, state, params, steps, threads, check_finite)


class VMBackend:
    """The bytecode VM (rulec.backends.vm): translation only, no compiler call."""

    name = "vm"

    def __init__(self, program, source: str | None = None) -> None:
        from .vm.native import VMBlocks
        from .vm.translate import translate

        self.blocks = VMBlocks(translate(program))

    #: run() reports whether check_finite stopped it (last_status), so Rule
    #: need not scan the state after every call
    reports_finite = True

    @property
    def last_status(self) -> str:
        return self.blocks.last_status

    def run(self, label, state, params, steps, threads=1, check_finite=False) -> int:
        return self.blocks.run(label, state, params, steps, threads, check_finite)

    def run_until(self, label, state, params, budget, slot, nodes, check_finite=False):
        """Optional in the protocol: step until node slot `slot` > 0 on `nodes`,
        in C; returns (steps run, 'budget' | 'reached' | 'non-finite')."""
        return self.blocks.run_until(label, state, params, budget, slot, nodes, check_finite)


#: name -> backend class
REGISTRY: dict[str, Callable] = {"c": CBackend, "numpy": ReferenceBackend, "vm": VMBackend}
BACKENDS = tuple(REGISTRY)
DEFAULT_BACKEND = "c"


def backend_class(name: str):
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(REGISTRY)}") from None
