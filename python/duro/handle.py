"""A handle on one run: wait for it, inspect it, signal it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, List, Optional

from . import _args
from .errors import NonDeterminismError, ResultTimeout, RunBlocked
from .results import JournalEntry, RunMeta, RunResult

if TYPE_CHECKING:
    from .engine import Engine


class _Expired(Exception):
    pass


def _expire(waiter: "asyncio.Future[Any]") -> None:
    if not waiter.done():
        waiter.set_exception(_Expired())


class RunHandle:
    """Refers to a run by id; cheap to create, valid across restarts (``engine.handle(run_id)``)."""

    __slots__ = ("engine", "run_id", "_run_key")

    def __init__(self, engine: "Engine", run_id: str, run_key: int) -> None:
        self.engine = engine
        self.run_id = run_id
        self._run_key = run_key

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunHandle) and other.run_id == self.run_id and other.engine is self.engine

    def __hash__(self) -> int:
        return hash(self.run_id)

    # -- waiting ---------------------------------------------------------------------------------

    def result(self, timeout: Optional[float] = None) -> RunResult:
        """Blocks until the run ends and returns how it ended (it does not raise
        for a failed run: check ``result.ok``). Raises :class:`duro.ResultTimeout`
        after ``timeout`` seconds, :class:`duro.NonDeterminismError` if the run
        cannot continue because the workflow's steps changed, and
        :class:`duro.RunBlocked` if this process cannot run it (its codec cannot
        decode the run's input, say).

        Called in a coroutine on the loop that runs this (async) workflow, it
        raises :class:`duro.BlockingCallInEventLoop`: the run could never finish
        while the loop waits. Use ``await handle.result_async()`` there."""
        engine = self.engine
        engine._check_usable()
        wait = _args.wait_seconds(timeout)
        if wait != 0.0:
            engine._check_blocking_wait(self._run_key, self.run_id)
        outcome = engine._core.wait_finished(self._run_key, wait)
        return self._interpret(outcome, timeout)

    async def result_async(self, timeout: Optional[float] = None) -> RunResult:
        """Like :meth:`result`, without blocking the event loop."""
        engine = self.engine
        engine._check_usable()
        wait = _args.wait_seconds(timeout)
        if engine._loop_closed():
            # The engine's loop is gone: wait on a thread (result() refuses runs that need that loop).
            return await asyncio.to_thread(self.result, timeout)
        waiter = engine._async_driver().watch_finished(self._run_key)
        timer = None
        if wait is not None:
            # Cheaper than asyncio.wait_for (one timer, no extra task): this runs once per run.
            timer = asyncio.get_running_loop().call_later(wait, _expire, waiter)
        try:
            await waiter
        except _Expired:
            raise ResultTimeout(
                f"run {self.run_id!r} did not finish within {timeout}s; it goes on, wait again to get its result"
            ) from None
        finally:
            if timer is not None:
                timer.cancel()
        outcome = engine._core.wait_finished(self._run_key, 0.0)
        return self._interpret(outcome, timeout)

    def _interpret(self, outcome: Any, timeout: Optional[float]) -> RunResult:
        if outcome is None:
            raise ResultTimeout(
                f"run {self.run_id!r} did not finish within {timeout}s; it goes on, wait again to get its result"
            )
        if outcome[0] == "blocked":
            raise NonDeterminismError(outcome[1])
        if outcome[0] == "cannot_run":
            raise RunBlocked(outcome[1])
        return self.engine._result_from(outcome, self._run_key)

    # -- inspecting ------------------------------------------------------------------------------

    def status(self) -> str:
        """``"pending"``, ``"running"``, ``"sleeping"``, ``"waiting"``, ``"paused"``,
        ``"completed"``, ``"failed"`` or ``"cancelled"``."""
        return self.meta().status

    def meta(self) -> RunMeta:
        return self.engine._meta(self._run_key, self.run_id)

    def journal(self) -> List[JournalEntry]:
        return self.engine._journal(self._run_key)

    async def status_async(self) -> str:
        return (await self.meta_async()).status

    async def meta_async(self) -> RunMeta:
        return await asyncio.to_thread(self.meta)

    async def journal_async(self) -> List[JournalEntry]:
        return await asyncio.to_thread(self.journal)

    # -- signalling ------------------------------------------------------------------------------

    def send_event(self, name: str, payload: Any = None) -> None:
        """Records an event for the run (durably, before returning); a
        ``wait_for_event(name)`` step receives ``payload``. Events sent before
        the wait starts are kept for it."""
        engine = self.engine
        _args.text(name, "the event name", 'send_event("approved", payload)')
        receipt = engine._core.send_event(self._run_key, name, engine._encode(payload, f"payload of event {name!r}"))
        engine._core.wait_durable(receipt)

    def pause(self) -> None:
        """Stops the run at its next step boundary (status ``"paused"``, kept across restarts)."""
        self.engine._core.wait_durable(self.engine._core.pause(self._run_key))

    def resume(self) -> None:
        self.engine._core.wait_durable(self.engine._core.resume(self._run_key))

    def cancel(self, compensate: bool = False) -> None:
        """Cancels the run at its next step boundary; with ``compensate=True`` the
        compensations of its completed steps run first, in reverse order."""
        self.engine._core.wait_durable(self.engine._core.cancel(self._run_key, _args.flag(compensate, "compensate")))

    async def send_event_async(self, name: str, payload: Any = None) -> None:
        engine = self.engine
        _args.text(name, "the event name", 'send_event("approved", payload)')
        receipt = engine._core.send_event(self._run_key, name, engine._encode(payload, f"payload of event {name!r}"))
        await engine._durable_async(receipt)

    async def pause_async(self) -> None:
        await self.engine._durable_async(self.engine._core.pause(self._run_key))

    async def resume_async(self) -> None:
        await self.engine._durable_async(self.engine._core.resume(self._run_key))

    async def cancel_async(self, compensate: bool = False) -> None:
        await self.engine._durable_async(self.engine._core.cancel(self._run_key, _args.flag(compensate, "compensate")))
