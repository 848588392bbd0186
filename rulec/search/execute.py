"""Where batches of rules are evaluated: this process, a local process pool,
or a Dask cluster. Every executor runs the same function on the same
payloads (rule texts, never compiled handles: each worker parses and
translates locally), so results do not depend on where they ran.

    with executor(jobs=2) as ex:                 # or scheduler="tcp://host:8786"
        for payload_index, records in ex.run(evaluate_batch, payloads):
            ...

A call can also hand out the next round's batches, to start once its own
are handed out and to be waited for by a later call (`Ahead`): a search
that screens ahead keeps every worker busy while the coordinator sorts a
generation, instead of waiting at the end of every round.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from ..errors import RulecError
from ..pool import process_pool
from .hurdles import evaluator
from .space import Settings

#: How often Dask runs a batch again after the worker running it died.
RETRIES = 2


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


#: The cyclic garbage collector's thresholds while a search runs (at least
#: these; see fewer_collections).
GC_THRESHOLDS = (100_000, 10, 10)
_gc_lock = threading.Lock()
_gc_depth = 0
_gc_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def fewer_collections():
    """Python's cyclic garbage collector runs less often inside: its first
    generation is collected every 100,000 allocations, not every 700. A
    search makes a few thousand short-lived objects per rule (trees, IR,
    records) that reference counting frees, none of them in cycles; at 700
    the collector scans most of them while they are still alive, and
    promotes them to be scanned again. Measured on one worker, 8,000
    rules: 1,121-1,199 rules/s with Python's thresholds, 1,177-1,222 at
    10,000, 1,196-1,271 at 100,000 (the process's peak memory 98 -> 102
    MB), 1,227-1,297 with the collector off. The thresholds in force
    before are restored on leaving (nested and threaded uses restore them
    once, when the last one leaves); higher ones are kept."""
    global _gc_depth, _gc_saved
    with _gc_lock:
        if _gc_depth == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(*(max(a, b) for a, b in zip(_gc_saved, GC_THRESHOLDS,
                                                          strict=True)))
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0:
                gc.set_threshold(*_gc_saved)


def evaluate_batch(settings: dict, stage: str, items: list) -> list[dict]:
    """Evaluate a batch in this process. stage 'screen': items are (index,
    text, tree, draw): a rule's text and tree (tree None: parsed here), or
    (index, None, None, seed): rule `index` of that seed's random stream,
    drawn here; stage 'rung': items are (index, text, record, k): rung k of
    successive halving; stage 'learn': items are (index, text, record)."""
    with fewer_collections():
        return _evaluate_batch(settings, stage, items)


def _evaluate_batch(settings: dict, stage: str, items: list) -> list[dict]:
    ev = evaluator(Settings.from_dict(settings))
    name = worker_name()
    out = []
    for item in items:
        if stage == "screen":
            index, text, tree, draw = item
            record = ev.screen(text, tree, draw, index)
        elif stage == "rung":
            index, text, record, k = item
            record = ev.rung(text, record, k)
        else:
            index, text, record = item
            record = ev.learn(text, record)
        record["index"] = index
        record["worker"] = name
        out.append(record)
    return out


def warm_up(settings: dict) -> None:
    """What a worker needs before its first rule: the evaluator of the
    run's settings (tasks, graphs), and the VM and driver libraries loaded."""
    from ..backends.vm.native import library as vm_library
    from ..learning.native import library as driver_library

    evaluator(Settings.from_dict(settings))
    vm_library()
    driver_library()


class Ahead:
    """Batches one run() call hands out after its own, without waiting for
    them; a later call takes them (run(..., started=ahead)) and yields their
    results first, as if they were the first of its payloads. What the
    executor keeps of them in between is its own (`futures`)."""

    def __init__(self, payloads: list) -> None:
        self.payloads = list(payloads)
        self.futures: list | None = None  # None: not handed out yet

    def cancel(self) -> None:
        """Drop the batches handed out that have not started (a search that
        stops before it waits for them: nothing of them is stored)."""
        for future in self.futures or ():
            if future is not None:
                future.cancel()


class InProcess:
    """Evaluate batches one after another in this process (jobs=1).

    Every executor's run(fn, payloads, idle, started, ahead) yields (index,
    result) for `started`'s payloads (an Ahead an earlier call handed out),
    then `payloads`, indexed in that order; it calls `idle()` (if given)
    once the payloads are handed out and before the first result comes
    back: the coordinator's own work that can overlap the workers'; and it
    hands out `ahead`'s payloads (an Ahead) after its own, for a later call
    to wait for. Here, where nothing runs in parallel, those run when that
    later call asks for them."""

    workers = 1

    def run(self, fn: Callable, payloads: list, idle: Callable | None = None,
            started: Ahead | None = None, ahead: Ahead | None = None
            ) -> Iterator[tuple[int, list]]:
        every = _every(started, payloads)
        if ahead is not None:
            ahead.futures = []
        if idle is not None:
            idle()
        for i, payload in enumerate(every):
            yield i, fn(*payload)

    def close(self, abort: bool = False) -> None:
        pass


class LocalPool:
    """A pool of `jobs` worker processes on this machine. When a worker dies
    (killed, crashed), the pool breaks and every batch it held runs again in
    a new pool; a batch that was in a broken pool twice then runs alone, and
    if its process dies alone too, its rules are reported as failed."""

    #: a task costs a local pool little: a round ends in smaller tasks
    small_tasks = True

    def __init__(self, jobs: int) -> None:
        self.workers = jobs
        self.pool: ProcessPoolExecutor | None = None
        self.warming: list = []  # warm()'s futures, until one worker has started

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return process_pool(workers)

    def warm(self, settings: dict) -> None:
        """Start the workers now, each importing and building what its
        first rule needs (warm_up) while the coordinator opens its store.
        Nothing waits for it: a worker that dies here breaks the pool, and
        the first run() makes a new one."""
        if self.pool is None:
            self.pool = self._new_pool(self.workers)
        with contextlib.suppress(BrokenProcessPool, RuntimeError):
            for _ in range(self.workers):
                self.warming.append(self.pool.submit(warm_up, settings))

    def _check_started(self) -> None:
        """After the pool broke: if warm() started workers and every one of
        them died before it was ready, the workers cannot start here (no
        rule's fault): stop with why, rather than run every batch alone in
        one new process after another that dies too."""
        if not self.warming or not all(f.done() for f in self.warming):
            return
        if any(not f.cancelled() and f.exception() is None for f in self.warming):
            self.warming = []  # a worker did start: the rules' batches are to blame
            return
        self.close()  # (its processes are gone: nothing to wait for)
        raise WorkerStartError(
            "the search's worker processes died as they started, before evaluating any "
            "rule. Python starts each worker by importing the script that started the "
            "search: a script that runs a search with jobs > 1 must do it under `if "
            '__name__ == "__main__":` (docs/search.md); otherwise see the first error '
            "the workers printed above") from None

    def run(self, fn: Callable, payloads: list, idle: Callable | None = None,
            started: Ahead | None = None, ahead: Ahead | None = None
            ) -> Iterator[tuple[int, list]]:
        payloads = _every(started, payloads)
        breaks = dict.fromkeys(range(len(payloads)), 0)
        # the started batches in flight since an earlier call are waited for
        # here; one it could not hand out is handed out again
        adopted = {} if started is None else \
            {f: i for i, f in enumerate(started.futures or ()) if f is not None}
        waited = set(adopted.values())
        todo = [i for i in range(len(payloads)) if i not in waited]
        first = True
        while todo or first:
            suspects = [i for i in todo if breaks[i] >= 2]
            if suspects:  # one at a time, so a death is the batch's own
                batch, todo = suspects[:1], [i for i in todo if i != suspects[0]]
                pool = self._new_pool(1)
            else:
                batch, todo = todo, []
                if self.pool is None:
                    self.pool = self._new_pool(self.workers)
                pool = self.pool
            futures, broken = adopted, False
            adopted = {}
            for i in batch:
                try:
                    futures[pool.submit(fn, *payloads[i])] = i
                except BrokenProcessPool:  # a worker died while batches were handed out
                    broken = True
                    if suspects:
                        yield i, _crashed(payloads[i])
                    else:
                        todo.append(i)  # not counted: it never reached a worker
            if ahead is not None:  # after this call's own (a pool runs them in order)
                ahead.futures = [self._hand_out(pool, fn, p) for p in ahead.payloads]
                ahead = None
            first = False
            if idle is not None:
                idle()
                idle = None
            for future in as_completed(futures):
                i = futures[future]
                try:
                    result = future.result()
                except CancelledError:  # handed out ahead to a pool that broke since
                    todo.append(i)
                    continue
                except BrokenProcessPool:
                    self._check_started()
                    broken = True
                    breaks[i] += 1
                    if suspects:
                        yield i, _crashed(payloads[i])
                    else:
                        todo.append(i)
                    continue
                self.warming = []  # a worker has started
                yield i, result
            if suspects:
                pool.shutdown(wait=False, cancel_futures=True)
            elif broken:
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = None

    @staticmethod
    def _hand_out(pool: ProcessPoolExecutor, fn: Callable, payload):
        """A future of fn(*payload) in `pool`, or None if the pool broke (the
        call that waits for it hands it out again)."""
        try:
            return pool.submit(fn, *payload)
        except (BrokenProcessPool, RuntimeError):
            return None

    def close(self, abort: bool = False) -> None:
        """Shut the workers down; with `abort` (Ctrl-C), terminate them now."""
        if self.pool is not None:
            if abort:
                from ..pool import abort as abort_pool

                abort_pool(self.pool)
            else:
                self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class WorkerStartError(RulecError):
    """The local worker processes of a search cannot start."""


def _every(started: Ahead | None, payloads: list) -> list:
    """The payloads of a run() call: those `started` handed out, then its own."""
    return list(payloads) if started is None else [*started.payloads, *payloads]


def _crashed(payload) -> list[dict]:
    """The records of a batch whose worker died running it alone: failed.
    (The coordinator adds a screened rule's text and hashes.)"""
    _, stage, items = payload
    return [{"index": item[0], "passed": 0 if stage == "screen" else item[2]["passed"],
             "failure": "the worker process died evaluating this rule's batch (run alone)",
             "timings": {}, "func_hash": None,
             "results": [], "worker": None} for item in items]


class DaskCluster:
    """Batches as tasks of a Dask distributed cluster (scheduler address, or a
    distributed.Client / LocalCluster). Dask re-runs the tasks of a worker
    that dies."""

    def __init__(self, scheduler) -> None:
        try:
            from distributed import Client
        except ImportError:
            from .space import SpaceError

            raise SpaceError("--scheduler needs Dask: pip install 'rulec[cluster]'") from None
        if isinstance(scheduler, Client):
            self.client, self.own = scheduler, False
        else:
            try:
                self.client = Client(scheduler, timeout="10s")
            except OSError as exc:
                from .space import SpaceError

                raise SpaceError(f"cannot reach the Dask scheduler at {scheduler}: {exc}; "
                                 "start one with `dask scheduler` (docs/search.md)") from None
            self.own = True
        self.workers = max(1, sum(self.client.nthreads().values()))

    def run(self, fn: Callable, payloads: list, idle: Callable | None = None,
            started: Ahead | None = None, ahead: Ahead | None = None
            ) -> Iterator[tuple[int, list]]:
        from distributed import as_completed

        futures = {}
        if started is not None:  # (one never handed out goes now)
            futures = {f if f is not None else self._submit(fn, p): i for i, (f, p) in
                       enumerate(zip(started.futures or [None] * len(started.payloads),
                                     started.payloads, strict=True))}
        offset = len(futures)
        futures.update({self._submit(fn, p): offset + i for i, p in enumerate(payloads)})
        if ahead is not None:  # after this call's own (Dask runs earlier tasks first)
            ahead.futures = [self._submit(fn, p) for p in ahead.payloads]
        if idle is not None:
            idle()
        for future in as_completed(futures):
            yield futures[future], future.result()

    def _submit(self, fn: Callable, payload):
        return self.client.submit(fn, *payload, pure=False, retries=RETRIES)

    def close(self, abort: bool = False) -> None:
        if self.own:
            self.client.close()


def make_executor(jobs: int = 1, scheduler=None):
    if scheduler is not None:
        return DaskCluster(scheduler)
    if jobs <= 1:
        return InProcess()
    return LocalPool(jobs)
