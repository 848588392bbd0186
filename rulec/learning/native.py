"""The protocol driver's C library (runtime/rulec_driver.c): built on first
use, cached across processes like the kernels, and loaded through cffi.
rulec.learning.driver runs evaluations on it; rulec.learning.results
shuffles the epochs' orders with it."""

from __future__ import annotations

import functools
import threading

import cffi

from .._version import __version__
from ..backends import toolchain
from ..backends.vm.native import header_cdef, vm_ffi
from ..resources import resource_dir

#: The driver's C and the headers it includes (its cache identity).
SOURCES = ("rulec_driver.c", "rulec_driver.h", "rulec_vm.h", "rulec_abi.h", "rulec_graph.h",
           "rulec_math.h", "rulec_rng.h", "rulec_runtime.h")

_lock = threading.Lock()


@functools.cache
def _library_unlocked(fingerprint):
    runtime = resource_dir("runtime")
    texts = [(runtime / name).read_text(encoding="utf-8") for name in SOURCES]
    ffi = cffi.FFI()
    ffi.include(vm_ffi())
    ffi.cdef(header_cdef("rulec_driver.h"))

    def load(path):
        try:
            return ffi.dlopen(str(path))
        except OSError as exc:
            raise toolchain.BuildError(f"cannot load the protocol driver ({path}): {exc}") \
                from None

    return ffi, toolchain.cached_library(["rulec-driver", __version__, *texts], [texts[0]],
                                         load, stem="driver-", by_compiler=False)


def library():
    """(ffi, lib) of the driver, built on first use and cached across
    processes (in this process, per toolchain.environment_key)."""
    fingerprint = toolchain.environment_key()
    with _lock:
        return _library_unlocked(fingerprint)
