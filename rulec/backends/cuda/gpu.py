"""The CUDA kernels on a GPU: a CUBIN from NVRTC (rulec.backends.cuda.nvrtc,
cached by content), loaded and launched through CuPy.

Why CuPy (`cupy-cuda13x`, the `rulec[cuda]` extra) rather than cuda-python:
rulec needs device arrays, host<->device copies, DLPack exchange with
PyTorch and a module loader with launches; CuPy is all of these, kept by a
large project, and its arrays are what GPU users already hold. cuda-python
would leave rulec writing its own allocator and array type. NVRTC itself is
called directly (ctypes) so the same compile runs in the test suite on
machines with no GPU and no CuPy.
"""

from __future__ import annotations

import threading

import numpy as np

from .errors import CudaError
from .host import BLOCK_THREADS, Device
from .nvrtc import DEFAULT_ARCH, cached_cubin
from .render import CudaModule, cuda_module, sources_digest


def cupy():
    """The cupy module, or CudaError saying what to install."""
    try:
        import cupy as cp
    except ImportError:
        raise CudaError("the cuda backend needs CuPy and NVRTC: pip install 'rulec[cuda]' "
                        "(for CUDA 13 drivers; see docs/cuda.md for CUDA 12), or use "
                        "backend='c'") from None
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            raise CudaError("no CUDA device: the cuda backend needs an NVIDIA GPU; "
                            "backend='c' runs on the CPU")
    except cp.cuda.runtime.CUDARuntimeError as exc:
        raise CudaError(f"CUDA is not usable here ({exc}); backend='c' runs on the "
                        f"CPU") from None
    return cp


def device_arch() -> str:
    """The current device's architecture, as NVRTC names it (sm_90 for an H100)."""
    return f"sm_{cupy().cuda.Device().compute_capability}"  # CuPy spells it '90'


class GpuModule:
    """A module's kernels loaded on the current device."""

    def __init__(self, module: CudaModule, raw) -> None:
        self.kernels = module.kernels
        self.raw = raw
        self._functions: dict[str, object] = {}

    def function(self, name: str):
        found = self._functions.get(name)
        if found is None:
            found = self._functions[name] = self.raw.get_function(name)
        return found


_loaded: dict[str, GpuModule] = {}
_lock = threading.Lock()


def build(units) -> GpuModule:
    cp = cupy()
    module = cuda_module(units)
    try:
        arch = device_arch()
    except Exception:  # noqa: BLE001 - an old CuPy: the default architecture
        arch = DEFAULT_ARCH
    path = cached_cubin(module.source, arch, sources_digest())
    with _lock:
        found = _loaded.get(str(path))
        if found is None:
            found = _loaded[str(path)] = GpuModule(module, cp.RawModule(path=str(path)))
    return found


_SCALARS = {"int64_t": np.int64, "uint64_t": np.uint64, "int": np.int32, "float": np.float32}


class GpuDevice(Device):
    """Arrays are CuPy arrays on the current device; launches are asynchronous
    on the current stream, and only `read` waits."""

    def __init__(self, module: GpuModule) -> None:
        self.module = module
        self.cp = cupy()

    def upload(self, array: np.ndarray):
        return self.cp.asarray(array)

    def empty(self, size: int, dtype):
        return self.cp.zeros(size, dtype=dtype)

    def read(self, handle) -> np.ndarray:
        return self.cp.asnumpy(handle)

    def owns(self, array) -> bool:
        return isinstance(array, self.cp.ndarray)

    def copy_into(self, target, source) -> None:
        target[...] = source

    def concat(self, arrays: list):
        return self.cp.concatenate(arrays)

    def prepare(self, args) -> list:
        return [value if ctype == "ptr" else _SCALARS[ctype](value) for ctype, value in args]

    def scalar(self, ctype: str, value):
        return _SCALARS[ctype](value)

    def launch(self, name: str, threads: int, prepared: list) -> None:
        if threads <= 0:
            return
        blocks = (threads + BLOCK_THREADS - 1) // BLOCK_THREADS
        self.module.function(name)((blocks,), (BLOCK_THREADS,), tuple(prepared))
