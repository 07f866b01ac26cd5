"""Calling user code for one piece of work, and reporting the outcome.

The engine hands out work tuples (see ``duro._core``); this module turns one
into a call of the right function with the right arguments, encodes the
result, and reports success or failure. Sync workers and the asyncio driver
share it; only how they call the function differs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional, Tuple

from . import _core
from .codec import Codec
from .context import FailureContext, StepContext
from .errors import DuroError, NonRetryableError, PayloadTooLarge, SerializationError, StepTimeout
from .results import RunError
from .workflow import StepSpec, Workflow

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("duro")

TASK, SLEEP, WAIT, COMPENSATION, ON_FAILURE = 0, 1, 2, 3, 4
RELEASE = _core.WORK_RELEASE
KIND_NAMES = {TASK: "step", COMPENSATION: "compensation", ON_FAILURE: "on_failure"}

Work = Tuple[Any, ...]

#: Returned by ``Runner.commit``/``Runner.failed`` when the engine discarded the
#: report: the attempt had been closed (deadline, cancellation) and the run goes
#: on without this caller.
STALE: Any = object()

#: Return types that are certainly not awaitables (the check is on every step's path).
_PLAIN_TYPES = frozenset({dict, list, str, int, float, bool, type(None), tuple, bytes})


class Outputs(Mapping):  # type: ignore[type-arg]
    """Read-only outputs of completed steps by name (``prev``), decoded on first access.

    Outputs recorded before the run was (re)loaded stay in a native map
    (``_core.RecordedOutputs``) until a step reads them; outputs of steps run
    since are added here."""

    __slots__ = ("_recorded", "_raw", "_decoded", "_decode")

    def __init__(self, decode: Callable[[bytes], Any], recorded: Optional[Any] = None) -> None:
        self._recorded = recorded
        self._raw: Dict[str, bytes] = {}
        self._decoded: Dict[str, Any] = {}
        self._decode = decode

    def _put(self, name: str, raw: bytes) -> None:
        self._raw[name] = raw
        self._decoded.pop(name, None)

    def _discard(self, name: str) -> None:
        self._raw.pop(name, None)
        self._decoded.pop(name, None)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._decoded[name]
        except KeyError:
            raw = self._raw.get(name)
            if raw is None and self._recorded is not None:
                raw = self._recorded.get(name)
            if raw is None:
                raise KeyError(name) from None
            value = self._decode(raw)
            self._decoded[name] = value
            return value

    def __contains__(self, name: object) -> bool:
        return name in self._raw or (self._recorded is not None and isinstance(name, str) and name in self._recorded)

    def __iter__(self) -> Iterator[str]:
        if self._recorded is not None:
            for name in self._recorded.names():
                if name not in self._raw:
                    yield name
        yield from self._raw

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Outputs({dict(self)!r})"


class CannotRun(Exception):
    """This process cannot run a run's work (see ``Runner.cannot_run``)."""


class RunContext:
    """What a worker keeps for a run between its steps."""

    __slots__ = ("workflow", "run_id", "input", "prev")

    def __init__(self, workflow: Workflow, run_id: str, input: Any, prev: Outputs) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.input = input
        self.prev = prev


def describe(exc: BaseException) -> str:
    """``str(exc)``, even when ``__str__`` itself raises."""
    try:
        return str(exc)
    except BaseException as inner:  # noqa: BLE001 - a broken __str__ must not lose the failure
        return f"<{type(exc).__name__} whose __str__ raised {type(inner).__name__}>"


def _describe_value(value: Any, limit: int = 200) -> str:
    """A short, JSON-safe description of a value the codec cannot hold: its type and repr."""
    try:
        text = repr(value)
    except BaseException:  # noqa: BLE001 - a broken __repr__ must not fail a finished handler
        text = object.__repr__(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"<unrecorded {type(value).__name__}: {text}>"


class Call:
    """One resolved call: the function, its arguments, and how to judge failures."""

    __slots__ = ("fn", "args", "name", "spec", "timeout_ms", "kind", "is_async")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        name: str,
        spec: Optional[StepSpec],
        timeout_ms: Optional[int],
        kind: int,
        is_async: bool,
    ) -> None:
        self.fn = fn
        self.args = args
        self.name = name
        self.spec = spec
        self.timeout_ms = timeout_ms
        self.kind = kind
        self.is_async = is_async


class Runner:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.core = engine._core
        self.codec: Codec = engine.codec
        self.max_payload = self.core.max_payload_bytes

    # -- contexts ------------------------------------------------------------------------------

    def load(self, load: Tuple[Any, ...]) -> RunContext:
        generation, run_id, name, version, raw_input, outputs = load
        workflow = self.engine._definition(generation, name, version)
        try:
            value = self.codec.decode(raw_input)
        except Exception as exc:  # noqa: BLE001 - any codec failure means the same: not here
            raise CannotRun(
                f"the {self.codec.name} codec of this engine cannot decode its input "
                f"({type(exc).__name__}: {describe(exc)}); open the store with the codec that wrote it"
            ) from exc
        prev = Outputs(self.codec.decode, outputs if len(outputs) else None)
        return RunContext(workflow, run_id, value, prev)

    def cannot_run(self, work: Work, exc: BaseException, ctx: Optional[RunContext] = None) -> None:
        """This process cannot run ``work``: not the step's failure (that would spend
        the run's retries on something no retry here changes) but the process's. The
        run is blocked, unchanged, and whoever waits for it hears why
        (:class:`duro.RunBlocked`); the worker goes on with other runs."""
        if ctx is not None:
            run = repr(ctx.run_id)
        elif work[5] is not None:
            run = repr(work[5][1])
        else:
            run = f"#{work[1]}"
        if isinstance(exc, CannotRun):
            reason = str(exc)
            log.error("duro: run %s is blocked: %s", run, reason)
        else:
            what = f"{KIND_NAMES.get(work[0], 'work')} #{work[2]}"
            reason = f"duro failed while running its {what} ({type(exc).__name__}: {describe(exc)}); the log has the traceback"
            log.error("duro: run %s is blocked: %s", run, reason, exc_info=exc)
        try:
            self.core.cannot_run(work[1], work[2], work[4], reason)
        except DuroError:
            pass  # the engine is closing or failed: the run resumes on reopen anyway

    # -- resolving what to call ----------------------------------------------------------------

    def resolve(self, work: Work, ctx: RunContext) -> Call:
        kind, index, attempt = work[0], work[3], work[4]
        wf = ctx.workflow
        if kind == TASK:
            spec = wf._step_list[index]
            assert spec.fn is not None
            if spec.arity == 1:
                args: Tuple[Any, ...] = (ctx.input,)
            elif spec.arity == 2:
                args = (ctx.input, ctx.prev)
            else:
                if spec.idempotency_key is not None:
                    key = str(spec.idempotency_key(ctx.input))
                else:
                    key = _core.idempotency_key(ctx.run_id, kind, spec.name)
                args = (ctx.input, ctx.prev, StepContext(ctx.run_id, spec.name, attempt, key, ctx.input))
            return Call(spec.fn, args, spec.name, spec, spec.timeout_ms, kind, spec.is_async)
        if kind == COMPENSATION:
            spec = wf._step_list[index]
            assert spec.compensate is not None
            output = ctx.prev.get(spec.name)
            key = _core.idempotency_key(ctx.run_id, kind, spec.name)
            full = (ctx.input, output, StepContext(ctx.run_id, spec.name, attempt, key, ctx.input))
            return Call(spec.compensate, full[: spec.compensate_arity], spec.name, spec, spec.timeout_ms, kind, spec.compensate_is_async)
        if kind == ON_FAILURE:
            handler = wf.failure_handler
            assert handler is not None
            failed_step, (error_type, message, _), completed = work[6]
            error = RunError(message=message, error_type=error_type, failed_step=failed_step)
            fctx = FailureContext(ctx.run_id, ctx.input, failed_step, error, list(completed), ctx.prev, attempt)
            args = (fctx,) if handler.arity == 1 else (ctx.input, fctx)
            return Call(handler.fn, args, "on_failure", None, None, kind, handler.is_async)
        raise DuroError(f"unknown work kind {kind}")

    # -- reporting -----------------------------------------------------------------------------

    def encode(self, call: Call, value: Any) -> bytes:
        """The checkpoint bytes of a return value; errors here fail the attempt (not retryable).

        A compensation's or on_failure handler's return value is informational
        (nothing reads it) and its side effect already happened: one the codec
        cannot hold, or too large, is recorded as a description of it (a
        string) with a warning, and the handler counts as done."""
        if call.kind == TASK:
            return self.encode_output(call.name, call.kind, value)
        try:
            return self.encode_output(call.name, call.kind, value)
        except (SerializationError, PayloadTooLarge) as exc:
            description = _describe_value(value)
            log.warning(
                "the return value of %s %r is not recorded as is (%s); recorded as %r instead",
                KIND_NAMES[call.kind],
                call.name,
                describe(exc),
                description,
            )
            return self.encode_output(call.name, call.kind, description)

    def encode_output(self, name: str, kind: int, value: Any) -> bytes:
        if type(value) not in _PLAIN_TYPES and inspect.isawaitable(value):
            close = getattr(value, "close", None)
            if close is not None:
                close()
            raise TypeError(
                f"{KIND_NAMES[kind]} {name!r} returned an awaitable; define the function with "
                "'async def' so duro awaits it"
            )
        try:
            raw = self.codec.encode(value)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise SerializationError(
                f"the output of {KIND_NAMES[kind]} {name!r} cannot be encoded by the {self.codec.name} "
                f"codec ({type(value).__name__}: {describe(exc)}); return JSON-compatible data (dict, list, str, "
                "int, float, bool, None), or open the engine with codec=duro.PickleCodec()"
            ) from exc
        if len(raw) > self.max_payload:
            raise PayloadTooLarge(
                f"the output of {KIND_NAMES[kind]} {name!r} is {len(raw)} bytes, over the limit of "
                f"{self.max_payload}; store large data elsewhere and return a reference"
            )
        return raw

    def commit(self, work: Work, ctx: RunContext, call: Call, raw: bytes, inline: bool = False) -> Any:
        """Reports success. The engine continues the run once the checkpoint is
        durable; with ``inline`` it may instead return ``(next work, position, round)``
        for the caller to run once ``position`` is durable."""
        # The output goes into the run's context before the engine hears of it: once
        # it has, another worker may run the next step, which must find it in ``prev``.
        task = call.kind == TASK
        if task:
            ctx.prev._put(call.name, raw)
        try:
            return self.core.step_ok(work[1], work[2], work[4], raw, inline)
        except _core.StaleResult as stale:
            # The attempt was closed while it ran (the workflow's deadline passed, or
            # the run was cancelled): its result is discarded, never seen by later code.
            if task:
                ctx.prev._discard(call.name)
            log.info("%s %r of run %r: %s", KIND_NAMES.get(work[0], "step"), call.name, ctx.run_id, stale)
            return STALE
        except BaseException:
            if task:
                ctx.prev._discard(call.name)
            raise

    def retryable(self, call: Call, exc: BaseException, wf: Workflow) -> bool:
        if isinstance(exc, (NonRetryableError, SerializationError, PayloadTooLarge)):
            return False
        if getattr(exc, "retryable", True) is False:
            return False
        spec = call.spec
        policy = (spec.retry if spec is not None and spec.retry is not None else None) or wf.retry
        if call.kind == ON_FAILURE and wf.failure_handler is not None:
            policy = wf.failure_handler.retry or wf.retry
        if policy.is_non_retryable(exc):
            return False
        if spec is not None and call.kind == TASK:
            if spec.retryable is False:
                return False
            if callable(spec.retryable) and not isinstance(spec.retryable, bool):
                try:
                    return bool(spec.retryable(exc))
                except Exception as predicate_error:  # noqa: BLE001 - report, then fail safe
                    log.error("the retryable predicate of step %r raised %r; not retrying", call.name, predicate_error)
                    return False
        return True

    def failed(self, work: Work, ctx: RunContext, call: Optional[Call], exc: BaseException, inline: bool = False) -> Any:
        name = call.name if call is not None else f"#{work[2]}"
        error_type = "StepTimeout" if isinstance(exc, StepTimeout) else type(exc).__name__
        message = describe(exc)
        retryable = self.retryable(call, exc, ctx.workflow) if call is not None else False
        log.warning(
            "%s %r of run %r failed (attempt %d, %s): %s: %s",
            KIND_NAMES.get(work[0], "step"),
            name,
            ctx.run_id,
            work[4],
            "retryable error" if retryable else "not retryable",
            error_type,
            message,
        )
        try:
            return self.core.step_err(work[1], work[2], work[4], error_type, message, retryable, inline)
        except _core.StaleResult as stale:
            log.info("%s %r of run %r: %s", KIND_NAMES.get(work[0], "step"), name, ctx.run_id, stale)
            return STALE

    # -- calling -------------------------------------------------------------------------------

    def call_sync(self, call: Call) -> Any:
        """Calls a plain function on this (worker) thread, or on its own thread when it has a timeout."""
        if call.timeout_ms is None:
            return call.fn(*call.args)
        timed = TimedCall(call)
        timed.start()
        if not timed.done.wait(call.timeout_ms / 1000.0) and timed.abandon():
            raise _timed_out(call)
        return timed.outcome()

    async def call_async(self, call: Call) -> Any:
        """Awaits a coroutine function; plain functions run in a thread, never on the loop."""
        if not call.is_async:
            loop = asyncio.get_running_loop()
            if call.timeout_ms is None:
                return await loop.run_in_executor(None, lambda: call.fn(*call.args))
            return await _await_timed(loop, call)
        awaitable = call.fn(*call.args)
        if call.timeout_ms is None:
            return await awaitable
        try:
            return await asyncio.wait_for(awaitable, call.timeout_ms / 1000.0)
        except asyncio.TimeoutError:
            raise StepTimeout(
                f"{KIND_NAMES[call.kind]} {call.name!r} did not finish within {call.timeout_ms / 1000.0:g}s and "
                "was cancelled; the attempt counts as failed"
            ) from None

    def close(self) -> None:
        """Nothing to release: a timed call that still runs holds only its own daemon thread."""


def _timed_out(call: Call) -> StepTimeout:
    return StepTimeout(
        f"{KIND_NAMES[call.kind]} {call.name!r} did not finish within {call.timeout_ms / 1000.0:g}s; "  # type: ignore[operator]
        "the attempt counts as failed and its late result is discarded"
    )


def _spawn(target: Callable[[], None], name: str) -> None:
    """Starts a daemon thread (a seam for tests that delay the start)."""
    threading.Thread(target=target, name=name, daemon=True).start()


_PENDING, _RUNNING, _ABANDONED = 0, 1, 2


class TimedCall:
    """One call of a plain function with a timeout, on a daemon thread of its own.

    Each timed call gets its own thread, started at once: a call that hangs
    holds only that thread, never a slot another step waits for. Python
    cannot stop a thread, so a call that times out runs on until it returns
    and its result is discarded; a call abandoned before its thread got to
    it never runs at all (its run may be final by then)."""

    __slots__ = ("call", "lock", "state", "value", "error", "done", "on_done")

    def __init__(self, call: Call, on_done: Optional[Callable[[], None]] = None) -> None:
        self.call = call
        self.lock = threading.Lock()
        self.state = _PENDING
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.on_done = on_done

    def start(self) -> None:
        _spawn(self._run, f"duro-step {self.call.name}"[:64])

    def _run(self) -> None:
        with self.lock:
            if self.state == _ABANDONED:
                return
            self.state = _RUNNING
        try:
            self.value = self.call.fn(*self.call.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which decides
            self.error = exc
        finally:
            self.done.set()
            if self.on_done is not None:
                self.on_done()

    def abandon(self) -> bool:
        """Gives up on the call. False when it finished meanwhile: its outcome counts."""
        with self.lock:
            if self.state == _PENDING:
                self.state = _ABANDONED
                return True
        return not self.done.is_set()

    def outcome(self) -> Any:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.value


async def _await_timed(loop: asyncio.AbstractEventLoop, call: Call) -> Any:
    """A timed plain function of an async workflow: its own thread, awaited without blocking the loop."""
    finished: "asyncio.Future[None]" = loop.create_future()

    def settle() -> None:
        if not finished.done():
            finished.set_result(None)

    def on_done() -> None:
        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for this call any more

    timed = TimedCall(call, on_done)
    timed.start()
    try:
        await asyncio.wait_for(finished, call.timeout_ms / 1000.0)  # type: ignore[operator]
    except asyncio.TimeoutError:
        if timed.abandon():
            raise _timed_out(call) from None
    except asyncio.CancelledError:
        timed.abandon()
        raise
    return timed.outcome()

