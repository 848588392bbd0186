"""The VM as the runtime sees it: translation only, no compiler call per rule."""

from __future__ import annotations

from ..base import Backend, DriverBlocks
from .native import VMBlocks, temp_storage
from .translate import translate


class VMBackend(Backend):
    """The bytecode VM (rulec.backends.vm)."""

    name = "vm"
    reports_finite = True
    runs_until = True
    drives_protocol = True
    lanes = 64  # RULEC_VM_MAX_LANES

    def __init__(self, program, source: str | None = None, optimize: bool = True) -> None:
        """`optimize`: translate.translate's (False: quicker to make, the
        same results)."""
        super().__init__(program, source)
        self.optimize = optimize
        self.blocks = VMBlocks(translate(program, optimize))
        self._domain_counts: list[int] | None = None

    @property
    def last_status(self) -> str:
        return self.blocks.last_status

    def run(self, label, state, params, steps, threads=1, check_finite=False) -> int:
        return self.blocks.run(label, state, params, steps, threads, check_finite)

    def run_until(self, label, state, params, budget, slot, nodes, check_finite=False):
        """Step until node slot `slot` > 0 on `nodes`, in C."""
        return self.blocks.run_until(label, state, params, budget, slot, nodes, check_finite)

    def driver_blocks(self, state, labels) -> DriverBlocks:
        registers = self.blocks.registers(state)
        vm_run = self.blocks.ffi.addressof(self.blocks.lib, "rulec_vm_run")
        return DriverBlocks(vm=[registers.blocks[label] for label in labels], vm_run=vm_run,
                            graph_needs=self.blocks.graph_needs, keep=[registers])

    def lane_width(self, graph) -> int:
        """As many lanes as fit LANE_BYTES of registers: 64 on small graphs,
        one (seeds one after another) on large ones. Where 64 lanes would not
        fit, the registers are counted as lane registers that large lay them
        out: temporaries never live at once in one array (native.temp_storage)."""
        lengths = (graph.n_nodes, graph.n_half_edges, graph.n_edges)
        domains = self.blocks.vm.registers.domain
        counts = self._domain_counts
        if counts is None or counts[3] != len(domains):  # registers per domain (N, H, M)
            counts = self._domain_counts = [*(domains.count(d) for d in range(3)), len(domains)]
        per_lane = 4 * sum(c * max(n, 1) for c, n in zip(counts[:3], lengths, strict=True))
        if per_lane * self.lanes > self.LANE_BYTES:
            vm = self.blocks.vm
            owner = temp_storage(vm)
            per_lane = 4 * sum(max(lengths[d], 1)
                               for r, d in enumerate(vm.registers.domain) if owner[r] == r)
        return self._lanes_fitting(per_lane)

    def lane_blocks(self, graph, lanes: int):
        registers = self.blocks.lane_registers(graph, lanes)
        return (registers, self.blocks.ffi.addressof(self.blocks.lib, "rulec_vm_run_lanes"),
                self.blocks.graph_needs)
