"""Checks of the arguments users pass, so a bad one fails at the call that is
wrong, with a typed error (:class:`duro.InvalidArgument`, or
:class:`duro.InvalidArgumentType` for a wrong type) that says what to pass."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, List, Optional

from .errors import InvalidArgument, InvalidArgumentType

#: Waits longer than this (seconds, about 31 years) are waits without limit.
MAX_WAIT_SECONDS = 1e9
#: The most a store position or count passed to the native module can hold.
MAX_INT = (1 << 63) - 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def text(value: Any, field: str, example: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentType(f"{field} must be a str, e.g. {example}; got {type(value).__name__}")
    return value


def flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentType(f"{field} must be True or False, got {type(value).__name__}")
    return value


def wait_seconds(value: Any, field: str = "timeout") -> Optional[float]:
    """A timeout in seconds for a wait: ``None`` (or infinity) waits without limit."""
    if value is None:
        return None
    if not _is_number(value):
        raise InvalidArgumentType(
            f"{field} is a number of seconds, e.g. {field}=5 or {field}=0.5 (None waits without limit); "
            f"got {type(value).__name__} {value!r}"
        )
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise InvalidArgument(
            f"{field} must be a number of seconds >= 0 (None waits without limit), got {value!r}"
        )
    return None if seconds > MAX_WAIT_SECONDS else seconds


def positive_int(value: Any, field: str, example: str, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentType(f"{field} must be an int, e.g. {example}; got {type(value).__name__} {value!r}")
    if value < 1 or value > maximum:
        raise InvalidArgument(f"{field} must be between 1 and {maximum}, e.g. {example}; got {value!r}")
    return value


def optional_positive_int(value: Any, field: str, example: str, maximum: int = MAX_INT) -> Optional[int]:
    return None if value is None else positive_int(value, field, example, maximum)


def timestamp_ms(value: Any, field: str) -> Optional[int]:
    """Milliseconds since the epoch for a Unix timestamp in seconds or a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        seconds = value.timestamp()
    elif _is_number(value):
        seconds = float(value)
    else:
        raise InvalidArgumentType(
            f"{field} must be a Unix timestamp in seconds (e.g. time.time() - 3600) or a datetime; "
            f"got {type(value).__name__}"
        )
    if math.isnan(seconds):
        raise InvalidArgument(f"{field} must be a Unix timestamp in seconds, got NaN")
    return int(min(max(seconds * 1000.0, 0.0), float(MAX_INT // 2)))


def statuses(value: Any) -> Optional[List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray, Mapping)):
        items = list(value)
        if all(isinstance(item, str) for item in items):
            return items
    raise InvalidArgumentType(
        'status must be a status name or a list of them, e.g. status="failed" or status=["sleeping", "waiting"]; '
        f"got {value!r}"
    )


def inputs(value: Any) -> List[Any]:
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise InvalidArgumentType(
            f"inputs must be an iterable with one input per run, e.g. [order1, order2]; got {type(value).__name__} "
            "(to start one run, use flow.run(input))"
        )
    return list(value)


def store_path(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str) or isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise InvalidArgumentType(
        f'path must be a directory path (str or pathlib.Path), e.g. "./.duro", or ":memory:"; got {type(value).__name__}'
    )
