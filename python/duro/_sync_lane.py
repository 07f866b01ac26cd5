"""Worker threads for workflows whose functions are plain (sync) functions.

Each worker asks the engine for the next piece of work (waiting with the GIL
released), runs it on its own thread (never on an event loop), and reports.
A worker never waits for a checkpoint's fsync: the engine queues the run
again once it is durable, and meanwhile the worker serves other runs, so
many runs share each fsync.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Dict, List

from .errors import DuroError, EngineClosed, StoreFailed
from ._runner import RELEASE, RunContext, Runner

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("duro")

SYNC_LANE = 0


class SyncWorkers:
    def __init__(self, engine: "Engine", runner: Runner, count: int) -> None:
        self._engine = engine
        self._runner = runner
        self._contexts: Dict[int, RunContext] = {}
        self._threads: List[threading.Thread] = []
        self._stopping = False
        for i in range(max(1, count)):
            thread = threading.Thread(target=self._work, name=f"duro-worker-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float) -> None:
        self._stopping = True
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _work(self) -> None:
        core = self._engine._core
        runner = self._runner
        contexts = self._contexts
        while not self._stopping:
            try:
                work = core.next_work(SYNC_LANE, 1.0)
            except EngineClosed:
                return
            except DuroError:
                log.exception("duro worker stops: the engine failed")
                return
            if work is None:
                continue
            if work[0] == RELEASE:
                contexts.pop(work[1], None)
                continue
            try:
                self._execute(work, contexts)
            except StoreFailed:
                log.exception("duro worker stops: the store failed; reopen the engine to recover")
                return
            except EngineClosed:
                return
            except Exception as exc:  # noqa: BLE001 - not a step's failure (those are recorded): the worker goes on
                runner.cannot_run(work, exc, contexts.get(work[1]))

    def _execute(self, work: Any, contexts: Dict[int, RunContext]) -> None:
        runner = self._runner
        load = work[5]
        if load is not None:
            ctx = runner.load(load)
            contexts[work[1]] = ctx
        else:
            ctx = contexts[work[1]]
        call = None
        try:
            call = runner.resolve(work, ctx)
            value = runner.call_sync(call)
            raw = runner.encode(call, value)
        except Exception as exc:  # noqa: BLE001 - a step's failure is data: record it
            runner.failed(work, ctx, call, exc)
            return
        runner.commit(work, ctx, call, raw)
