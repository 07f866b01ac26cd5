"""Retry policies: exponential backoff, capped, with deterministic jitter."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Optional, Tuple, Type, Union

from . import _core
from .durations import Duration, to_ms
from .errors import InvalidArgument, InvalidArgumentType

ErrorKind = Union[Type[BaseException], str]


@dataclass(frozen=True)
class Retry:
    """How a failing step is retried.

    The delay before attempt ``n + 1`` is ``initial_delay * multiplier ** (n - 1)``,
    capped at ``max_delay`` and reduced by up to ``jitter`` (a fraction) chosen
    deterministically per run, step and attempt. There is no wait after the
    last attempt. ``non_retryable`` lists exception classes (or type names)
    that fail the step at once.

    Values are validated when the policy is made; a bad one raises
    :class:`duro.InvalidArgument` naming the field.
    """

    max_attempts: int = 3
    initial_delay: Duration = "1s"
    multiplier: float = 2.0
    max_delay: Optional[Duration] = None
    jitter: float = 0.2
    non_retryable: Tuple[ErrorKind, ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise InvalidArgumentType(f"invalid max_attempts: expected an int, got {self.max_attempts!r}")
        for field_name in ("multiplier", "jitter"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidArgumentType(f"invalid {field_name}: expected a number, got {type(value).__name__} {value!r}")
        if not isinstance(self.non_retryable, tuple):
            if isinstance(self.non_retryable, (str, type)) or not isinstance(self.non_retryable, Iterable):
                raise InvalidArgumentType(
                    "invalid non_retryable: expected a tuple of exception classes or type names, e.g. "
                    f"non_retryable=(ValueError, \"CardDeclined\"); got {self.non_retryable!r}"
                )
            object.__setattr__(self, "non_retryable", tuple(self.non_retryable))
        for kind in self.non_retryable:
            if not (isinstance(kind, str) or (isinstance(kind, type) and issubclass(kind, BaseException))):
                raise InvalidArgument(f"invalid non_retryable: {kind!r} is neither an exception class nor a type name")
        spec = self._build_spec()
        _core.validate_retry(spec)
        object.__setattr__(self, "_spec_cache", spec)

    def _spec(self) -> Tuple[int, int, float, Optional[int], float, list[str]]:
        """The policy as the native module takes it (computed once: workflows of
        thousands of steps ask for it per step when they are registered)."""
        return self._spec_cache  # type: ignore[no-any-return, attr-defined]

    def _build_spec(self) -> Tuple[int, int, float, Optional[int], float, list[str]]:
        if self.max_attempts < 0 or self.max_attempts >= 1 << 32:
            raise InvalidArgument(
                f"invalid max_attempts: must be at least 1 (1 means no retries) and below 2**32, got {self.max_attempts}"
            )
        initial = to_ms(self.initial_delay, "initial_delay")
        return (
            self.max_attempts,
            initial if initial is not None else 0,
            float(self.multiplier),
            to_ms(self.max_delay, "max_delay"),
            float(self.jitter),
            [k if isinstance(k, str) else k.__name__ for k in self.non_retryable],
        )

    def delay(self, failed_attempt: int, run_id: str = "", seq: int = 0) -> float:
        """Seconds waited after attempt ``failed_attempt`` fails (jitter as for that run and step)."""
        return float(_core.retry_delay_ms(self._spec(), failed_attempt, run_id, seq)) / 1000.0

    def is_non_retryable(self, exc: BaseException) -> bool:
        classes = tuple(k for k in self.non_retryable if isinstance(k, type))
        names = {k for k in self.non_retryable if isinstance(k, str)}
        return isinstance(exc, classes) or type(exc).__name__ in names


NO_RETRY = Retry(max_attempts=1, initial_delay=0, jitter=0.0)
