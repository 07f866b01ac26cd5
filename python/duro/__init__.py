"""duro: durable workflow execution with a Rust core.

Define a workflow as named steps; every step's result is checkpointed
before the next one starts, so a run survives crashes and restarts and
never runs a finished step again::

    import duro

    engine = duro.Engine("./.duro")
    flow = (
        duro.workflow("order-flow", retry=duro.Retry(max_attempts=3))
        .step("reserve", reserve)
        .step("charge", charge, compensate=refund)
        .step("ship", ship)
    )
    result = flow.run({"order_id": "o-1"}, engine=engine, run_id="o-1").result()
"""

from __future__ import annotations

from . import _core
from .codec import Codec, JsonCodec, PickleCodec
from .context import FailureContext, StepContext
from .engine import Engine
from .errors import (
    BlockingCallInEventLoop,
    CorruptionError,
    DuroError,
    EngineClosed,
    EventLoopClosed,
    EventTimeout,
    InvalidArgument,
    InvalidArgumentType,
    NewerFormat,
    NonDeterminismError,
    NonRetryableError,
    PayloadTooLarge,
    ResultTimeout,
    RunBlocked,
    RunEnded,
    RunNotFound,
    SerializationError,
    StepTimeout,
    StoreError,
    StoreFailed,
    StoreLocked,
    WorkflowNotFound,
    WorkflowTimeout,
)
from .handle import RunHandle
from .results import CompensationError, JournalEntry, RunError, RunMeta, RunResult
from .retry import NO_RETRY, Retry
from .workflow import Workflow, workflow

__version__ = "0.1.0"

__all__ = [
    "NO_RETRY",
    "BlockingCallInEventLoop",
    "Codec",
    "CompensationError",
    "CorruptionError",
    "DuroError",
    "Engine",
    "EngineClosed",
    "EventLoopClosed",
    "EventTimeout",
    "FailureContext",
    "InvalidArgument",
    "InvalidArgumentType",
    "JournalEntry",
    "JsonCodec",
    "NewerFormat",
    "NonDeterminismError",
    "NonRetryableError",
    "PayloadTooLarge",
    "PickleCodec",
    "ResultTimeout",
    "Retry",
    "RunBlocked",
    "RunEnded",
    "RunError",
    "RunHandle",
    "RunMeta",
    "RunNotFound",
    "RunResult",
    "SerializationError",
    "StepContext",
    "StepTimeout",
    "StoreError",
    "StoreFailed",
    "StoreLocked",
    "Workflow",
    "WorkflowNotFound",
    "WorkflowTimeout",
    "__version__",
    "workflow",
]
