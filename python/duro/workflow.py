"""The workflow builder: named steps, sleeps and event waits in order.

A :class:`Workflow` is immutable; every builder call returns a new one and
records it in the process-wide registry under ``(name, version)``. Engines
take definitions from that registry to resume the unfinished runs of a
workflow once it is defined in the process.
"""

from __future__ import annotations

import functools
import inspect
import os
import random
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _core
from .durations import Duration, to_ms
from .errors import InvalidArgument, InvalidArgumentType
from .retry import Retry

if TYPE_CHECKING:
    from .engine import Engine
    from .handle import RunHandle

StepFn = Callable[..., Any]
RetryablePredicate = Callable[[BaseException], bool]

KIND_STEP = 0
KIND_SLEEP = 1
KIND_WAIT = 2


def _is_async(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def _arity(fn: Any, max_args: int, what: str) -> int:
    """How many of the positional arguments (input, prev, ctx) ``fn`` takes."""
    if not callable(fn):
        raise InvalidArgument(f"{what} must be callable, got {type(fn).__name__}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
        return max_args
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    if len(required) > max_args:
        raise InvalidArgument(
            f"{what} takes {len(required)} required arguments; it is called with at most {max_args}"
        )
    if not positional:
        raise InvalidArgument(f"{what} must accept at least one positional argument")
    return min(len(positional), max_args)


@dataclass(frozen=True)
class StepSpec:
    """One position of a workflow."""

    name: str
    kind: int
    fn: Optional[StepFn] = None
    arity: int = 1
    is_async: bool = False
    retry: Optional[Retry] = None
    retryable: Union[bool, RetryablePredicate] = True
    idempotency_key: Optional[Callable[[Any], str]] = None
    timeout_ms: Optional[int] = None
    compensate: Optional[StepFn] = None
    compensate_arity: int = 2
    compensate_is_async: bool = False
    duration_ms: Optional[int] = None


_EXTEND_LOCK = threading.Lock()


class _Steps(Sequence[StepSpec]):
    """The steps of one workflow: the first ``len(self)`` entries of ``items``, a list
    shared along a chain of builder calls.

    Each ``.step()`` returns a new workflow; copying a tuple of every step each time
    made defining n steps cost O(n²) (16,000 steps took 1.3 s). Extending the newest
    workflow of a chain appends to the shared list in place; extending an older one
    (a branch: ``base.step("a")`` and ``base.step("b")``) copies its prefix first, so
    what a workflow sees never changes. ``names`` maps a step name to its index in
    ``items``, shared the same way: a name belongs to this workflow if its index is
    below ``len(self)``."""

    __slots__ = ("items", "names", "_len")

    def __init__(self, items: List[StepSpec], names: Dict[str, int], length: int) -> None:
        self.items = items
        self.names = names
        self._len = length

    @classmethod
    def of(cls, steps: Iterable[StepSpec]) -> "_Steps":
        items = list(steps)
        return cls(items, {s.name: i for i, s in enumerate(items)}, len(items))

    def has_name(self, name: str) -> bool:
        index = self.names.get(name)
        return index is not None and index < self._len

    def extended(self, spec: StepSpec) -> "_Steps":
        with _EXTEND_LOCK:  # two threads extending one workflow must not share the append
            items, names = self.items, self.names
            if len(items) != self._len:
                items = items[: self._len]
                names = {s.name: i for i, s in enumerate(items)}
            items.append(spec)
            names[spec.name] = self._len
            return _Steps(items, names, self._len + 1)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self.items[: self._len])[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("step index out of range")
        return self.items[index]

    def __iter__(self) -> Iterator[StepSpec]:
        items = self.items
        for i in range(self._len):
            yield items[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (_Steps, tuple)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


@dataclass(frozen=True)
class FailureHandler:
    fn: StepFn
    arity: int
    is_async: bool
    retry: Optional[Retry]


class _Registry:
    """Process-wide definitions, by (name, version), and the engines that use them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.definitions: Dict[Tuple[str, str], "Workflow"] = {}
        self.changed_at: Dict[Tuple[str, str], float] = {}
        self.engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()

    def define(self, workflow: "Workflow") -> None:
        with self.lock:
            self.definitions[workflow.key] = workflow
            self.changed_at[workflow.key] = time.monotonic()

    def snapshot(self) -> List[Tuple["Workflow", float]]:
        with self.lock:
            return [(wf, self.changed_at[key]) for key, wf in self.definitions.items()]

    def get(self, key: Tuple[str, str]) -> Optional["Workflow"]:
        with self.lock:
            return self.definitions.get(key)


REGISTRY = _Registry()


@dataclass(frozen=True)
class Workflow:
    """A durable workflow: build it with :func:`duro.workflow` and the methods below."""

    name: str
    version: str = "1"
    retry: Retry = field(default_factory=Retry)
    timeout_ms: Optional[int] = None
    #: The steps in order (an immutable sequence; see ``_Steps``).
    steps: Sequence[StepSpec] = ()
    failure_handler: Optional[FailureHandler] = None
    #: ``steps`` as a plain list for the per-step path (``steps.items``; indexing a list
    #: is several times cheaper than ``_Steps.__getitem__``). Only indexes below
    #: ``len(steps)`` belong to this workflow; the engine hands out no others.
    _step_list: List[StepSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, _Steps):
            object.__setattr__(self, "steps", _Steps.of(self.steps))
        object.__setattr__(self, "_step_list", self.steps.items)  # type: ignore[attr-defined]
        REGISTRY.define(self)

    @property
    def key(self) -> Tuple[str, str]:
        return (self.name, self.version)

    @property
    def is_async(self) -> bool:
        """True when any function is a coroutine function: runs then go to the event loop."""
        cached = self.__dict__.get("_is_async_cache")
        if cached is None:  # asked on every start: computed once (the definition is immutable)
            cached = any(s.is_async or s.compensate_is_async for s in self.steps) or bool(
                self.failure_handler and self.failure_handler.is_async
            )
            object.__setattr__(self, "_is_async_cache", cached)
        return cached

    def _with_step(self, spec: StepSpec) -> "Workflow":
        steps = self.steps
        assert isinstance(steps, _Steps)
        if not isinstance(spec.name, str) or not spec.name:
            raise InvalidArgument("step names must be non-empty strings")
        if steps.has_name(spec.name):
            raise InvalidArgument(
                f"step name {spec.name!r} is used twice in workflow {self.name!r}; names must be unique "
                "(step outputs are keyed by name)"
            )
        extended = replace(self, steps=steps.extended(spec))
        # Carried forward step by step (O(1) each) rather than recomputed over every step
        # when an engine registers the workflow: opening an engine after a crash is what
        # a user waits for, and a definition of thousands of steps made that pass visible.
        object.__setattr__(extended, "_is_async_cache", self.is_async or spec.is_async or spec.compensate_is_async)
        chain = self.__dict__.get("_native_chain") if self.steps else None
        if chain is not None or not self.steps:
            object.__setattr__(extended, "_native_chain", (chain, self._native_step(spec)))
        return extended

    def step(
        self,
        name: str,
        fn: StepFn,
        *,
        retry: Optional[Retry] = None,
        retryable: Union[bool, RetryablePredicate] = True,
        idempotency_key: Optional[Callable[[Any], str]] = None,
        timeout: Optional[Duration] = None,
        compensate: Optional[StepFn] = None,
    ) -> "Workflow":
        """Adds a step. ``fn`` is called as ``fn(input)``, ``fn(input, prev)`` or
        ``fn(input, prev, ctx)`` (it may be ``async``); its return value is
        checkpointed before the next step starts. ``compensate(input, output)``
        undoes it if a later step fails."""
        if retry is not None and not isinstance(retry, Retry):
            raise InvalidArgument(f"retry of step {name!r} must be a duro.Retry, got {type(retry).__name__}")
        if not (isinstance(retryable, bool) or callable(retryable)):
            raise InvalidArgument(f"retryable of step {name!r} must be a bool or a predicate")
        if idempotency_key is not None and not callable(idempotency_key):
            raise InvalidArgumentType(
                f"idempotency_key of step {name!r} must be a function of the run's input, e.g. "
                f"idempotency_key=lambda order: f\"charge:{{order['id']}}\"; got {type(idempotency_key).__name__}"
            )
        return self._with_step(
            StepSpec(
                name=name,
                kind=KIND_STEP,
                fn=fn,
                arity=_arity(fn, 3, f"step {name!r}"),
                is_async=_is_async(fn),
                retry=retry,
                retryable=retryable,
                idempotency_key=idempotency_key,
                timeout_ms=_positive_timeout(timeout, f"timeout of step {name!r}"),
                compensate=compensate,
                compensate_arity=_arity(compensate, 3, f"compensate of step {name!r}") if compensate else 2,
                compensate_is_async=_is_async(compensate) if compensate else False,
            )
        )

    def sleep(self, name: str, duration: Duration) -> "Workflow":
        """A durable timer: the run sleeps (holding no memory) and wakes after ``duration``, across restarts."""
        duration_ms = to_ms(duration, "sleep")
        return self._with_step(StepSpec(name=name, kind=KIND_SLEEP, duration_ms=duration_ms))

    def wait_for_event(self, name: str, timeout: Optional[Duration] = None) -> "Workflow":
        """Waits durably for ``handle.send_event(name, payload)``; the payload lands in ``prev[name]``.
        Without an event before ``timeout`` the step fails with :class:`duro.EventTimeout`."""
        return self._with_step(StepSpec(name=name, kind=KIND_WAIT, timeout_ms=to_ms(timeout, "timeout")))

    def on_failure(self, fn: StepFn, *, retry: Optional[Retry] = None) -> "Workflow":
        """Called as ``fn(ctx)`` after compensations when the run fails; ``ctx`` has
        ``input``, ``failed_step``, ``error``, ``completed_steps`` and ``step_outputs``."""
        if retry is not None and not isinstance(retry, Retry):
            raise InvalidArgumentType(f"retry of on_failure must be a duro.Retry, got {type(retry).__name__}")
        return replace(
            self, failure_handler=FailureHandler(fn, _arity(fn, 2, "on_failure"), _is_async(fn), retry)
        )

    # -- what the engine registers ------------------------------------------------------------

    def _native_spec(self) -> Tuple[Any, ...]:
        cached = self.__dict__.get("_native_spec_cache")
        if cached is None:
            cached = self._build_native_spec()
            object.__setattr__(self, "_native_spec_cache", cached)
        return cached

    def _native_step(self, s: StepSpec) -> Tuple[Any, ...]:
        if s.kind == KIND_STEP:
            retry = (s.retry or self.retry)._spec()
            return (s.name, KIND_STEP, None, s.timeout_ms, retry, retry if s.compensate else None)
        if s.kind == KIND_SLEEP:
            return (s.name, KIND_SLEEP, s.duration_ms, None, None, None)
        return (s.name, KIND_WAIT, None, s.timeout_ms, None, None)

    def _build_native_spec(self) -> Tuple[Any, ...]:
        # ``_with_step`` keeps the steps' native tuples as a chain (newest first); a
        # workflow made another way converts every step here.
        chain = self.__dict__.get("_native_chain")
        steps: List[Any] = []
        while chain is not None:
            chain, step = chain
            steps.append(step)
        if len(steps) == len(self.steps):
            steps.reverse()
        else:
            steps = [self._native_step(s) for s in self.steps]
        handler = self.failure_handler
        on_failure = (handler.retry or self.retry)._spec() if handler else None
        return (self.name, self.version, 1 if self.is_async else 0, steps, on_failure, self.timeout_ms)

    # -- running -------------------------------------------------------------------------------

    def run(
        self,
        input: Any = None,
        *,
        engine: Optional["Engine"] = None,
        run_id: Optional[str] = None,
        delay: Optional[Duration] = None,
    ) -> "RunHandle":
        """Starts a run (durably) and returns its handle. The same ``run_id``
        always names the same run: starting it again returns the existing run."""
        return _resolve_engine(engine).start(self, input, run_id=run_id, delay=delay)

    async def run_async(
        self,
        input: Any = None,
        *,
        engine: Optional["Engine"] = None,
        run_id: Optional[str] = None,
        delay: Optional[Duration] = None,
    ) -> "RunHandle":
        """Like :meth:`run`, awaiting durability without blocking the event loop."""
        return await _resolve_engine(engine).start_async(self, input, run_id=run_id, delay=delay)

    def run_many(
        self,
        inputs: Iterable[Any],
        *,
        engine: Optional["Engine"] = None,
        run_ids: Optional[Sequence[Optional[str]]] = None,
        delay: Optional[Duration] = None,
    ) -> List["RunHandle"]:
        """Starts many runs with one shared wait for durability (one fsync for all).
        Every input is checked and encoded first: one that cannot be (or a run id
        that is not a str) raises before any run starts."""
        return _resolve_engine(engine).start_many(self, inputs, run_ids=run_ids, delay=delay)

    async def run_many_async(
        self,
        inputs: Iterable[Any],
        *,
        engine: Optional["Engine"] = None,
        run_ids: Optional[Sequence[Optional[str]]] = None,
        delay: Optional[Duration] = None,
    ) -> List["RunHandle"]:
        """Like :meth:`run_many`, awaiting durability without blocking the event loop."""
        return await _resolve_engine(engine).start_many_async(self, inputs, run_ids=run_ids, delay=delay)


def workflow(
    name: str,
    *,
    retry: Optional[Retry] = None,
    timeout: Optional[Duration] = None,
    version: str = "1",
) -> Workflow:
    """Begins a workflow definition. ``retry`` is the default policy of its
    steps; ``timeout`` fails a run that has not finished in that time;
    runs resume only under the same ``name`` and ``version``."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument("workflow name must be a non-empty string")
    if not isinstance(version, str) or not version:
        raise InvalidArgument("workflow version must be a non-empty string, e.g. \"1\"")
    if retry is not None and not isinstance(retry, Retry):
        raise InvalidArgument(f"retry must be a duro.Retry, got {type(retry).__name__}")
    return Workflow(
        name=name, version=version, retry=retry or Retry(), timeout_ms=_positive_timeout(timeout, "timeout of the workflow")
    )


def _positive_timeout(value: Optional[Duration], field: str) -> Optional[int]:
    """A timeout in ms; zero is refused (nothing could finish in it)."""
    ms = to_ms(value, "timeout")
    if ms == 0:
        raise InvalidArgument(f"invalid {field}: must be longer than 0, e.g. \"30s\"; pass None for no timeout")
    return ms


class _RunIds:
    """Random 128-bit run ids from a generator seeded by the OS, reseeded in a forked
    child (so parent and child never draw the same ids). Not the ``random`` module's
    shared generator: a program that calls ``random.seed(...)`` must not make run ids
    repeat. Ids are unique, not secret; os.urandom per id is a system call per start."""

    def __init__(self) -> None:
        self._rng = random.Random(os.urandom(32))
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._rng.seed(os.urandom(32))

    def new(self) -> str:
        return "%032x" % self._rng.getrandbits(128)


_RUN_IDS = _RunIds()


def _resolve_engine(engine: Optional["Engine"]) -> "Engine":
    """``engine.resolve_engine``, imported once: engine imports this module, and an
    import statement in each run() would cost microseconds per start."""
    global _resolve_engine_fn
    if _resolve_engine_fn is None:
        from .engine import resolve_engine

        _resolve_engine_fn = resolve_engine
    return _resolve_engine_fn(engine)


_resolve_engine_fn: Optional[Callable[[Optional["Engine"]], "Engine"]] = None


def new_run_id() -> str:
    """A random 128-bit id, as 32 hex digits (what uuid4().hex looks like)."""
    return _RUN_IDS.new()


__all__ = ["Workflow", "workflow", "StepSpec", "REGISTRY", "new_run_id", "_core"]
