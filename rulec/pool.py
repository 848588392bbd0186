"""Worker processes for `rulec fuzz` and `rulec search`.

Workers are spawned, never forked: a process that has run an OpenMP kernel
(libgomp keeps a thread pool) or holds a lock in another thread would hand
the child a lock no thread will release, and the child's first parallel
kernel would hang. Each worker exits when its parent is gone, as a pool's own
clean-up never runs when the parent is killed with -9.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int, setup: Callable | None = None,
                 args: tuple = ()) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes, each running setup(*args) first."""
    import multiprocessing

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(os.getpid(), setup, args))


def known_gone(host: str, pid: str) -> bool:
    """Whether process `pid` of machine `host` is known to have ended: only a
    process of this machine can be looked up; one elsewhere (or a pid that is
    not a number) is taken to run (a lease or a build directory of another
    host waits for its own timeout)."""
    import socket

    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, but is not ours to signal
        return False
    return False


def abort(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now (after Ctrl-C): its workers are terminated, not waited
    for, and nothing queued runs. Results already returned are the caller's."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _start(parent: int, setup: Callable | None, args: tuple) -> None:
    import signal
    import threading

    # Ctrl-C reaches the whole process group: the coordinator decides what
    # stops (and terminates the workers); a worker ignores it, so no worker
    # prints a KeyboardInterrupt traceback or dies holding a batch
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="rulec-follow-parent").start()
    if setup is not None:
        setup(*args)
