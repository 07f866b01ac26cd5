"""Bad arguments fail at the call that is wrong, with a typed duro error that
says what to pass instead; a wrong type is also a TypeError."""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import duro

from support import ONCE


def test_the_wrong_type_error_is_a_duro_error_and_a_type_error() -> None:
    assert issubclass(duro.InvalidArgumentType, duro.InvalidArgument)
    assert issubclass(duro.InvalidArgumentType, duro.DuroError)
    assert issubclass(duro.InvalidArgumentType, TypeError)


@pytest.fixture
def waiting(engine: duro.Engine, name: str) -> duro.RunHandle:
    handle = duro.workflow(name, retry=ONCE).wait_for_event("go").run(None, engine=engine, run_id="args-1")
    deadline = time.monotonic() + 30
    while handle.status() != "waiting":
        assert time.monotonic() < deadline, "the run never started waiting"
        time.sleep(0.005)
    return handle


RUN_CASES = [
    # (label, call, error, words the message must contain)
    ("runs(limit=-1)", lambda e, h: e.runs(limit=-1), duro.InvalidArgument, "limit=50"),
    ("runs(limit=0)", lambda e, h: e.runs(limit=0), duro.InvalidArgument, "limit=50"),
    ("runs(limit=2.5)", lambda e, h: e.runs(limit=2.5), duro.InvalidArgumentType, "limit"),
    ("runs(limit=True)", lambda e, h: e.runs(limit=True), duro.InvalidArgumentType, "limit"),
    ("runs(workflow=3)", lambda e, h: e.runs(workflow=3), duro.InvalidArgumentType, "workflow=flow.name"),
    ("runs(status=3)", lambda e, h: e.runs(status=3), duro.InvalidArgumentType, 'status="failed"'),
    ("runs(status=[3])", lambda e, h: e.runs(status=[3]), duro.InvalidArgumentType, 'status="failed"'),
    ("runs(created_after='x')", lambda e, h: e.runs(created_after="yesterday"), duro.InvalidArgumentType, "Unix timestamp"),
    ("runs(created_after=nan)", lambda e, h: e.runs(created_after=float("nan")), duro.InvalidArgument, "Unix timestamp"),
    ("handle(3)", lambda e, h: e.handle(3), duro.InvalidArgumentType, 'engine.handle("o-1")'),
    ("handle(None)", lambda e, h: e.handle(None), duro.InvalidArgumentType, "run_id"),
    ("result(timeout='5s')", lambda e, h: h.result(timeout="5s"), duro.InvalidArgumentType, "timeout=5"),
    ("result(timeout=-1)", lambda e, h: h.result(timeout=-1), duro.InvalidArgument, ">= 0"),
    ("result(timeout=nan)", lambda e, h: h.result(timeout=float("nan")), duro.InvalidArgument, ">= 0"),
    ("send_event(3)", lambda e, h: h.send_event(3, None), duro.InvalidArgumentType, 'send_event("approved"'),
    ("cancel(compensate='yes')", lambda e, h: h.cancel(compensate="yes"), duro.InvalidArgumentType, "True or False"),
    ("run_many(3)", lambda e, h: duro.workflow("w-many").run_many(3, engine=e), duro.InvalidArgumentType, "one input per run"),
    ("run_many({...})", lambda e, h: duro.workflow("w-many").run_many({"id": 1}, engine=e), duro.InvalidArgumentType, "flow.run(input)"),
    ("run_many(run_ids=3)", lambda e, h: duro.workflow("w-many").run_many([1], run_ids=3, engine=e), duro.InvalidArgumentType, "run_ids"),
]


@pytest.mark.parametrize("label, call, error, words", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_bad_arguments_of_engine_and_handle_calls(
    engine: duro.Engine, waiting: duro.RunHandle, label: str, call: Callable[..., Any], error: type, words: str
) -> None:
    with pytest.raises(error) as raised:
        call(engine, waiting)
    assert words in str(raised.value), str(raised.value)
    # Nothing happened: the run still waits, no run was started.
    assert waiting.status() == "waiting"
    assert [m.run_id for m in engine.runs()] == ["args-1"]


DEFINITION_CASES = [
    ("idempotency_key=3", lambda: duro.workflow("w").step("a", len, idempotency_key=3), duro.InvalidArgumentType, "idempotency_key=lambda"),
    ("step timeout='0s'", lambda: duro.workflow("w").step("a", len, timeout="0s"), duro.InvalidArgument, "longer than 0"),
    ("step timeout=0", lambda: duro.workflow("w").step("a", len, timeout=0), duro.InvalidArgument, "longer than 0"),
    ("workflow timeout='0ms'", lambda: duro.workflow("w", timeout="0ms"), duro.InvalidArgument, "pass None for no timeout"),
    ("on_failure retry=3", lambda: duro.workflow("w").step("a", len).on_failure(print, retry=3), duro.InvalidArgumentType, "duro.Retry"),
    ("Retry(multiplier='x')", lambda: duro.Retry(multiplier="x"), duro.InvalidArgumentType, "multiplier"),
    ("Retry(non_retryable=ValueError)", lambda: duro.Retry(non_retryable=ValueError), duro.InvalidArgumentType, "tuple"),
    ("Retry(max_attempts=2**40)", lambda: duro.Retry(max_attempts=2**40), duro.InvalidArgument, "max_attempts"),
    ("sleep 1e300", lambda: duro.workflow("w").sleep("s", 1e300), duro.InvalidArgument, "too long"),
]


@pytest.mark.parametrize("label, build, error, words", DEFINITION_CASES, ids=[c[0] for c in DEFINITION_CASES])
def test_bad_builder_arguments_fail_at_definition_time(label: str, build: Callable[[], Any], error: type, words: str) -> None:
    with pytest.raises(error) as raised:
        build()
    assert words in str(raised.value), str(raised.value)


ENGINE_CASES = [
    ("path=3", dict(path=3), duro.InvalidArgumentType, ":memory:"),
    ("workers=True", dict(workers=True), duro.InvalidArgumentType, "workers=8"),
    ("workers=0", dict(workers=0), duro.InvalidArgument, "workers=8"),
    ("max_payload_bytes=-1", dict(max_payload_bytes=-1), duro.InvalidArgument, "max_payload_bytes"),
    ("max_payload_bytes='1MB'", dict(max_payload_bytes="1MB"), duro.InvalidArgumentType, "max_payload_bytes"),
    ("max_recovery_attempts=-1", dict(max_recovery_attempts=-1), duro.InvalidArgument, "max_recovery_attempts"),
    ("segment_size=-1", dict(segment_size=-1), duro.InvalidArgument, "segment_size"),
    ("fsync='no'", dict(fsync="no"), duro.InvalidArgumentType, "True or False"),
    ("loop=3", dict(loop=3), duro.InvalidArgumentType, "event loop"),
]


@pytest.mark.parametrize("label, kwargs, error, words", ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_bad_engine_arguments(tmp_path: Path, label: str, kwargs: Any, error: type, words: str) -> None:
    kwargs = dict(kwargs)
    path = kwargs.pop("path", str(tmp_path / "s"))
    with pytest.raises(error) as raised:
        duro.Engine(path, **kwargs)
    assert words in str(raised.value), str(raised.value)
    duro.Engine(str(tmp_path / "s")).close()  # nothing was left open or locked


def test_existing_except_type_error_code_keeps_working(engine: duro.Engine, waiting: duro.RunHandle) -> None:
    for call in (lambda: waiting.result(timeout="5s"), lambda: engine.handle(3), lambda: engine.runs(workflow=3)):
        with pytest.raises(TypeError):
            call()


def test_good_arguments_still_work(engine: duro.Engine, waiting: duro.RunHandle, name: str) -> None:
    hour_ago = time.time() - 3600
    assert [m.run_id for m in engine.runs(limit=1, created_after=hour_ago)] == ["args-1"]
    since = datetime.datetime.now() - datetime.timedelta(hours=1)
    assert [m.run_id for m in engine.runs(status=("waiting",), created_after=since)] == ["args-1"]
    assert engine.runs(created_before=hour_ago) == []
    assert engine.runs(created_after=-1, workflow=name)[0].run_id == "args-1", "a time before 1970 filters nothing"
    with pytest.raises(duro.ResultTimeout):
        waiting.result(timeout=0)
    waiting.send_event("go", 1)
    assert waiting.result(timeout=float("inf")).value == {"go": 1}, "an infinite timeout waits without limit"
    flow = duro.workflow(name + "-ok").step("a", len, idempotency_key=lambda i: "k", timeout="1s")
    assert flow.run("abc", engine=engine).result(timeout=30).value == {"a": 3}


async def test_bad_arguments_of_async_twins(tmp_path: Path, name: str) -> None:
    async with duro.Engine(str(tmp_path / "s")) as engine:
        handle = await duro.workflow(name).wait_for_event("go").run_async(None, engine=engine)
        with pytest.raises(duro.InvalidArgumentType, match="timeout=5"):
            await handle.result_async(timeout="5s")
        with pytest.raises(duro.InvalidArgumentType):
            await handle.send_event_async(3)
        with pytest.raises(duro.InvalidArgumentType):
            await handle.cancel_async(compensate="yes")
        with pytest.raises(duro.InvalidArgument, match="limit"):
            await engine.runs_async(limit=0)
        await handle.cancel_async()
        assert (await handle.result_async(timeout=30)).status == "cancelled"
    assert not asyncio.iscoroutinefunction(engine.runs)
