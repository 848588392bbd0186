"""The CUDA backend's errors."""

from __future__ import annotations

from ...errors import RulecError


class CudaError(RulecError, RuntimeError):
    """The CUDA backend cannot run here (no CuPy, no GPU, no NVRTC), or NVRTC
    refused a module."""
