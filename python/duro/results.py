"""What inspecting a run returns: results, errors, metadata, journal entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional


def _time(ms: Optional[int]) -> Optional[datetime]:
    return None if ms is None else datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)


@dataclass(frozen=True)
class JournalEntry:
    """One step position of a run, as recorded."""

    index: int
    name: str
    kind: str
    status: str
    attempt: int
    output: Any
    error: Optional[str]
    error_type: Optional[str]
    started_at: Optional[datetime]
    completed_at: Optional[datetime]
    duration: Optional[float]
    """Seconds from the first attempt's start to the end, once ended."""
    retry_at: Optional[datetime] = None


@dataclass(frozen=True)
class CompensationError:
    step: str
    error_type: str
    message: str


@dataclass(frozen=True)
class RunError:
    """Why a run failed (or was cancelled)."""

    message: str
    error_type: str
    failed_step: Optional[str] = None
    attempt: int = 0
    compensation_errors: List[CompensationError] = field(default_factory=list)
    journal: List[JournalEntry] = field(default_factory=list)

    def __str__(self) -> str:
        where = f" in step {self.failed_step!r}" if self.failed_step else ""
        return f"{self.error_type}{where}: {self.message}"


class RunResult:
    """How a run ended. ``value`` maps step names to their outputs (decoded on
    first access), ``None`` unless the run completed."""

    __slots__ = ("run_id", "status", "error", "_completed_at", "_completed_at_ms", "_raw", "_decode", "_value")

    def __init__(
        self,
        run_id: str,
        status: str,
        value: Optional[Dict[str, Any]] = None,
        error: Optional[RunError] = None,
        completed_at: Optional[datetime] = None,
        raw_outputs: Optional[List[Any]] = None,
        decode: Any = None,
        completed_at_ms: Optional[int] = None,
    ) -> None:
        self.run_id = run_id
        self.status = status
        self.error = error
        self._completed_at = completed_at
        self._completed_at_ms = completed_at_ms
        self._raw = raw_outputs
        self._decode = decode
        self._value = value

    @property
    def completed_at(self) -> Optional[datetime]:
        """When the run ended (UTC); made on first access, like ``value``."""
        if self._completed_at is None and self._completed_at_ms is not None:
            self._completed_at = _time(self._completed_at_ms)
        return self._completed_at

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def value(self) -> Optional[Dict[str, Any]]:
        if self._value is None and self._raw is not None:
            decode = self._decode
            self._value = {name: decode(raw) for name, raw in self._raw if raw}
            self._raw = None
        return self._value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunResult):
            return NotImplemented
        return (self.run_id, self.status, self.value, self.error) == (other.run_id, other.status, other.value, other.error)

    def __repr__(self) -> str:
        return f"RunResult(run_id={self.run_id!r}, status={self.status!r}, value={self.value!r}, error={self.error!r})"


@dataclass(frozen=True)
class RunMeta:
    run_id: str
    workflow: str
    version: str
    status: str
    created_at: datetime
    started_at: Optional[datetime]
    updated_at: datetime
    completed_at: Optional[datetime]
    current_step: Optional[str]
    step_count: int
    completed_step_count: int
    error: Optional[str]
    error_type: Optional[str]
    wake_at: Optional[datetime]
    blocked: Optional[str] = None
    """Set when the run cannot continue because its journal disagrees with the definition."""


def meta_from(summary: Dict[str, Any], blocked: Optional[str] = None) -> RunMeta:
    error = summary["error"]
    return RunMeta(
        run_id=summary["run_id"],
        workflow=summary["workflow"],
        version=summary["version"],
        status=summary["status"],
        created_at=_time(summary["created_at_ms"]),  # type: ignore[arg-type]
        started_at=_time(summary["started_at_ms"]),
        updated_at=_time(summary["updated_at_ms"]),  # type: ignore[arg-type]
        completed_at=_time(summary["completed_at_ms"]),
        current_step=summary["current_step"],
        step_count=summary["step_count"],
        completed_step_count=summary["completed_step_count"],
        error=error[1] if error else None,
        error_type=error[0] if error else None,
        wake_at=_time(summary["wake_at_ms"]),
        blocked=blocked,
    )


def entry_from(raw: Dict[str, Any], decode: Any) -> JournalEntry:
    error = raw["error"]
    output = raw["output"]
    duration = raw["duration_ms"]
    return JournalEntry(
        index=raw["index"],
        name=raw["name"],
        kind=raw["kind"],
        status=raw["status"],
        attempt=raw["attempt"],
        output=decode(output) if output else None,
        error=error[1] if error else None,
        error_type=error[0] if error else None,
        started_at=_time(raw["started_at_ms"]),
        completed_at=_time(raw["completed_at_ms"]),
        duration=None if duration is None else duration / 1000.0,
        retry_at=_time(raw["retry_at_ms"]),
    )


__all__ = ["CompensationError", "JournalEntry", "RunError", "RunMeta", "RunResult", "meta_from", "entry_from", "_time"]
