"""What step functions and failure handlers see besides their input."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional

from .results import RunError

_log = logging.getLogger("duro.step")


class StepContext:
    """Passed as the third argument to steps that take one.

    ``idempotency_key`` is stable across attempts and restarts of this step in
    this run: pass it to external systems so they can drop duplicates.
    """

    __slots__ = ("run_id", "step_name", "attempt", "idempotency_key", "input", "_logger")

    def __init__(self, run_id: str, step_name: str, attempt: int, idempotency_key: str, input: Any) -> None:
        self.run_id = run_id
        self.step_name = step_name
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.input = input
        self._logger: Optional[logging.LoggerAdapter[logging.Logger]] = None

    @property
    def logger(self) -> "logging.LoggerAdapter[logging.Logger]":
        """A logger whose records carry ``run_id``, ``step`` and ``attempt``."""
        if self._logger is None:
            self._logger = logging.LoggerAdapter(
                _log, {"run_id": self.run_id, "step": self.step_name, "attempt": self.attempt}
            )
        return self._logger

    def __repr__(self) -> str:
        return f"StepContext(run_id={self.run_id!r}, step_name={self.step_name!r}, attempt={self.attempt})"


class FailureContext:
    """Passed to the ``on_failure`` handler after compensations ran."""

    __slots__ = ("run_id", "input", "failed_step", "error", "completed_steps", "step_outputs", "attempt", "logger")

    def __init__(
        self,
        run_id: str,
        input: Any,
        failed_step: Optional[str],
        error: RunError,
        completed_steps: List[str],
        step_outputs: Mapping[str, Any],
        attempt: int,
    ) -> None:
        self.run_id = run_id
        self.input = input
        self.failed_step = failed_step
        self.error = error
        self.completed_steps = completed_steps
        self.step_outputs: Dict[str, Any] = dict(step_outputs)
        self.attempt = attempt
        self.logger = logging.LoggerAdapter(_log, {"run_id": run_id, "step": "on_failure", "attempt": attempt})

    def __repr__(self) -> str:
        return f"FailureContext(run_id={self.run_id!r}, failed_step={self.failed_step!r}, error={self.error!r})"
