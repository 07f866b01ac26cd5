"""Durations as users write them: ``"500ms"``, ``"30s"``, ``"1h30m"``, ``"2d"``,
a number of seconds, or a :class:`datetime.timedelta`."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Optional, Union

from . import _core
from .errors import InvalidArgument, InvalidArgumentType

Duration = Union[str, int, float, timedelta]

#: The longest duration (about 292 million years: what milliseconds in an i64 hold).
MAX_SECONDS = float((1 << 63) // 1000 - 1)


def to_ms(value: Optional[Duration], field: str) -> Optional[int]:
    """Milliseconds for ``value`` (``None`` stays ``None``); errors name ``field``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid {field}: expected a duration such as \"30s\", got {value!r}")
    if isinstance(value, str):
        return int(_core.parse_duration(value, field))
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    else:
        raise InvalidArgumentType(
            f"invalid {field}: expected a duration (\"500ms\", \"30s\", \"10m\", seconds, or a timedelta), "
            f"got {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgument(f"invalid {field}: duration must be finite and not negative, got {value!r}")
    if seconds > MAX_SECONDS:
        raise InvalidArgument(f"invalid {field}: {value!r} is too long; durations go up to {MAX_SECONDS:.0f} seconds")
    return int(round(seconds * 1000))
