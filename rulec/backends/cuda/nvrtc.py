"""NVRTC, NVIDIA's run-time CUDA compiler, through ctypes: CUDA source to
machine code (CUBIN; PTX for reading), cached by content. It needs no GPU,
so the suite compiles every rule's kernels with it wherever the library is
installed (the `nvidia-cuda-nvrtc` wheel, which `rulec[cuda]` and the test
extra install, or a CUDA toolkit).

The cache is the C kernels' (rulec.backends.toolchain.cache_dir): an entry
`cuda/KEY.cubin`, KEY a hash of the source, the generator's files, the
architecture, the options and NVRTC's version, written atomically.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import os
from pathlib import Path

from ...atomic import write_atomic
from ...resources import resource_dir
from ..toolchain import cache_dir
from .errors import CudaError

#: Options every compile gets: C++17, no contraction of a*b+c into one
#: rounding (the C kernels are built with -ffp-contract=off too, so results
#: stay close to the reference), and the runtime headers on the include path.
OPTIONS = ("-std=c++17", "--fmad=false")
#: The architecture compiled for when none is given (Hopper: H100, H200).
DEFAULT_ARCH = "sm_90"


class NvrtcError(CudaError):
    """NVRTC is missing, or refused a module (its log says why)."""


def _candidates() -> list[str]:
    found = []
    try:  # the nvidia-cuda-nvrtc wheel
        import nvidia

        for base in getattr(nvidia, "__path__", []):
            for folder in sorted(Path(base).glob("cu*/lib"), reverse=True):
                found += [str(p) for p in sorted(folder.glob("libnvrtc.so*"))
                          if "builtins" not in p.name]
    except ImportError:
        pass
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            found += [str(p) for p in sorted(Path(home, "lib64").glob("libnvrtc.so*"))]
    system = ctypes.util.find_library("nvrtc")
    if system:
        found.append(system)
    return found


@functools.cache
def library() -> ctypes.CDLL:
    """libnvrtc, or NvrtcError naming what to install."""
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    raise NvrtcError("NVRTC (libnvrtc) is not installed: pip install 'rulec[cuda]' (or "
                     "nvidia-cuda-nvrtc), or install the CUDA toolkit and set CUDA_HOME")


def available() -> bool:
    try:
        library()
    except NvrtcError:
        return False
    return True


def version() -> str:
    lib = library()
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


def _check(result: int, what: str) -> None:
    if result != 0:
        lib = library()
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise NvrtcError(f"NVRTC failed to {what}: {lib.nvrtcGetErrorString(result).decode()}")


def compile_ptx(source: str, name: str = "rulec.cu", arch: str = DEFAULT_ARCH,
                options: tuple[str, ...] = ()) -> bytes:
    """PTX for `source`, compiled for `arch` (e.g. sm_90); NvrtcError with
    NVRTC's log when it does not compile (a bug in rulec: say so)."""
    return _compile(source, name, arch, options, "PTX")


def compile_cubin(source: str, name: str = "rulec.cu", arch: str = DEFAULT_ARCH,
                  options: tuple[str, ...] = ()) -> bytes:
    """A CUBIN (machine code) for `source` on `arch`: what the backend loads.
    Unlike PTX it needs no JIT by the driver, and runs on a driver older than
    this NVRTC within the same CUDA major version, where PTX of a newer
    NVRTC would be refused."""
    return _compile(source, name, arch, options, "CUBIN")


def _compile(source: str, name: str, arch: str, options: tuple[str, ...], output: str) -> bytes:
    lib = library()
    program = ctypes.c_void_p()
    _check(lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(), 0,
                                  None, None), "create a program")
    try:
        flags = [*OPTIONS, f"--gpu-architecture={arch}",
                 f"--include-path={resource_dir('runtime')}", *options]
        array = (ctypes.c_char_p * len(flags))(*(f.encode() for f in flags))
        result = lib.nvrtcCompileProgram(program, len(flags), array)
        if result != 0:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(program, log)
            raise NvrtcError(f"NVRTC did not compile the CUDA rulec generated for {name} "
                             f"(a bug in rulec; please report it with the rule):\n"
                             f"{log.value.decode(errors='replace').strip()}")
        size = ctypes.c_size_t()
        _check(getattr(lib, f"nvrtcGet{output}Size")(program, ctypes.byref(size)),
               f"size the {output}")
        data = ctypes.create_string_buffer(size.value)
        _check(getattr(lib, f"nvrtcGet{output}")(program, data), f"read the {output}")
        return data.raw.rstrip(b"\0") if output == "PTX" else data.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def cached_cubin(source: str, arch: str = DEFAULT_ARCH, identity: str = "") -> Path:
    """The cache entry holding `source`'s CUBIN for `arch`, compiled now if it
    is not there. `identity` adds what else decides the text (the headers)."""
    key = hashlib.sha256("\n".join([source, identity, arch, " ".join(OPTIONS), version()])
                         .encode()).hexdigest()[:40]
    path = cache_dir() / "cuda" / f"{key}.cubin"
    if not path.is_file():
        cubin = compile_cubin(source, arch=arch)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, cubin)
    return path
