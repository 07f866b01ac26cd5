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
