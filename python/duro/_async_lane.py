"""The asyncio side: runs of workflows with coroutine functions, and waiters.

One event loop (the engine's: the loop the engine was opened in, or a
background thread's) drains the async lane when the engine's eventfd
becomes readable. Each run being driven is one task that awaits its step,
reports it, then awaits the engine's next work for it; many runs share each
fsync. Callers on other loops get their futures resolved thread-safely.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple

from .errors import DuroError, EngineClosed, StoreFailed
from . import _core
from ._runner import RELEASE, STALE, TASK, RunContext, Runner

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("duro")

#: How long an idle event loop may spin for a sync that is about to end (µs).
SPIN_US = 200

ASYNC_LANE = 1
Waiter = Tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _resolve(waiter: Waiter, value: Any, running: Optional[asyncio.AbstractEventLoop]) -> None:
    """Resolves a waiter from the thread of loop ``running`` (its own loop: at once)."""
    loop, future = waiter
    if loop is running:
        _set_result(future, value)
        return
    try:
        loop.call_soon_threadsafe(_set_result, future, value)
    except RuntimeError:
        pass  # that loop is closed; nobody waits any more


def _set_result(future: "asyncio.Future[Any]", value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: "asyncio.Future[Any]", failure: BaseException) -> None:
    if not future.done():
        future.set_exception(failure)


def _fail_closed(future: "asyncio.Future[Any]") -> None:
    if not future.done():
        future.set_exception(EngineClosed("the engine was closed"))


def _current_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AsyncDriver:
    def __init__(self, engine: "Engine", runner: Runner, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        self._engine = engine
        self._core = engine._core
        self._runner = runner
        self._contexts: Dict[int, RunContext] = {}
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._lock = threading.Lock()
        self._finished: Dict[int, List[Waiter]] = {}
        self._durable: Dict[int, List[Waiter]] = {}
        self._thread: Optional[threading.Thread] = None
        self._stopped = False
        # Durability as the loop last saw it, and the rounds waited for: one
        # future per sync round (``Core.sync_round``: the position that makes a
        # whole batch durable), shared by every run whose step is in that batch.
        self._durable_seen = 0
        self._rounds: Dict[int, "asyncio.Future[None]"] = {}
        if loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="duro-asyncio", daemon=True)
            self._thread.start()
        self.loop = loop
        ready = threading.Event()

        def install() -> None:
            loop.add_reader(self._core.notify_fd(), self._on_readable)
            ready.set()
            self._on_readable()

        if _current_loop() is loop:
            install()
        else:
            loop.call_soon_threadsafe(install)
            ready.wait(5.0)

    # -- waiters (any thread, any loop) ----------------------------------------------------------

    def watch_finished(self, run_key: int) -> "asyncio.Future[Any]":
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[Any]" = loop.create_future()
        with self._lock:
            self._finished.setdefault(run_key, []).append((loop, future))
        self._core.watch(run_key)
        return future

    def watch_durable(self, position: int) -> "asyncio.Future[Any]":
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[Any]" = loop.create_future()
        with self._lock:
            self._durable.setdefault(position, []).append((loop, future))
        self._core.watch_durable(position)
        return future

    # -- the loop side ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        core = self._core
        core.drain_notifier()
        try:
            works = core.take_work(ASYNC_LANE, 4096)
        except EngineClosed:
            works = []
        except DuroError as failure:
            # The store failed: nothing will become durable or finish any more.
            # Everyone waiting hears it now instead of waiting forever.
            log.error("duro: %s", failure)
            self._fail_waiters(failure)
            return
        for work in works:
            self._dispatch(work)
        finished = core.take_finished()
        durable = core.take_durable()
        if durable:
            seen = self._durable_seen = max(self._durable_seen, core.durable_position())
            for position in [p for p in self._rounds if p <= seen]:
                round_ = self._rounds.pop(position)
                if not round_.done():
                    round_.set_result(None)
        if finished or durable:
            with self._lock:
                ready = [w for key in finished for w in self._finished.pop(key, [])]
                ready += [w for pos in durable for w in self._durable.pop(pos, [])]
            for waiter in ready:
                _resolve(waiter, True, self.loop)  # this runs on self.loop

    def _fail_waiters(self, failure: BaseException) -> None:
        rounds = list(self._rounds.values())
        self._rounds.clear()
        for future in rounds:
            if not future.done():
                future.set_exception(failure)
        with self._lock:
            waiters = [w for ws in self._finished.values() for w in ws] + [w for ws in self._durable.values() for w in ws]
            self._finished.clear()
            self._durable.clear()
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_set_exception, future, failure)
            except RuntimeError:
                pass

    def _dispatch(self, work: Any) -> None:
        handle = work[1]
        if work[0] == RELEASE:
            self._contexts.pop(handle, None)
            return
        # Held here (the loop keeps only weak references to tasks) until _drive ends.
        self._tasks.add(self.loop.create_task(self._drive(work)))

    def _round(self, position: int) -> "Optional[asyncio.Future[None]]":
        """The future of the sync round that makes ``position`` durable; None if it is already."""
        key = self._core.sync_round(position)
        if key == 0:
            if position > self._durable_seen:
                self._durable_seen = position
            return None
        return self._round_of(key)

    def _round_of(self, key: int) -> "asyncio.Future[None]":
        """The future of sync round ``key`` (a ``Core.sync_round`` key), watched from its first waiter on."""
        round_ = self._rounds.get(key)
        if round_ is None:
            round_ = self._rounds[key] = self.loop.create_future()
            self._core.watch_durable(key)
        return round_

    async def until_durable(self, position: int) -> None:
        """Returns once every store position up to ``position`` is durable (loop thread only)."""
        if self._durable_seen < position and not self._rounds and not getattr(self.loop, "_ready", True):
            # Nothing else is ready on the loop and no other run waits for a sync: a
            # sequential run. Waiting briefly here (GIL released) beats a trip through
            # the notifier and the selector when the fsync is about to end; a slower
            # sync falls through to the shared wait below.
            if self._core.spin_until_durable(position, SPIN_US):
                self._durable_seen = max(self._durable_seen, position)
                return
        while self._durable_seen < position:
            round_ = self._round(position)
            if round_ is None:
                return
            await round_

    async def _drive(self, work: Any) -> None:
        """Drives one run for as long as it has steps to run without waiting:
        each step's result comes back with the next step, which runs as soon
        as the result is durable (one shared wait per fsync, no queue trip)."""
        runner = self._runner
        try:
            while True:
                handle = work[1]
                if work[0] == RELEASE:
                    self._contexts.pop(handle, None)
                    return
                load = work[5]
                if load is not None:
                    ctx = runner.load(load)
                    self._contexts[handle] = ctx
                else:
                    ctx = self._contexts[handle]
                call = None
                try:
                    spec = ctx.workflow._step_list[work[3]] if work[0] == TASK else None
                    if spec is not None and spec.is_async and spec.timeout_ms is None and spec.arity < 3:
                        # The common case, kept lean: a coroutine step without a timeout.
                        try:
                            if spec.arity == 1:
                                value = await spec.fn(ctx.input)
                            else:
                                value = await spec.fn(ctx.input, ctx.prev)
                            raw = runner.encode_output(spec.name, TASK, value)
                        except Exception as exc:  # noqa: BLE001 - a step's failure is data: record it
                            nxt = runner.failed(work, ctx, runner.resolve(work, ctx), exc, True)
                        else:
                            try:
                                nxt = self._core.step_ok(handle, work[2], work[4], raw, True)
                            except _core.StaleResult as stale:
                                log.info("step %r of run %r: %s", spec.name, ctx.run_id, stale)
                                return  # the run went on without this attempt
                            ctx.prev._put(spec.name, raw)
                    else:
                        try:
                            call = runner.resolve(work, ctx)
                            value = await runner.call_async(call)
                            raw = runner.encode(call, value)
                        except Exception as exc:  # noqa: BLE001 - a step's failure is data: record it
                            nxt = runner.failed(work, ctx, call, exc, True)
                        else:
                            nxt = runner.commit(work, ctx, call, raw, True)
                except (StoreFailed, EngineClosed):
                    log.exception("duro: the engine stopped; run %r resumes when the store is reopened", ctx.run_id)
                    return
                if nxt is STALE:
                    return  # the attempt was closed while it ran; the run went on without it
                try:
                    if nxt is None:
                        # Dormant, ended, or continued later through the lane: its next work
                        # (or its release) comes through the lane to a new task, which finds
                        # the run's context in self._contexts. Waiting here for it would cost
                        # a future and a wake-up for every run that simply ended.
                        return
                    work, position, key = nxt
                    if position > self._durable_seen:
                        if key == 0:
                            # Durable already (the engine looked when it handed the work back).
                            self._durable_seen = position
                        elif self._rounds:
                            # Other runs wait for a sync: join their round (no spin, no coroutine).
                            await self._round_of(key)
                            while position > self._durable_seen:
                                round_ = self._round(position)
                                if round_ is None:
                                    break
                                await round_
                        else:
                            await self.until_durable(position)
                except DuroError:
                    return  # the store failed (already logged); the run resumes on reopen
        except Exception as exc:  # noqa: BLE001 - not a step's failure (those are recorded): block the run, say why
            runner.cannot_run(work, exc, self._contexts.get(work[1]))
        finally:
            # Not a done callback: that would cost a bound method and a context copy per run.
            self._tasks.discard(asyncio.current_task())

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        done = threading.Event()

        def shutdown() -> None:
            try:
                self.loop.remove_reader(self._core.notify_fd())
            except Exception:  # noqa: BLE001 - the loop may be closing already
                pass
            for task in list(self._tasks):
                task.cancel()
            self._tasks.clear()  # a task cancelled before it started never reaches its finally
            with self._lock:
                waiters = [w for ws in self._finished.values() for w in ws] + [w for ws in self._durable.values() for w in ws]
                self._finished.clear()
                self._durable.clear()
            for loop, future in waiters:
                try:
                    loop.call_soon_threadsafe(_fail_closed, future)
                except RuntimeError:
                    pass
            if self._thread is not None:
                self.loop.call_soon(self.loop.stop)
            done.set()

        if _current_loop() is self.loop:
            shutdown()
        else:
            try:
                self.loop.call_soon_threadsafe(shutdown)
                done.wait(5.0)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(5.0)
            if not self.loop.is_running():
                self.loop.close()
