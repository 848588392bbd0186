"""C modules: what identifies one in the build cache, and loading one.

A module is one shared object holding the kernels of one or more rules
(Units). Its identity is everything that decides its C: the canonical IR of
each rule (spans, name and param defaults left out), rulec's version, the
text of the files that generate C (GENERATOR_FILES, listed one by one, so
editing the CLI or the VM keeps every cached kernel), and the gathers mode.
The toolchain adds the compiler, the flags and the CPU to that identity.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ... import ir
from ..._version import __version__
from ...resources import resource_dir
from ..toolchain import BuildError, build_jobs, ffi

#: The files whose text decides a kernel's C, relative to the rulec package,
#: the templates and the C runtime: the IR and its passes, the op table, the
#: C backend's lowering, loop passes, spelling and rendering, and the
#: toolchain's default flags. tests/test_build.py checks that each exists and
#: that every header module.c.j2 includes is here.
GENERATOR_FILES = {
    "rulec": ("ir.py", "ops.py", "checker.py", "printer.py", "rng.py", "passes/__init__.py",
              "passes/fold.py", "backends/toolchain.py", "backends/c/loops.py",
              "backends/c/lower.py", "backends/c/passes.py", "backends/c/spelling.py",
              "backends/c/render.py", "backends/c/pipeline.py", "backends/c/module.py"),
    "templates": ("module.c.j2",),
    "runtime": ("rulec_abi.h", "rulec_graph.h", "rulec_math.h", "rulec_rng.h",
                "rulec_elementwise.h", "rulec_runtime.h"),
}


def generator_sources() -> list[Path]:
    """The files whose text is part of every kernel's cache key."""
    package = Path(__file__).resolve().parents[2]
    paths = [package / name for name in GENERATOR_FILES["rulec"]]
    for directory in ("templates", "runtime"):
        paths += [resource_dir(directory) / name for name in GENERATOR_FILES[directory]]
    return paths


@functools.cache
def _sources_digest() -> str:
    """A hash of everything that generates C (generator_sources): any change to
    them, released or not, makes new cache entries."""
    digest = hashlib.sha256()
    for path in generator_sources():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def canonical(program: ir.Program) -> str:
    """The program's identity for the cache: its IR without spans, name or param
    defaults (kernels take params at run time)."""
    params = tuple((name, 0.0) for name, _ in program.params)
    return repr(dataclasses.replace(program, name="", params=params))


def program_digest(program: ir.Program) -> str:
    return hashlib.sha256(canonical(program).encode()).hexdigest()


def gathers_mode() -> str:
    """RULEC_GATHERS: 'scalar' (the default) or 'vector'; see render.vectorize_loop."""
    mode = os.environ.get("RULEC_GATHERS", "scalar")
    if mode not in ("scalar", "vector"):
        raise BuildError(f"RULEC_GATHERS must be 'scalar' or 'vector', got {mode!r}; unset "
                         "it for 'scalar'")
    return mode


@dataclass(frozen=True)
class Unit:
    """One rule in a module: its IR, the prefix of its kernels' names, and
    (optionally) its source text, for comments in the generated C."""

    program: ir.Program
    prefix: str
    source: str | None = None
    #: program_digest(program), when the caller has it (units_of does)
    digest: str | None = field(default=None, compare=False)


def units_of(programs: list[ir.Program], sources: list[str | None] | None = None
             ) -> tuple[list[Unit], list[str]]:
    """The units of a module holding `programs` (one per distinct program)
    and each program's kernel prefix."""
    sources = sources or [None] * len(programs)
    digests = [program_digest(p) for p in programs]
    prefixes = ["r" + d[:20] for d in digests]
    units, seen = [], set()
    for program, digest, prefix, source in zip(programs, digests, prefixes, sources,
                                               strict=True):
        if prefix not in seen:
            seen.add(prefix)
            units.append(Unit(program, prefix, source, digest))
    return units, prefixes


def identity(units: list[Unit]) -> list[str]:
    """What decides a module's C (the toolchain adds compiler, flags, CPU)."""
    return ["rulec-module", __version__, _sources_digest(), gathers_mode(),
            *sorted(unit.prefix + (unit.digest or program_digest(unit.program))
                    for unit in units)]


#: Compile time grows faster than the C of a rule (gcc at -O3 took 42 s for a
#: rule of size 4,000, 60 s for 8,000, and did not finish 16,000 in 600 s;
#: docs/c-backend.md, "Very large rules"). Past C_O1_SIZE (ir.size) a module
#: is built at -O1; past max_c_size() a rule runs on the VM instead.
C_O1_SIZE = 1_500
C_MAX_SIZE = 4_000


def max_c_size() -> int:
    """The largest rule (ir.size) the C backend compiles: $RULEC_C_MAX_SIZE or
    C_MAX_SIZE. Larger rules run on the VM (rulec.api.Rule says so)."""
    text = os.environ.get("RULEC_C_MAX_SIZE", "").strip()
    if not text:
        return C_MAX_SIZE
    if not text.isdigit():
        raise BuildError(f"RULEC_C_MAX_SIZE must be a whole number (the largest rule size "
                         f"the C backend compiles), got {text!r}; unset it for "
                         f"{C_MAX_SIZE:,}")
    return int(text)


def size_flags(programs: list[ir.Program]) -> list[str]:
    """Flags added for large rules: -O1 past C_O1_SIZE (a later flag wins)."""
    return ["-O1"] if programs and max(map(ir.size, programs)) > C_O1_SIZE else []


# A batch of more rules than this is compiled in parts of about equal size
# (render.render_parts), one per compiler process that may run at once
# (toolchain.build_jobs()), and linked into one shared object.
RULES_PER_PART = 8


def parts_for(units: list[Unit]) -> int:
    """How many translation units a module of `units` is compiled in."""
    jobs = build_jobs()
    return max(1, min(jobs, len(units) // RULES_PER_PART)) if jobs > 1 else 1


@dataclass
class Module:
    """A loaded shared object: kernels by (prefix, block label)."""

    path: Path
    library: object
    kernels: dict[str, object]

    def kernel(self, prefix: str, label: str):
        return self.kernels[f"{prefix}:{label}"]


def load(path: Path) -> Module:
    """Load a module and read its kernel table."""
    try:
        library = ffi().dlopen(str(path))
    except OSError as exc:
        raise BuildError(
            f"cannot load the kernels the compiler built ({path}): {exc}\n  the compiler or "
            "its flags (CC, RULEC_CFLAGS) made a library this Python cannot load, e.g. for "
            "another architecture; backend='numpy' runs without a compiler") from None
    size = ffi().new("int *")
    table = library.rulec_module_table(size)
    kernels = {}
    for index in range(size[0]):
        entry = table[index]
        kernels[ffi().string(entry.name).decode()] = entry.kernel
    return Module(path, library, kernels)
