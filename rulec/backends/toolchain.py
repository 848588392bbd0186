"""The C toolchain: the compiler call, the content-addressed cache, loading.

It knows no generator: a backend hands it C sources (or a function that
makes them, called only on a miss) and an identity (the text that decides
those sources: a C module's canonical IR and generator digest, the VM's
source text), and gets back a loaded library. The cache key is a hash of
that identity with the compiler's identity, the flags and the CPU's
features (the default flags use -march=native).

The cache lives in $RULEC_CACHE_DIR, else $XDG_CACHE_HOME/rulec, else
~/.cache/rulec. An entry `KEY.so` is built in a temporary directory and
renamed into place, after its checksum file `KEY.sum` (size and SHA-256),
all under the entry's lock (`locks/KEY.lock`), so any number of processes
may compile the same or different sources at once: each entry is built
once, and a reader never sees a partial file. A process holds the entry's
lock from finding the entry to loading it, and eviction skips locked
entries, so an entry a process asked for stays loadable until it is loaded
(once loaded, removing the file does not affect the process). An entry
whose size or checksum does not match (a truncated or damaged file) is
rebuilt, never loaded. The cache is bounded ($RULEC_CACHE_SIZE_MB, default
512): after a build, the least recently used entries are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cffi

from ..errors import RulecError
from ..resources import resource_dir

log = logging.getLogger("rulec")

# -O3: at -O2 the benchmark's kernels ran up to 7% slower in a full run, for
# compiles only 8% shorter on its batch (docs/performance.md). 128-bit vectors
# on x86-64: a node's half-edges are few (mean degree ~10-30 in typical
# graphs), and wider vectors spend more time in loop prologues and remainders
# than they save.
# -fvect-cost-model=very-cheap: only loops marked `omp simd` are vectorized
# (rulec.backends.c.render.vectorize_loop decides which), others only where it costs nothing.
DEFAULT_CFLAGS = ("-O3 -march=native -mprefer-vector-width=128 -fvect-cost-model=very-cheap "
                  "-fopenmp" if platform.machine() in ("x86_64", "AMD64")
                  else "-O3 -march=native -fvect-cost-model=very-cheap -fopenmp")
# Flags the kernels need whatever RULEC_CFLAGS says: a shared object, errno-free
# math (so libm calls vectorize; errno is never read), and no contraction of
# a*b+c into FMA, so results stay close to the reference interpreter.
REQUIRED_CFLAGS = ("-shared", "-fPIC", "-fno-math-errno", "-ffp-contract=off")
DEFAULT_CACHE_MB = 512

def _cdef() -> str:
    """The C declarations cffi needs: rulec_abi.h itself (one definition of the
    ABI for C and Python), without its preprocessor lines, plus the JIT table."""
    header = (resource_dir("runtime") / "rulec_abi.h").read_text(encoding="utf-8")
    lines = [line for line in header.splitlines()
             if (not line.startswith("#") or line.startswith("#define RULEC_ABI_VERSION"))
             and line.strip() not in ('extern "C" {', "}")]
    return "\n".join(lines) + "\nconst rulec_entry *rulec_module_table(int *size);\n"


class BuildError(RulecError, RuntimeError):
    """The C backend cannot build: no compiler, a broken compiler, or bad flags."""


@functools.cache
def ffi() -> cffi.FFI:
    """The one FFI every module is loaded through (its cdef is parsed once)."""
    result = cffi.FFI()
    result.cdef(_cdef())
    return result


# ------------------------------------------------------------- environment


#: The environment variables that decide where the cache is, which compiler
#: runs and with which flags.
ENVIRONMENT = ("CC", "RULEC_CFLAGS", "RULEC_CFLAGS_BASE", "RULEC_CACHE_DIR", "XDG_CACHE_HOME",
               "HOME")


def environment_key() -> tuple:
    """Those variables as they are now: a cheap key (no flag parsing, no
    compiler lookup) under which a process keeps a library it loaded, so a
    call per evaluation costs a tuple, not a fingerprint of the flags."""
    return tuple(map(os.environ.get, ENVIRONMENT))


def cache_dir() -> Path:
    configured = os.environ.get("RULEC_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rulec"


def cache_limit_bytes() -> int:
    text = os.environ.get("RULEC_CACHE_SIZE_MB", "")
    try:
        megabytes = float(text) if text else DEFAULT_CACHE_MB
    except ValueError:
        megabytes = -1.0
    if not 0 <= megabytes < 2**40:  # also refuses nan and inf
        raise BuildError(f"RULEC_CACHE_SIZE_MB must be a number of megabytes (0 or more), "
                         f"got {text!r}; unset it for the default ({DEFAULT_CACHE_MB})")
    return int(megabytes * 1024 * 1024)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one,
    so `taskset` and container CPU sets are respected)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def build_jobs() -> int:
    """How many compiler processes one batch build runs at once:
    $RULEC_BUILD_JOBS, else every core this process may use."""
    text = os.environ.get("RULEC_BUILD_JOBS", "")
    if not text:
        return available_cores()
    if not text.isdigit() or int(text) < 1:
        raise BuildError(f"RULEC_BUILD_JOBS must be a whole number of compiler processes "
                         f"(1 or more), got {text!r}; unset it to use every core")
    return int(text)


def _words(variable: str, text: str) -> list[str]:
    """An environment variable's value split as a shell would, or a BuildError
    that names the variable (an unbalanced quote, say)."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise BuildError(f"${variable} cannot be split into words ({exc}): {text!r}; fix "
                         f"its quotes or unset it") from None


def compiler() -> list[str]:
    """The C compiler command: $CC, else cc, else gcc."""
    configured = os.environ.get("CC")
    candidates = [configured] if configured else ["cc", "gcc"]
    for candidate in candidates:
        words = _words("CC", candidate) if configured else [candidate]
        if words and shutil.which(words[0]):
            return words
    looked = f"$CC ({configured})" if configured else "cc and gcc"
    raise BuildError(
        f"no C compiler found (looked for {looked} on PATH). The C backend needs one: "
        "install gcc (Debian/Ubuntu: apt install gcc; Fedora: dnf install gcc), "
        "or set CC, or run with backend='numpy' (CLI: --backend numpy)"
    )


def cflags() -> list[str]:
    """The compiler flags: the defaults (or $RULEC_CFLAGS_BASE, which replaces
    them), then $RULEC_CFLAGS, which adds to them (a later flag wins: `-O2`
    overrides `-O3`, `-march=x86-64-v3` overrides `-march=native`, and
    -fopenmp and the vectorization flags stay), then the required flags."""
    base = os.environ.get("RULEC_CFLAGS_BASE")
    flags = shlex.split(DEFAULT_CFLAGS) if base is None else _words("RULEC_CFLAGS_BASE", base)
    flags += _words("RULEC_CFLAGS", os.environ.get("RULEC_CFLAGS", ""))
    if "-fopenmp" not in flags:  # Python shows a warning once per place by default
        warnings.warn("the compiler flags have no -fopenmp: kernels run on one thread "
                      "whatever threads= says (RULEC_CFLAGS_BASE replaced the defaults)",
                      RuntimeWarning, stacklevel=2)
    return flags + list(REQUIRED_CFLAGS)


@functools.cache
def _compiler_identity(path: str) -> str:
    """The compiler's resolved path, size and modification time: changes when it is
    upgraded, and costs no process start."""
    resolved = os.path.realpath(path)
    info = os.stat(resolved)
    return f"{resolved}:{info.st_size}:{int(info.st_mtime)}"


@functools.cache
def cpu_features() -> str:
    """What -march=native sees: the CPU model and flags, or the platform elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"{platform.machine()}:{platform.processor()}"
    model = flags = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = " ".join(sorted(value.split()))
        if model and flags:
            break
    return f"{model}|{flags}"


def cache_key(identity: list[str], flags: list[str], stem: str = "",
              by_compiler: bool = True) -> str:
    """The cache entry of what `identity` describes, built with `flags`: it
    changes with the flags and the CPU's features, and with `by_compiler`
    with the compiler too (its path, size and date; finding it needs one)."""
    words = [*identity, " ".join(flags), cpu_features()]
    if by_compiler:
        command = compiler()
        words += [_compiler_identity(shutil.which(command[0]) or ""), " ".join(command)]
    return stem + hashlib.sha256("\n".join(words).encode()).hexdigest()[:40]


def cached_library(identity: list[str], sources, load, stem: str = "",
                   flags: list[str] | None = None, by_compiler: bool = True):
    """`load(path)` of a shared object built from `sources` (C texts, or a
    function that returns them, called only on a miss), found in the cache
    by `identity` (what decides the sources) or built now with `flags`
    (default: cflags()). With by_compiler=False the key leaves the compiler
    out, so a cached library loads with no compiler installed (the VM's
    promise); only a miss calls one."""
    flags = cflags() if flags is None else flags
    return cached(cache_key(identity, flags, stem, by_compiler), sources, load, flags)


def cached(key: str, sources, load, flags: list[str]):
    """cached_library for a key already made with cache_key."""
    make = sources if callable(sources) else (lambda: sources)
    return _from_cache(key, make, compiler, flags, load)


def _from_cache(key: str, sources, command, flags: list[str], load):
    """load(path) of cache entry `key`, compiled first from sources() with
    command() if it is missing or damaged (a damaged entry is never loaded).
    The entry's lock is held from the check to the load, so no eviction can
    remove it in between; after a build, the cache is trimmed to its limit."""
    cache_limit_bytes()  # a bad RULEC_CACHE_SIZE_MB is an error on a hit too, not only a miss
    directory = cache_dir()
    try:
        (directory / "locks").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the cache directory {directory} ({exc.strerror});"
                         " set RULEC_CACHE_DIR to a writable directory") from None
    target = directory / f"{key}.so"
    built = False
    start = time.perf_counter()
    with _locked(_lock_path(directory, key)):
        if _verified(target):
            _touch(target)
        else:
            if target.exists():
                print(f"rulec: rebuilding damaged cache entry {target}", file=sys.stderr)
            _compile(sources(), target, command(), flags)
            built = True
        loaded = load(target)
    elapsed = (time.perf_counter() - start) * 1e3
    if built:
        _evict(directory, keep=target)
        log.info("built %s in %.0f ms (%s %s)", target, elapsed, " ".join(command()),
                 " ".join(flags))
    else:
        log.info("cache hit %s (loaded in %.1f ms)", target, elapsed)
    return loaded


def _lock_path(directory: Path, key: str) -> Path:
    # lock files are never removed while the cache is in use (removing one that
    # another process has open would let two processes hold "the" lock)
    return directory / "locks" / f"{key}.lock"


def _checksum(data: bytes) -> str:
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}\n"


def _verified(target: Path) -> bool:
    """Whether `target` exists and matches the size and checksum recorded when
    it was installed."""
    try:
        recorded = target.with_suffix(".sum").read_text(encoding="ascii")
        return _checksum(target.read_bytes()) == recorded
    except (OSError, UnicodeDecodeError):
        return False


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# What the last build's compiler processes took (seconds each; for benchmarks).
last_build: dict[str, list[float]] = {}


def _compile(sources: list[str], target: Path, command: list[str], flags: list[str]) -> None:
    """Compile `sources` into the shared object `target`, atomically."""
    directory = target.parent
    include = f"-I{resource_dir('runtime')}"
    with tempfile.TemporaryDirectory(dir=directory, prefix=_build_prefix()) as work:
        c_files = []
        for index, source in enumerate(sources):
            c_file = Path(work) / f"{target.stem}-{index}.c"
            c_file.write_text(source, encoding="utf-8")
            c_files.append(c_file)
        output = Path(work) / target.name
        if len(c_files) == 1:
            last_build["parts"] = _run(
                [[*command, *flags, include, str(c_files[0]), "-o", str(output), "-lm"]],
                target, c_files, command)
        else:  # compile the parts, largest first, build_jobs() at once; then link
            objects = [c.with_suffix(".o") for c in c_files]
            compile_flags = [f for f in flags if f != "-shared"]
            last_build["parts"] = _run(
                [[*command, *compile_flags, include, "-c", str(c), "-o", str(o)]
                 for c, o in zip(c_files, objects, strict=True)], target, c_files, command)
            _run([[*command, *flags, *map(str, objects), "-o", str(output), "-lm"]],
                 target, c_files, command)
        # the checksum first, then the entry: a reader that finds the entry finds
        # its checksum (both renames are atomic)
        checksum = Path(work) / f"{target.stem}.sum"
        checksum.write_text(_checksum(output.read_bytes()), encoding="ascii")
        os.replace(checksum, target.with_suffix(".sum"))
        os.replace(output, target)


def _run(commands: list[list[str]], target: Path, c_files: list[Path],
         command: list[str]) -> list[float]:
    """Run compiler commands concurrently, returning the seconds each took; on
    a failure, keep the sources and a log beside the cache entry and raise
    BuildError."""
    def run(argv: list[str]) -> tuple[list[str], int, str, float]:
        start = time.perf_counter()
        process = subprocess.run(argv, capture_output=True, text=True)
        return argv, process.returncode, process.stderr, time.perf_counter() - start

    try:  # at most build_jobs() at once, in order (render_parts puts the largest first)
        with ThreadPoolExecutor(min(len(commands), build_jobs())) as pool:
            results = list(pool.map(run, commands))
    except OSError as exc:
        raise BuildError(f"cannot run the C compiler {command[0]!r}: {exc.strerror}; "
                         "install gcc or set CC, or use backend='numpy'") from None
    failures = [(argv, stderr or f"(exit status {code}, no output)")
                for argv, code, stderr, _ in results if code != 0]
    if not failures:
        return [seconds for *_, seconds in results]
    directory = target.parent
    log = directory / f"{target.stem}.log"
    log.write_text("\n\n".join(" ".join(argv) + "\n\n" + err for argv, err in failures),
                   encoding="utf-8")
    for c_file in c_files:
        shutil.copy(c_file, directory / c_file.name)
    stderr = failures[0][1]
    first = next((line for line in stderr.splitlines() if "error" in line), stderr.strip()[:200])
    if _toolchain_works(command, cflags(), directory):
        cause = "this is a bug in rulec; please report it with the log"
    else:
        settings = ("CC and RULEC_CFLAGS" if {"RULEC_CFLAGS", "RULEC_CFLAGS_BASE"} & set(os.environ)
                    else "CC")
        cause = (f"the compiler {' '.join(command)!r} cannot build even an empty kernel with "
                 f"these flags: check {settings} (rulec cache info shows both)")
    raise BuildError(
        f"the C compiler failed ({' '.join(command)}): {first}\n"
        f"  full log: {log}\n  {cause}; backend='numpy' runs without a compiler"
    )


def _toolchain_works(command: list[str], flags: list[str], directory: Path) -> bool:
    """Whether `command` with `flags` builds a trivial shared object: tells a
    broken compiler or bad flags (the user's to fix) from bad generated C."""
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-probe-") as work:
        source = Path(work) / "probe.c"
        source.write_text("int rulec_probe(int x) { return x + 1; }\n", encoding="ascii")
        argv = [*command, *flags, str(source), "-o", str(Path(work) / "probe.so")]
        try:
            result = subprocess.run(argv, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0 and (Path(work) / "probe.so").exists()


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


# -------------------------------------------------------------- maintenance


def cache_entries(directory: Path | None = None) -> list[Path]:
    directory = directory or cache_dir()
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.so"))


def cache_info() -> dict:
    directory = cache_dir()
    entries = cache_entries(directory)
    return {
        "directory": str(directory),
        "entries": len(entries),
        "bytes": sum(_size(p) for p in entries),
        "limit_bytes": cache_limit_bytes(),
        "compiler": " ".join(compiler()) if _has_compiler() else "none found",
        "cflags": " ".join(cflags()),
    }


def _has_compiler() -> bool:
    try:
        compiler()
    except BuildError:
        return False
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def cache_clear() -> int:
    """Remove every entry, failure log and leftover build directory (of a
    build that was killed); returns how many entries were removed. Raises
    BuildError naming what could not be removed."""
    directory = cache_dir()
    if not directory.is_dir():
        return 0
    removed = 0
    failed: list[tuple[Path, str]] = []
    paths = [p for pattern in ("*.so", "*.sum", "*.c", "*.log", "*.lock", "locks/*.lock")
             for p in directory.glob(pattern)]
    for path in paths:
        try:
            path.unlink()
            removed += path.suffix == ".so"
        except FileNotFoundError:
            continue
        except OSError as exc:
            failed.append((path, exc.strerror or str(exc)))
    for path in directory.glob(".build-*"):
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            failed.append((path, exc.strerror or str(exc)))
    if failed:
        path, reason = failed[0]
        raise BuildError(f"could not remove {len(failed)} file{'s' if len(failed) > 1 else ''} "
                         f"from the cache {directory} (e.g. {path.name}: {reason}); "
                         f"{removed} entr{'y was' if removed == 1 else 'ies were'} removed. "
                         "Check the directory's permissions, or set RULEC_CACHE_DIR")
    return removed


def _build_prefix() -> str:
    """A build directory's name says who builds in it: `.build-PID@HOST-`."""
    return f".build-{os.getpid()}@{socket.gethostname()}-"


def _builder_gone(name: str) -> bool:
    """Whether the process that made build directory `name` is known to be
    gone (it ran on this host and no longer does)."""
    from ..pool import known_gone

    pid, _, host = name[len(".build-"):].rpartition("-")[0].partition("@")
    return known_gone(host, pid)


def _stale_build_dirs(directory: Path, age_seconds: float = 3600) -> None:
    """Remove build directories left by killed builds: at once when their
    builder is gone from this host, else once older than an hour (no build
    takes that long)."""
    now = time.time()
    for path in directory.glob(".build-*"):
        with contextlib.suppress(OSError):
            if _builder_gone(path.name) or now - path.stat().st_mtime > age_seconds:
                shutil.rmtree(path)


def _evict(directory: Path, keep: Path) -> None:
    """Remove least recently used entries until the cache is within its limit.
    An entry whose lock another process holds (it is loading it) is skipped."""
    _stale_build_dirs(directory)
    limit = cache_limit_bytes()
    entries = []
    for path in cache_entries(directory):
        try:
            info = path.stat()
        except OSError:
            continue
        entries.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return
    for _, size, path in sorted(entries):
        if total <= limit * 0.8:
            break
        if path == keep:
            continue
        try:
            handle = open(_lock_path(directory, path.stem), "a+b")  # noqa: SIM115
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # in use: another process is building or loading it
            for extra in [path, path.with_suffix(".sum"), path.with_suffix(".log"),
                          *directory.glob(f"{path.stem}-*.c")]:
                with contextlib.suppress(OSError):
                    extra.unlink()
            total -= size
    if total > limit:
        print(f"rulec: the build cache {directory} is over its limit "
              f"({total >> 20} MB > {limit >> 20} MB)", file=sys.stderr)
