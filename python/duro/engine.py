"""The engine: one store, the workers that run steps, and the registry link."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _args, _core
from ._async_lane import AsyncDriver, _current_loop
from ._runner import Runner, describe
from ._sync_lane import SyncWorkers
from .codec import Codec, JsonCodec
from .durations import Duration, to_ms
from .errors import (
    BlockingCallInEventLoop,
    DuroError,
    EventLoopClosed,
    InvalidArgument,
    InvalidArgumentType,
    RunNotFound,
    SerializationError,
)
from .handle import RunHandle
from .results import CompensationError, JournalEntry, RunError, RunMeta, RunResult, _time, entry_from, meta_from
from .workflow import REGISTRY, Workflow, new_run_id

log = logging.getLogger("duro")

#: One start, checked and encoded: (run id, input bytes, delay in ms, id generated here).
_Prepared = Tuple[str, bytes, Optional[int], bool]

#: A definition unchanged this long (seconds) is taken as complete and its runs resume.
SETTLE_SECONDS = 0.2

_FORKED = False
#: Forks this process descends from: an engine opened under another count belongs to
#: an ancestor. (Checked on every call; os.getpid() would be a system call each time.)
_FORK_GENERATION = 0


def _after_fork_in_child() -> None:
    global _FORKED, _FORK_GENERATION
    _FORKED = True
    _FORK_GENERATION += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Engine:
    """Runs durable workflows over a store.

    ``Engine("./.duro")`` opens (creating if missing, mode 0700) an embedded
    store in that directory; ``Engine(":memory:")`` keeps nothing. Unfinished
    runs found in the store resume as soon as their workflow (same name and
    version) is defined in this process.

    ``workers`` threads run plain step functions; coroutine steps run on an
    event loop: the one running when the engine was opened (or ``loop``),
    else a background thread's. ``fsync=False`` is a relaxed mode that
    acknowledges checkpoints before they reach the disk (a crash of the
    machine, not just the process, can lose them); it is logged as a warning.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]", None] = "./.duro",
        *,
        codec: Optional[Codec] = None,
        workers: int = 8,
        max_payload_bytes: Optional[int] = None,
        max_recovery_attempts: Optional[int] = None,
        fsync: bool = True,
        segment_size: Optional[int] = None,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if _FORKED:
            pass  # engines of the parent are unusable here; opening a new one is fine
        location = _args.store_path(path)
        self.path: Optional[Path] = None if location is None or location == ":memory:" else Path(location)
        if codec is not None and not isinstance(codec, Codec):
            raise InvalidArgumentType("codec must have a name and encode/decode methods (see duro.Codec)")
        _args.positive_int(workers, "workers", "workers=8")
        _args.optional_positive_int(max_payload_bytes, "max_payload_bytes", "max_payload_bytes=1 << 20", 1 << 30)
        _args.optional_positive_int(max_recovery_attempts, "max_recovery_attempts", "max_recovery_attempts=50", (1 << 32) - 1)
        _args.optional_positive_int(segment_size, "segment_size", "segment_size=8 << 20")
        _args.flag(fsync, "fsync")
        if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
            raise InvalidArgumentType(f"loop must be an asyncio event loop or None, got {type(loop).__name__}")
        self.codec: Codec = codec or JsonCodec()
        self.fsync = fsync
        self._pid = os.getpid()
        self._fork_generation = _FORK_GENERATION
        # The workflows defined so far are registered by the core while it opens the
        # store (their specs are built as it asks for them), so a crashed run of a long
        # workflow resumes without waiting for its definition after the open.
        defined = [workflow for workflow, _ in REGISTRY.snapshot()]
        self._core = _core.Core(
            None if self.path is None else str(self.path),
            max_payload_bytes=max_payload_bytes,
            max_recovery_attempts=max_recovery_attempts,
            segment_size=segment_size,
            fsync=fsync,
            definitions=(workflow._native_spec() for workflow in defined),
        )
        self._lock = threading.RLock()
        self._active: Dict[Tuple[str, str], Tuple[Workflow, int]] = {}
        self._generations: Dict[int, Workflow] = {}
        self._runner = Runner(self)
        self._worker_count = workers
        self._sync: Optional[SyncWorkers] = None
        self._async: Optional[AsyncDriver] = None
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self._loop = loop
        self._closed = False
        REGISTRY.engines.add(self)
        log.info("duro engine opened: %s", self._core.description)
        if not fsync:
            log.warning(
                "duro engine at %s runs with fsync=False: checkpoints are acknowledged before they are on disk, "
                "and a machine crash can lose them",
                self.path,
            )
        # Every definition is known before any worker starts: the runs of all of them
        # may be handed out as soon as one lane has workers.
        for workflow, generation in zip(defined, self._core.registered_at_open()):
            self._record(workflow, generation)
        for workflow in defined:
            self._start_lane(workflow)
        self._maintenance = threading.Thread(target=self._maintain, name="duro-maintenance", daemon=True)
        self._maintenance.start()

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self.close)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float = 10.0) -> None:
        """Stops taking new work, lets steps in progress finish (up to ``timeout``
        seconds), and closes the store. Everything acknowledged stays durable;
        unfinished runs resume when a store at this path is opened again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if os.getpid() != self._pid:
            return  # a forked child must not close its parent's store
        self._core.stop_work()
        if self._sync is not None:
            self._sync.stop(timeout)
        if self._async is not None:
            self._async.stop()
        self._runner.close()
        try:
            self._core.close()
        finally:
            REGISTRY.engines.discard(self)
            log.info("duro engine closed: %s", self._core.description)

    def _check_usable(self) -> None:
        if self._closed:
            raise _core.EngineClosed("this engine was closed; open a new duro.Engine")
        if _FORK_GENERATION != self._fork_generation:
            raise DuroError(
                "this engine was opened in the parent process before os.fork(); open a new duro.Engine in the child"
            )

    # -- definitions ------------------------------------------------------------------------------

    def register(self, *workflows: Workflow) -> None:
        """Defines workflows in this engine now (otherwise that happens on first use,
        or a moment after they are defined): their unfinished runs resume."""
        for workflow in workflows:
            self._activate(workflow)

    def _activate(self, workflow: Workflow) -> int:
        # Every start comes here: answer an active definition without the lock (a
        # dict read is atomic; entries are only replaced, under the lock, below).
        current = self._active.get(workflow.key)
        if current is not None and current[0] is workflow:
            return current[1]
        with self._lock:
            current = self._active.get(workflow.key)
            if current is not None and current[0] is workflow:
                return current[1]
            self._check_usable()
            generation = int(self._core.register(*workflow._native_spec()))
            self._record(workflow, generation)
            self._start_lane(workflow)
            return generation

    def _record(self, workflow: Workflow, generation: int) -> None:
        """Makes a registered workflow this engine's current definition of its key."""
        with self._lock:
            self._active[workflow.key] = (workflow, generation)
            self._generations[generation] = workflow

    def _start_lane(self, workflow: Workflow) -> None:
        """Starts what runs the workflow's steps (sync workers or the asyncio driver)."""
        with self._lock:
            if workflow.is_async:
                self._async_driver()
            elif self._sync is None:
                self._sync = SyncWorkers(self, self._runner, self._worker_count)

    def _definition(self, generation: int, name: str, version: str) -> Workflow:
        workflow = self._generations.get(generation)
        if workflow is None:
            # A registration still in progress: `_activate` records its generation
            # while holding the lock, and the core may hand out its work before that.
            with self._lock:
                workflow = self._generations.get(generation)
        if workflow is None:
            active = self._active.get((name, version))
            if active is None:
                raise DuroError(f"workflow {name!r} version {version!r} is not defined in this engine")
            workflow = active[0]
        return workflow

    def _maintain(self) -> None:
        """Activates definitions made after the engine opened, once they settle."""
        while not self._closed:
            time.sleep(SETTLE_SECONDS / 2)
            now = time.monotonic()
            for workflow, changed_at in REGISTRY.snapshot():
                if now - changed_at < SETTLE_SECONDS:
                    continue
                current = self._active.get(workflow.key)
                if current is None or current[0] is not workflow:
                    try:
                        self._activate(workflow)
                    except DuroError as exc:
                        if not self._closed:
                            log.error("duro: cannot define workflow %r: %s", workflow.name, exc)

    def _async_driver(self) -> AsyncDriver:
        driver = self._async  # set once, under the lock; read without it on every start and wait
        if driver is not None and not driver.loop.is_closed():
            return driver
        with self._lock:
            if self._async is None:
                self._check_usable()
                if self._loop is not None and self._loop.is_closed():
                    raise self._loop_closed_error("async workflows cannot run")
                self._async = AsyncDriver(self, self._runner, self._loop)
            elif self._async.loop.is_closed():
                raise self._loop_closed_error("async workflows cannot run")
            return self._async

    # -- the event loop of async workflows --------------------------------------------------------

    def _async_loop(self) -> Optional[asyncio.AbstractEventLoop]:
        """The loop that runs this engine's async workflows, once known."""
        driver = self._async
        return driver.loop if driver is not None else self._loop

    def _loop_closed(self) -> bool:
        loop = self._async_loop()
        return loop is not None and loop.is_closed()

    def _loop_closed_error(self, what: str) -> EventLoopClosed:
        return EventLoopClosed(
            f"the event loop this engine runs async workflows on (the one running when the engine was opened) "
            f"is closed, so {what}. Open the engine inside the loop that runs its async workflows and close it "
            "before that loop ends (async with duro.Engine(...)), or open it outside any event loop so it runs "
            "them on a thread of its own; unfinished runs resume when the store is opened again"
        )

    def _runs_on_async_lane(self, run_key: int) -> bool:
        """Whether the run's workflow (as defined in this process) runs on the event loop."""
        summary = self._core.summary(run_key)
        if summary is None:
            return False
        key = (summary["workflow"], summary["version"])
        active = self._active.get(key)
        defined = active[0] if active is not None else REGISTRY.get(key)
        return defined is not None and defined.is_async

    def _check_blocking_wait(self, run_key: int, run_id: str) -> None:
        """Refuses a blocking wait for a run that can never end while this thread waits:
        one whose event loop is this thread's running loop, or is closed."""
        loop = self._async_loop()
        if loop is None:
            return
        on_loop = _current_loop() is loop
        if not on_loop and not loop.is_closed():
            return
        if self._core.wait_finished(run_key, 0.0) is not None or not self._runs_on_async_lane(run_key):
            return  # it ended (nothing to wait for), or it does not need the loop
        if on_loop:
            raise BlockingCallInEventLoop(
                f"handle.result() would block the event loop that runs run {run_id!r}, so the run could never "
                f"finish; in a coroutine use 'await handle.result_async()' (or call result() from another thread)"
            )
        raise self._loop_closed_error(f"run {run_id!r} of an async workflow cannot make progress")

    # -- starting runs ----------------------------------------------------------------------------

    def _encode(self, value: Any, what: str) -> bytes:
        try:
            raw = self.codec.encode(value)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise SerializationError(
                f"the {what} cannot be encoded by the {self.codec.name} codec ({type(value).__name__}: "
                f"{describe(exc)}); pass JSON-compatible data, or open the engine with codec=duro.PickleCodec()"
            ) from exc
        return raw

    def _begin(self, workflow: Workflow, input: Any, run_id: Optional[str], delay: Optional[Duration]) -> Tuple[RunHandle, Tuple[int, bool]]:
        delay_ms = self._check_start(workflow, delay)
        return self._start_prepared(workflow, self._prepare(workflow, input, run_id, delay_ms))

    def _check_start(self, workflow: Workflow, delay: Optional[Duration]) -> Optional[int]:
        """Checks what every start of a call shares (engine, workflow, delay); the delay in ms."""
        self._check_usable()
        if not isinstance(workflow, Workflow):
            raise InvalidArgument(f"expected a duro workflow, got {type(workflow).__name__}")
        return to_ms(delay, "delay")

    def _prepare(self, workflow: Workflow, input: Any, run_id: Optional[str], delay_ms: Optional[int]) -> _Prepared:
        """Checks one start's run id and encodes its input: (run id, input bytes, delay in ms,
        whether the id was generated here: fresh random bits no run holds, so the store need
        not look it up)."""
        generated = run_id is None
        if run_id is None:
            run_id = new_run_id()
        elif not isinstance(run_id, str):
            raise InvalidArgument(f"run_id must be a str, got {type(run_id).__name__}")
        raw = self._encode(input, f"input of workflow {workflow.name!r}")
        return run_id, raw, delay_ms, generated

    def _start_prepared(self, workflow: Workflow, prepared: _Prepared) -> Tuple[RunHandle, Tuple[int, bool]]:
        run_id, raw, delay_ms, generated = prepared
        self._activate(workflow)
        if workflow.is_async and self._loop_closed():
            raise self._loop_closed_error(f"runs of async workflow {workflow.name!r} cannot start")
        run_key, _created, receipt = self._core.start(workflow.name, workflow.version, run_id, raw, delay_ms, generated)
        return RunHandle(self, run_id, run_key), receipt

    def start(self, workflow: Workflow, input: Any = None, *, run_id: Optional[str] = None, delay: Optional[Duration] = None) -> RunHandle:
        """Starts a run and returns once it is durable (``workflow.run`` calls this)."""
        handle, receipt = self._begin(workflow, input, run_id, delay)
        self._core.wait_durable(receipt)
        return handle

    async def start_async(self, workflow: Workflow, input: Any = None, *, run_id: Optional[str] = None, delay: Optional[Duration] = None) -> RunHandle:
        handle, receipt = self._begin(workflow, input, run_id, delay)
        await self._durable_async(receipt)
        return handle

    def start_many(
        self,
        workflow: Workflow,
        inputs: Iterable[Any],
        *,
        run_ids: Optional[Sequence[Optional[str]]] = None,
        delay: Optional[Duration] = None,
    ) -> List[RunHandle]:
        """Starts many runs with one shared wait for durability (``workflow.run_many`` calls this)."""
        handles, last = self._begin_many(workflow, inputs, run_ids, delay)
        if last is not None:
            self._core.wait_durable(last)
        return handles

    async def start_many_async(
        self,
        workflow: Workflow,
        inputs: Iterable[Any],
        *,
        run_ids: Optional[Sequence[Optional[str]]] = None,
        delay: Optional[Duration] = None,
    ) -> List[RunHandle]:
        handles, last = self._begin_many(workflow, inputs, run_ids, delay)
        if last is not None:
            await self._durable_async(last)
        return handles

    def _begin_many(
        self,
        workflow: Workflow,
        inputs: Iterable[Any],
        run_ids: Optional[Sequence[Optional[str]]],
        delay: Optional[Duration],
    ) -> Tuple[List[RunHandle], Optional[Tuple[int, bool]]]:
        inputs = _args.inputs(inputs)
        if run_ids is not None and (isinstance(run_ids, (str, bytes)) or not isinstance(run_ids, Sequence)):
            raise InvalidArgumentType(
                f"run_ids must be a list with one run id (or None) per input, got {type(run_ids).__name__}"
            )
        if run_ids is not None and len(run_ids) != len(inputs):
            raise InvalidArgument(f"run_ids has {len(run_ids)} items but there are {len(inputs)} inputs")
        # Every input is checked and encoded before the first run starts: a bad one
        # (not encodable, too large, a run id that is not a str) starts nothing.
        delay_ms = self._check_start(workflow, delay)
        prepared = [
            self._prepare(workflow, value, run_ids[i] if run_ids is not None else None, delay_ms)
            for i, value in enumerate(inputs)
        ]
        handles = []
        last: Optional[Tuple[int, bool]] = None
        for item in prepared:
            handle, receipt = self._start_prepared(workflow, item)
            handles.append(handle)
            if last is None or receipt[0] >= last[0]:
                last = receipt
        return handles, last

    async def _durable_async(self, receipt: Tuple[int, bool]) -> None:
        if receipt[1]:
            return
        if self._loop_closed():
            # Durability does not need the loop: wait for it on a thread.
            await asyncio.to_thread(self._core.wait_durable, receipt)
            return
        driver = self._async_driver()
        if asyncio.get_running_loop() is driver.loop:
            await driver.until_durable(receipt[0])
        else:
            await driver.watch_durable(receipt[0])

    # -- inspection -------------------------------------------------------------------------------

    def handle(self, run_id: str) -> RunHandle:
        """The handle of an existing run (raises :class:`duro.RunNotFound`)."""
        self._check_usable()
        _args.text(run_id, "run_id", 'engine.handle("o-1")')
        summary = self._core.lookup(run_id)
        if summary is None:
            raise RunNotFound(f"no run with id {run_id!r} in {self._core.description}")
        return RunHandle(self, run_id, summary["run_key"])

    async def handle_async(self, run_id: str) -> RunHandle:
        return await asyncio.to_thread(self.handle, run_id)

    def runs(
        self,
        status: Union[str, Sequence[str], None] = None,
        workflow: Optional[str] = None,
        limit: int = 50,
        created_after: Union[float, datetime, None] = None,
        created_before: Union[float, datetime, None] = None,
    ) -> List[RunMeta]:
        """Runs, newest first, filtered by status (one or several), workflow name and
        creation time (Unix timestamps in seconds, or datetimes). ``limit`` is at least 1."""
        self._check_usable()
        statuses = _args.statuses(status)
        if workflow is not None:
            _args.text(workflow, "workflow", 'workflow="order-flow" or workflow=flow.name')
        limit = _args.positive_int(limit, "limit", "limit=50")
        rows = self._core.runs(
            statuses,
            workflow,
            _args.timestamp_ms(created_after, "created_after"),
            _args.timestamp_ms(created_before, "created_before"),
            limit,
        )
        return [meta_from(row, self._core.blocked_reason(row["run_key"])) for row in rows]

    async def runs_async(self, *args: Any, **kwargs: Any) -> List[RunMeta]:
        return await asyncio.to_thread(self.runs, *args, **kwargs)

    def _meta(self, run_key: int, run_id: str) -> RunMeta:
        self._check_usable()
        summary = self._core.summary(run_key)
        if summary is None:
            raise RunNotFound(f"no run with id {run_id!r} in {self._core.description}")
        return meta_from(summary, self._core.blocked_reason(run_key))

    def _journal(self, run_key: int) -> List[JournalEntry]:
        self._check_usable()
        return [entry_from(raw, self._decode_lenient) for raw in self._core.journal(run_key)]

    def _decode_lenient(self, raw: bytes) -> Any:
        try:
            return self.codec.decode(raw)
        except Exception:  # noqa: BLE001 - inspection must work even for undecodable data
            return raw

    def _result_from(self, outcome: Any, run_key: int) -> RunResult:
        status, run_id, outputs, _output, error, failed_step, failed_attempt, comp_errors, completed_at = outcome
        if status == "completed":
            return RunResult(run_id, status, completed_at_ms=completed_at, raw_outputs=outputs, decode=self.codec.decode)
        completed = _time(completed_at)
        journal = self._journal(run_key)
        compensations = [CompensationError(step=name, error_type=e[0], message=e[1]) for name, e in comp_errors]
        if status == "cancelled":
            run_error = RunError(
                message="the run was cancelled",
                error_type="Cancelled",
                compensation_errors=compensations,
                journal=journal,
            )
        else:
            error_type, message, _retryable = error if error is not None else ("Error", "the run failed", False)
            run_error = RunError(
                message=message,
                error_type=error_type,
                failed_step=failed_step,
                attempt=failed_attempt,
                compensation_errors=compensations,
                journal=journal,
            )
        return RunResult(run_id=run_id, status=status, value=None, error=run_error, completed_at=completed)

    def stats(self) -> Dict[str, int]:
        """Runs in memory, queued work per lane, and pending timers (diagnostics)."""
        in_memory, sync_queued, async_queued, timers = self._core.stats()
        return {"runs_in_memory": in_memory, "sync_queued": sync_queued, "async_queued": async_queued, "timers": timers}

    def __repr__(self) -> str:
        return f"Engine({self._core.description!r})"


def resolve_engine(engine: Optional[Engine]) -> Engine:
    """The engine to use when a call does not name one: the only open engine."""
    if engine is not None:
        if not isinstance(engine, Engine):
            raise InvalidArgument(f"engine must be a duro.Engine, got {type(engine).__name__}")
        return engine
    engines = [e for e in REGISTRY.engines if not e.closed]
    if len(engines) == 1:
        return engines[0]
    if not engines:
        raise InvalidArgument("no engine is open: pass engine=duro.Engine(\"./.duro\")")
    raise InvalidArgument(f"{len(engines)} engines are open; pass engine=... to say which one to use")


@atexit.register
def _close_engines_at_exit() -> None:
    for engine in list(REGISTRY.engines):
        try:
            engine.close(timeout=2.0)
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass
