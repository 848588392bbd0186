"""The C backend as the runtime sees it: SIMD C kernels built with the
system compiler (through rulec.backends.c.pipeline) and cached."""

from __future__ import annotations

from ... import ir
from ..base import Backend, DriverBlocks
from . import pipeline


class CBackend(Backend):
    """SIMD C kernels; `prebuilt` passes kernels built by `many`."""

    name = "c"
    batched = True
    drives_protocol = True
    threaded = True
    # seeds in one C driver call: a state per seed, run one after another
    # (learning.driver.StateLanes; the kernels have no lane registers)
    lanes = 64
    lane_states = True

    def __init__(self, program, source: str | None = None, prebuilt=None) -> None:
        super().__init__(program, source)
        self.native = prebuilt or pipeline.build([program], [source])[0]
        self._writes: dict[tuple, bytes] = {}

    @classmethod
    def many(cls, programs, sources) -> list[CBackend]:
        """One shared object for every program: one compiler call."""
        natives = pipeline.build(programs, sources)
        return [cls(p, None, prebuilt=n) for p, n in zip(programs, natives, strict=True)]

    def lane_width(self, graph) -> int:
        """As many seeds per call as their states fit LANE_BYTES: 64 on small
        graphs, one (one call per seed) on large ones."""
        p = self.program
        per_state = 4 * (len(p.node_slots) * graph.n_nodes + len(p.edge_slots)
                         * graph.n_half_edges + len(p.shared_slots) * graph.n_edges)
        return self._lanes_fitting(per_state)

    def run(self, label, state, params, steps, threads=1, check_finite=False) -> int:
        return self.native.run(label, state, params, steps, threads, check_finite)

    def driver_blocks(self, state, labels) -> DriverBlocks:
        writes = self._writes.get(key := tuple(labels))
        if writes is None:
            writes = self._writes[key] = ir.slot_write_mask(self.program, labels)
        return DriverBlocks(kernels=[self.native.kernels[label] for label in labels],
                            kernel_writes=writes, graph_needs=self.native.graph_needs)
