"""The CUDA backends as the runtime sees them.

    cuda      the kernels on an NVIDIA GPU: compiled with NVRTC
              (rulec.backends.cuda.nvrtc), cached by content, launched through
              CuPy (the `rulec[cuda]` extra)
    cuda-cpu  the same kernel text compiled for the CPU (rulec.backends.cuda.cpu):
              how the CUDA backend is verified where there is no GPU; slow

Both run blocks through rulec.backends.cuda.host.run_block, so the host's
order of launches, buffers and stop flag is one piece of code.
"""

from __future__ import annotations

import os
import weakref

from ..base import Backend
from ..c.module import units_of
from .errors import CudaError
from .host import MAX_LANES, GraphOnDevice, run_block


def forced_lanes() -> int | None:
    """$RULEC_CUDA_LANES: every node gets this many lanes (a power of two up
    to 32) instead of lanes sized from its degree; for tests and tuning."""
    text = os.environ.get("RULEC_CUDA_LANES", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) not in (1, 2, 4, 8, 16, 32):
        raise CudaError(f"RULEC_CUDA_LANES must be one of 1, 2, 4, 8, 16, 32 (threads per "
                        f"node, at most a warp of {MAX_LANES}), got {text!r}; unset it to size "
                        f"groups from each node's degree")
    return int(text)


class _CudaLike(Backend):
    """What both CUDA backends share: a module built for a batch of
    programs, graphs uploaded once per device, and run_block."""

    batched = True
    reports_finite = True
    batches_states = True

    def __init__(self, program, source: str | None = None, prebuilt=None) -> None:
        super().__init__(program, source)
        if prebuilt is None:
            units, prefixes = units_of([program], [source])
            prebuilt = (self._build(units), prefixes[0])
        self.module, self.prefix = prebuilt
        self.executor = self._device(self.module)
        self._graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @classmethod
    def many(cls, programs, sources):
        """One module (one compile) for every program."""
        units, prefixes = units_of(programs, sources)
        module = cls._build(units)
        return [cls(p, None, prebuilt=(module, prefix))
                for p, prefix in zip(programs, prefixes, strict=True)]

    @classmethod
    def _build(cls, units):
        raise NotImplementedError

    def _device(self, module):
        raise NotImplementedError

    def _graph(self, graph) -> GraphOnDevice:
        lanes = forced_lanes()
        found = self._graphs.get(graph)
        if found is None or found[0] != lanes:
            found = (lanes, GraphOnDevice(self.executor, graph, lanes))
            self._graphs[graph] = found
        return found[1]

    def run(self, label, state, params, steps, threads=1, check_finite=False) -> int:
        done = self.run_many(label, [state], [params], steps, check_finite)[0]
        self.last_status = "non-finite" if done < steps else "budget"
        return done

    def run_many(self, label, states, params, steps, check_finite=False) -> list[int]:
        """Every state a copy in the same launches: they must share one graph
        and one time (the kernels take one of each)."""
        if not states:
            return []
        graph, time = states[0].graph, states[0].time
        for state in states[1:]:
            if state.graph is not graph or state.time != time:
                what = "graph" if state.graph is not graph else "time"
                raise CudaError(f"a batch of states on the {self.name} backend shares one "
                                f"graph and one time; this batch has more than one {what} "
                                f"(step the groups separately)")
        kernel = self.module.kernels[f"{self.prefix}:{label}"]
        values = [[float(given[name]) for name, _ in self.program.params] for given in params]
        return run_block(self.executor, self._graph(graph), kernel, states, values, steps,
                         check_finite)


class CudaCpuBackend(_CudaLike):
    """The CUDA kernels compiled for the CPU (verification, not speed)."""

    name = "cuda-cpu"

    @classmethod
    def _build(cls, units):
        from .cpu import build

        return build(units)

    def _device(self, module):
        from .cpu import CpuDevice

        return CpuDevice(module)


class CudaBackend(_CudaLike):
    """The CUDA kernels on the GPU (needs `pip install 'rulec[cuda]'` and an
    NVIDIA GPU)."""

    name = "cuda"
    #: a state in main memory is uploaded per call; one moved to the GPU stays
    devices = ("cpu", "cuda")

    @classmethod
    def _build(cls, units):
        from .gpu import build

        return build(units)

    def _device(self, module):
        from .gpu import GpuDevice

        return GpuDevice(module)
