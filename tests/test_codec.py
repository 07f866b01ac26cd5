"""Values in the journal: JSON by default, pickle only when asked for."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

import duro


def test_json_values_round_trip_through_the_journal(engine: duro.Engine, name: str) -> None:
    value = {"s": "ünïcødé \"q\"", "i": 2**62, "f": 1.5, "b": True, "n": None, "l": [1, "two", [3]], "t": (1, 2)}
    result = duro.workflow(name).step("echo", lambda i: i).run(value, engine=engine).result(timeout=30)
    assert result.value == {"echo": {**value, "t": [1, 2]}}, "tuples come back as lists"


def test_a_non_serialisable_output_fails_the_step_naming_step_and_type(engine: duro.Engine, name: str) -> None:
    calls = []
    flow = duro.workflow(name).step("when", lambda i: calls.append(1) or datetime.date(2026, 1, 1))
    result = flow.run(None, engine=engine).result(timeout=30)
    assert result.error is not None and result.error.error_type == "SerializationError"
    assert "'when'" in result.error.message and "date" in result.error.message
    assert calls == [1], "not retried: retrying cannot make it serialisable"


def test_a_non_serialisable_input_is_refused_before_anything_starts(engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name).step("a", lambda i: i)
    with pytest.raises(duro.SerializationError, match="input of workflow"):
        flow.run({1, 2, 3}, engine=engine, run_id="bad-input")
    assert engine.runs(workflow=name) == []
    with pytest.raises(TypeError):
        flow.run(float("nan").__class__, engine=engine)


def test_pickle_is_an_explicit_opt_in(tmp_path: Path, name: str) -> None:
    value = {"when": datetime.date(2026, 1, 1), "tags": {"a", "b"}}
    with duro.Engine(str(tmp_path / "p"), codec=duro.PickleCodec()) as engine:
        result = duro.workflow(name).step("echo", lambda i: i).run(value, engine=engine).result(timeout=30)
    assert result.value == {"echo": value}


def test_a_custom_codec_is_used(tmp_path: Path, name: str) -> None:
    class Upper:
        name = "upper"

        def encode(self, value: Any) -> bytes:
            return str(value).upper().encode()

        def decode(self, data: bytes) -> Any:
            return data.decode()

    with duro.Engine(str(tmp_path / "c"), codec=Upper()) as engine:
        result = duro.workflow(name).step("echo", lambda i: i).run("hi", engine=engine).result(timeout=30)
    assert result.value == {"echo": "HI"}


# -- the json codec: orjson where it encodes exactly, the standard library for the rest -------------

import enum  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import uuid  # noqa: E402
from collections import OrderedDict  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from duro.codec import JsonCodec, _recorded_as  # noqa: E402


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def _reference(value: Any) -> Any:
    """What the standard library alone makes of a value: ("ok", value read back) or ("refused", kind)."""
    try:
        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_recorded_as).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        return ("refused", TypeError if isinstance(exc, TypeError) else ValueError)
    return ("ok", json.loads(raw.decode("utf-8")))


def _codec(codec: JsonCodec, value: Any) -> Any:
    try:
        raw = codec.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return ("refused", TypeError if isinstance(exc, TypeError) else ValueError)
    return ("ok", codec.decode(raw))


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # also lone surrogates, which UTF-8 cannot hold
    | st.uuids()
    | st.sampled_from([Colour.RED, Level.HIGH, datetime.date(2026, 1, 1), b"bytes", frozenset({1})])
)
_keys = st.text(max_size=8) | st.integers(min_value=-5, max_value=5) | st.booleans() | st.none() | st.floats(allow_nan=False)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(_keys, inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3).map(OrderedDict),
    max_leaves=12,
)


@settings(max_examples=600, deadline=None)
@given(_values)
def test_the_json_codec_encodes_and_refuses_what_the_standard_library_does(value: Any) -> None:
    fast, plain = JsonCodec(), JsonCodec()
    plain._fast = None  # the path taken without orjson
    plain._fast_loads = None
    expected = _reference(value)
    assert _codec(fast, value) == expected
    assert _codec(plain, value) == expected


@settings(max_examples=600, deadline=None)
@given(
    st.binary(max_size=40)
    | _values.map(lambda v: json.dumps(v, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    | _values.map(lambda v: json.dumps(v, default=str, indent=1).encode("ascii"))
)
def test_the_json_codec_reads_bytes_as_the_standard_library_does(data: bytes) -> None:
    try:
        expected: Any = ("ok", json.loads(data.decode("utf-8"))) if data else ("ok", None)
    except (ValueError, RecursionError):
        expected = ("corrupt",)
    try:
        got: Any = ("ok", JsonCodec().decode(data))
    except duro.CorruptionError:
        got = ("corrupt",)
    if expected[0] == "ok" and isinstance(expected[1], float) and math.isnan(expected[1]):
        assert got[0] == "ok" and math.isnan(got[1])
    else:
        assert got == expected


def test_integers_beyond_64_bits_and_none_values_come_back_exactly() -> None:
    codec = JsonCodec()
    value = {"big": 2**64, "huge": -(10**40), "digits": "12345678901234567890123", "none": None, "f": 1e16}
    assert codec.decode(codec.encode(value)) == value
    assert codec.decode(b"123456789012345678901234567890") == 123456789012345678901234567890
    assert codec.encode({"id": uuid.UUID(int=1), "c": Colour.RED, "l": Level.HIGH}) == (
        b'{"id":"00000000-0000-0000-0000-000000000001","c":"red","l":3}'
    )
    with pytest.raises(ValueError):
        codec.encode({"x": [1.0, float("nan")]})


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_encoded_values_hold_no_spare_capacity() -> None:
    """A run keeps its input and outputs in memory as encoded bytes: 20,000 small values
    must cost about their size, not the 4 KiB orjson's own bytes keep each."""
    codec = JsonCodec()
    before = _rss_kib()
    kept = [codec.encode({"order": i, "note": "x" * 40}) for i in range(20_000)]
    grown_per_value = (_rss_kib() - before) * 1024 / len(kept)
    assert grown_per_value < 1024, f"{grown_per_value:.0f} bytes of memory per 60-byte value"
