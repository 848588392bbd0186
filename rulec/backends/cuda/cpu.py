"""The generated CUDA kernels, compiled for the CPU: how they are verified on
machines without a GPU (docs/cuda.md, "How it is tested").

The module's text is the one NVRTC compiles (rulec.backends.cuda.render),
compiled as C by the system compiler through the C backend's toolchain and
cache; runtime/rulec_cuda.h turns a launch's grid into a loop over node
groups, a group's lanes into a loop over lanes, and each warp shuffle into
the same butterfly over the lanes' values. The host side is the GPU's
(rulec.backends.cuda.host.run_block): CpuDevice only holds NumPy arrays and
calls the kernels.
"""

from __future__ import annotations

import threading

import cffi
import numpy as np

from ..._version import __version__
from .. import toolchain
from ..c import module as c_module
from .host import Device
from .render import CudaModule, KernelInfo, cuda_module, sources_digest

#: The shared kernels of runtime/rulec_cuda.h, as cffi declares them.
SHARED_CDEF = """
void rulec_cuda_settle(int64_t n_total, int64_t n_edges, float *slot, const float *proposal,
                       const uint8_t *proposed, const int32_t *edge_half,
                       const int32_t *rev, const int32_t *stops);
void rulec_cuda_finite(int64_t n_total, int64_t per_copy, const float *values,
                       int32_t *stops, int32_t step);
"""

def _cdef(kernel: KernelInfo) -> str:
    return f"void {kernel.name}({', '.join(arg.ctype for arg in kernel.args)});"


class CpuModule:
    """A CUDA module compiled for the CPU: its kernels by 'prefix:label'."""

    def __init__(self, module: CudaModule, library, ffi: cffi.FFI) -> None:
        self.kernels = module.kernels
        self.library = library
        self.ffi = ffi


_loaded: dict[str, CpuModule] = {}
_lock = threading.Lock()


def build(units) -> CpuModule:
    """The units' CUDA kernels compiled for the CPU (from the cache when built
    before)."""
    module = cuda_module(units)
    identity = ["rulec-cuda-cpu", __version__, sources_digest(),
                *sorted(unit.prefix + (unit.digest or c_module.program_digest(unit.program))
                        for unit in units)]
    flags = toolchain.cflags()
    key = toolchain.cache_key(identity, flags, stem="cuda-cpu-")
    with _lock:
        found = _loaded.get(key)
    if found is not None:
        return found
    ffi = cffi.FFI()
    ffi.cdef(SHARED_CDEF + "\n".join(_cdef(k) for k in module.kernels.values()))

    def load(path):
        return CpuModule(module, ffi.dlopen(str(path)), ffi)

    found = toolchain.cached(key, lambda: [module.source], load, flags)
    with _lock:
        _loaded[key] = found
    return found


class CpuDevice(Device):
    """Arrays are NumPy arrays, and a state's own arrays are on this device
    (the kernels step them in place, as a GPU steps a state moved there); a
    launch is one call (the kernel loops over every group itself, so the
    thread count is not needed)."""

    def __init__(self, module: CpuModule) -> None:
        self.module = module
        self.ffi = module.ffi

    def upload(self, array: np.ndarray):
        return np.array(array, copy=True)

    def empty(self, size: int, dtype):
        return np.zeros(size, dtype=dtype)

    def read(self, handle) -> np.ndarray:
        return handle

    def owns(self, array) -> bool:
        return isinstance(array, np.ndarray)

    def copy_into(self, target, source) -> None:
        target[...] = source

    def concat(self, arrays: list):
        return np.concatenate(arrays)

    def prepare(self, args) -> list:
        return [self.ffi.cast("void *", value.ctypes.data) if ctype == "ptr" else value
                for ctype, value in args]

    def scalar(self, ctype: str, value):
        return value

    def launch(self, name: str, threads: int, prepared: list) -> None:
        getattr(self.module.library, name)(*prepared)
