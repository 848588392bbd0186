"""Backends: what runs a checked rule's blocks on a state.

Each is a subclass of rulec.backends.base.Backend (its capabilities and
their defaults are documented there), registered here by name. The runtime
(rulec.api.Rule) dispatches through this registry with no backend branches;
a new backend is one new folder or module and one line here.

    numpy  the reference interpreter (rulec.backends.reference), the definition
    c      SIMD C kernels built with the system compiler (rulec.backends.c)
    vm     a bytecode VM in C, built once, no compiler call per rule
           (rulec.backends.vm)
    cuda   CUDA kernels on an NVIDIA GPU, compiled with NVRTC
           (rulec.backends.cuda; needs the rulec[cuda] extra)
    cuda-cpu  the same CUDA kernels compiled for the CPU: how the CUDA
           backend is verified without a GPU (slow; not for real runs)

A backend's module is imported when it is first asked for, so `import
rulec` loads no compiler machinery.
"""

from __future__ import annotations

import importlib

from ..errors import RulecError

#: name -> "module:class" of its Backend subclass
REGISTRY: dict[str, str] = {
    "c": "rulec.backends.c.backend:CBackend",
    "cuda": "rulec.backends.cuda.backend:CudaBackend",
    "cuda-cpu": "rulec.backends.cuda.backend:CudaCpuBackend",
    "numpy": "rulec.backends.reference:ReferenceBackend",
    "vm": "rulec.backends.vm.backend:VMBackend",
}
BACKENDS = tuple(REGISTRY)
DEFAULT_BACKEND = "c"


class BackendError(RulecError, ValueError):
    """An unknown backend name."""


def backend_class(name: str):
    """The Backend subclass registered as `name`."""
    try:
        module, _, attribute = REGISTRY[name].partition(":")
    except (KeyError, TypeError):
        raise BackendError(f"unknown backend {name!r}; available: "
                           f"{', '.join(REGISTRY)}") from None
    return getattr(importlib.import_module(module), attribute)
