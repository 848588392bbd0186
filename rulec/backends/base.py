"""What every backend is: the base class the runtime (rulec.api) and the
protocol driver (rulec.learning.driver) talk to, with declared capabilities
and their defaults. A new backend subclasses Backend, implements `run`, sets
the capabilities it has, and is named in rulec.backends.REGISTRY.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DriverBlocks:
    """What the C protocol driver needs to run a rule's blocks: one entry per
    block label it was asked for, either C kernels (rulec_kernel) or VM
    blocks (rulec_vm_block *) with the VM's rulec_vm_run that runs them, the
    graph arrays they read, and objects to keep alive while the driver runs."""

    kernels: list | None = None
    kernel_writes: bytes | None = None  # with kernels: ir.slot_write_mask of the labels
    vm: list | None = None
    vm_run: object = None
    graph_needs: tuple = ()
    keep: list = field(default_factory=list)


class Backend:
    """Runs a checked rule's blocks on a state.

    Capabilities (class attributes; the defaults are what this class does):
      batched          `many(programs, sources)` prepares many rules in one go
                       (one compiler call) rather than one by one
      reports_finite   `run` sets `last_status` ('non-finite' when check_finite
                       stopped it), so the runtime need not scan the state
      runs_until       `run_until` loops in C (the default steps from Python)
      drives_protocol  `driver_blocks` hands the C protocol driver the blocks
      threaded         `run` splits a step's nodes over `threads` (others run one)
      batches_states   `run_many` runs many states of one graph in the same
                       calls (copies side by side), not one after another
      lanes            the most seeds the C protocol driver evaluates in one
                       call: side by side (`lane_blocks`), or with
                       `lane_states`, each its own state, one after another;
                       0: one call per seed
      lane_states      the lanes are states run one after another in the call
                       (learning.driver.StateLanes), not lane registers
    """

    name = ""
    batched = False
    reports_finite = False
    runs_until = False
    drives_protocol = False
    lane_states = False
    threaded = False
    batches_states = False
    lanes = 0
    #: where the states it runs may live (rulec.state.DEVICES)
    devices: tuple[str, ...] = ("cpu",)
    #: after run(): 'budget' (ran every step), 'reached' or 'non-finite'
    last_status = "budget"

    def __init__(self, program, source: str | None = None) -> None:
        self.program = program

    @classmethod
    def many(cls, programs, sources) -> list[Backend]:
        """Prepare every program (subclasses with `batched` do it at once)."""
        return [cls(p, s) for p, s in zip(programs, sources, strict=True)]

    def run(self, label: str, state, params: dict[str, float], steps: int, threads: int = 1,
            check_finite: bool = False) -> int:
        """Run block `label` `steps` times (time advances unless it is `init`);
        returns the steps run: fewer only when check_finite is set and a step
        left NaN or inf in the state (the state is then the one after it)."""
        raise NotImplementedError

    def run_many(self, label: str, states: list, params: list[dict[str, float]], steps: int,
                 check_finite: bool = False) -> list[int]:
        """run() on each state with its params; returns the steps each ran.
        Backends with `batches_states` run them all in the same calls."""
        return [self.run(label, state, values, steps, 1, check_finite)
                for state, values in zip(states, params, strict=True)]

    def run_until(self, label: str, state, params: dict[str, float], budget: int, slot: str,
                  nodes, check_finite: bool = False) -> tuple[int, str]:
        """Step until node slot `slot` > 0 at every one of `nodes` (tested before
        each step), at most `budget` steps. Returns (steps run, why it stopped:
        'budget', 'reached' or 'non-finite'). This default steps from Python."""
        values = state.node[slot]
        for done in range(budget):
            if (values[nodes] > 0).all():
                return done, "reached"
            self.run(label, state, params, 1, 1, check_finite)
            if check_finite and self.left_non_finite(state):
                return done + 1, "non-finite"
        return budget, "reached" if (values[nodes] > 0).all() else "budget"

    def left_non_finite(self, state) -> bool:
        """Whether the last run stopped at (or left) a non-finite state."""
        if self.reports_finite:
            return self.last_status == "non-finite"
        return not all(np.isfinite(array).all() for _, _, array in state.slots())

    def driver_blocks(self, state, labels: list[str]) -> DriverBlocks:
        """The blocks `labels` for the C protocol driver, on `state`
        (backends with drives_protocol)."""
        raise NotImplementedError(f"the {self.name} backend cannot run the C protocol driver")

    #: the lanes of one call take at most this much memory (bytes): their
    #: registers (the VM) or states (the C kernels)
    LANE_BYTES = 64 << 20

    def lane_width(self, graph) -> int:
        """The most lanes worth running side by side on `graph` (`lanes`,
        fewer where their registers would not fit in memory)."""
        return self.lanes

    def _lanes_fitting(self, per_lane: int) -> int:
        """As many lanes as fit LANE_BYTES at `per_lane` bytes each, 1 to
        `lanes`."""
        return max(1, min(self.lanes, self.LANE_BYTES // max(per_lane, 1)))

    def lane_blocks(self, graph, lanes: int):
        """(registers, run_lanes, graph_needs) for the C driver's lanes
        (backends with `lanes`): lane registers on `graph` with their lock
        taken, the address of the function that runs a block on them, and the
        graph arrays it reads."""
        raise NotImplementedError(f"the {self.name} backend does not run lanes")
