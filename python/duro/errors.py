"""Every error duro raises derives from :class:`DuroError`.

The store and engine errors come from the native module (so Rust can raise
them); the errors about calling user code live here.
"""

from __future__ import annotations

from ._core import (
    CorruptionError,
    DuroError,
    EngineClosed,
    InvalidArgument,
    NewerFormat,
    NonDeterminismError,
    PayloadTooLarge,
    RunEnded,
    RunNotFound,
    StoreError,
    StoreFailed,
    StoreLocked,
    WorkflowNotFound,
)

__all__ = [
    "CorruptionError",
    "DuroError",
    "EngineClosed",
    "EventTimeout",
    "InvalidArgument",
    "InvalidArgumentType",
    "BlockingCallInEventLoop",
    "EventLoopClosed",
    "NewerFormat",
    "NonDeterminismError",
    "NonRetryableError",
    "PayloadTooLarge",
    "ResultTimeout",
    "RunBlocked",
    "RunEnded",
    "RunNotFound",
    "SerializationError",
    "StepTimeout",
    "StoreError",
    "StoreFailed",
    "StoreLocked",
    "WorkflowNotFound",
    "WorkflowTimeout",
]


class NonRetryableError(DuroError):
    """Raise this (or a subclass) from a step to fail it at once, without retries."""

    retryable = False


class SerializationError(DuroError, TypeError):
    """A value could not be encoded by the codec; the message names the step and the type."""


class StepTimeout(DuroError):
    """A step attempt ran longer than its ``timeout``; it counts as a failed attempt."""


class WorkflowTimeout(DuroError):
    """The run did not finish within the workflow's ``timeout``."""


class EventTimeout(DuroError):
    """No event arrived before a ``wait_for_event`` timed out."""


class ResultTimeout(DuroError, TimeoutError):
    """``handle.result(timeout=...)`` gave up waiting; the run goes on."""


class InvalidArgumentType(InvalidArgument, TypeError):
    """An argument of the wrong type. Also a ``TypeError``, so code that catches
    ``TypeError`` keeps working; ``except duro.InvalidArgument`` catches it too."""


class BlockingCallInEventLoop(DuroError, RuntimeError):
    """A blocking wait was called on the thread of the event loop that has to run
    what it waits for, so it could never end: ``await`` the ``*_async`` twin there
    (``await handle.result_async()``)."""


class RunBlocked(DuroError):
    """The run cannot continue in this process for a reason of the process, not of
    a step: its input cannot be decoded by this engine's codec, say. Nothing of the
    run was changed and no retry was spent; it waits. Open the store again with a
    process that can run it (the codec that wrote it), or call
    ``engine.register(workflow)`` once the cause is fixed, and it goes on."""


class EventLoopClosed(DuroError, RuntimeError):
    """The event loop this engine runs async workflows on is closed, so their runs
    cannot make progress in this engine. Close engines before their loop ends
    (``async with duro.Engine(...)``), or open them outside any loop; unfinished
    runs resume when the store is opened again."""
