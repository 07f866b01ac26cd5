"""Bad input gets a clear, typed error and loses nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

import duro


def test_every_error_is_a_duro_error() -> None:
    for cls in (
        duro.InvalidArgument, duro.PayloadTooLarge, duro.WorkflowNotFound, duro.RunNotFound, duro.RunEnded,
        duro.NonDeterminismError, duro.StoreError, duro.StoreLocked, duro.StoreFailed, duro.CorruptionError,
        duro.NewerFormat, duro.EngineClosed, duro.NonRetryableError, duro.SerializationError, duro.StepTimeout,
        duro.WorkflowTimeout, duro.EventTimeout, duro.ResultTimeout,
    ):
        assert issubclass(cls, duro.DuroError), cls
    assert issubclass(duro.PayloadTooLarge, duro.InvalidArgument)
    assert issubclass(duro.StoreLocked, duro.StoreError)


@pytest.mark.parametrize(
    "run_id, ok",
    [
        ("", False),
        ("x" * 512, True),
        ("x" * 513, False),
        ("ünïcødé-🚀", True),
        ("it's \"quoted\" ' OR 1=1 --", True),
        ("new\nline", False),
        ("nul\0byte", False),
    ],
)
def test_run_ids(engine: duro.Engine, name: str, run_id: str, ok: bool) -> None:
    flow = duro.workflow(name).step("a", lambda i: i)
    if ok:
        assert flow.run(1, engine=engine, run_id=run_id).result(timeout=30).value == {"a": 1}
        assert engine.handle(run_id).run_id == run_id
    else:
        with pytest.raises(duro.InvalidArgument):
            flow.run(1, engine=engine, run_id=run_id)
        assert engine.runs(workflow=name) == []


def test_a_run_id_of_the_wrong_type_is_refused(engine: duro.Engine, name: str) -> None:
    with pytest.raises(duro.InvalidArgument, match="run_id"):
        duro.workflow(name).step("a", lambda i: i).run(1, engine=engine, run_id=42)  # type: ignore[arg-type]


def test_payloads_at_the_limit(tmp_path: Path, name: str) -> None:
    limit = 4096
    overhead = len(b'""')
    with duro.Engine(str(tmp_path / "s"), max_payload_bytes=limit) as engine:
        flow = duro.workflow(name).step("echo", lambda i: i)
        for size, ok in [(limit - 1, True), (limit, True), (limit + 1, False)]:
            text = "x" * (size - overhead)
            if ok:
                assert flow.run(text, engine=engine).result(timeout=30).value == {"echo": text}
            else:
                with pytest.raises(duro.PayloadTooLarge, match="input"):
                    flow.run(text, engine=engine)
        big_output = duro.workflow(name + "-out").step("grow", lambda i: "y" * limit)
        result = big_output.run(None, engine=engine).result(timeout=30)
        assert result.error is not None and result.error.error_type == "PayloadTooLarge"
        waiting = duro.workflow(name + "-ev").wait_for_event("e").run(None, engine=engine)
        with pytest.raises(duro.PayloadTooLarge):
            waiting.send_event("e", "z" * limit)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: duro.workflow(""), "name"),
        (lambda: duro.workflow("w", version=""), "version"),
        (lambda: duro.workflow("w", timeout="forever"), "timeout"),
        (lambda: duro.workflow("w").sleep("s", "-1s"), "sleep"),
        (lambda: duro.workflow("w").step("a", lambda i: i).step("a", lambda i: i), "used twice"),
        (lambda: duro.workflow("w").step("a", "not callable"), "callable"),  # type: ignore[arg-type]
        (lambda: duro.workflow("w").step("a", lambda a, b, c, d: 1), "at most 3"),
        (lambda: duro.workflow("w").step("a", lambda i: i, retry=3), "duro.Retry"),  # type: ignore[arg-type]
        (lambda: duro.workflow("w", retry={"max_attempts": 3}), "duro.Retry"),  # type: ignore[arg-type]
    ],
)
def test_bad_definitions_fail_at_definition_time(build: Any, match: str) -> None:
    with pytest.raises(duro.InvalidArgument, match=match):
        build()


def test_a_second_engine_on_the_same_store_gets_a_clear_error(store_path: Path) -> None:
    with duro.Engine(str(store_path)):
        with pytest.raises(duro.StoreLocked, match="already open in this process"):
            duro.Engine(str(store_path))
    duro.Engine(str(store_path)).close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_store_directory_without_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(duro.StoreError, match="locked"):
            duro.Engine(str(locked / "store"))
    finally:
        locked.chmod(stat.S_IRWXU)


def test_a_store_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a directory")
    with pytest.raises(duro.StoreError, match="not a directory"):
        duro.Engine(str(path))


def test_store_files_are_private(store_path: Path, name: str) -> None:
    with duro.Engine(str(store_path)) as engine:
        duro.workflow(name).step("a", lambda i: i).run(1, engine=engine).result(timeout=30)
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o700
    for path in store_path.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_closed_engine_refuses_work(store_path: Path, name: str) -> None:
    engine = duro.Engine(str(store_path))
    engine.close()
    with pytest.raises(duro.EngineClosed):
        duro.workflow(name).step("a", lambda i: i).run(1, engine=engine)


def test_no_engine_open_is_a_clear_error(name: str) -> None:
    from duro.workflow import REGISTRY

    if any(not e.closed for e in REGISTRY.engines):
        pytest.skip("another engine is open in this process")
    with pytest.raises(duro.InvalidArgument, match="no engine is open"):
        duro.workflow(name).step("a", lambda i: i).run(1)


def test_a_definition_refused_while_the_store_opens_leaves_the_store_closed(store_path: Path, name: str) -> None:
    """``Core()`` registers the workflows defined so far while the store opens on another
    thread; a definition it refuses (or one that cannot be built) fails the open with its
    own error, and the store it had opened is closed again, not left locked."""
    from duro import _core

    good = duro.workflow(name).step("a", lambda i: i)._native_spec()
    bad_kind = (name + "-bad", "1", 0, [("a", 7, None, None, None, None)], None, None)
    twice = (name + "-twice", "1", 0, [("a", 0, None, None, None, None)] * 2, None, None)

    def specs() -> Any:
        yield good
        raise RuntimeError("spec failed")

    # Repeated: a store left open until a background thread lets go of it shows up as
    # StoreLocked on one of the next opens.
    for _ in range(10):
        with pytest.raises(duro.InvalidArgument, match="unknown step kind 7"):
            _core.Core(str(store_path), definitions=[good, bad_kind])
        with pytest.raises(duro.InvalidArgument, match="used twice"):
            _core.Core(str(store_path), definitions=[good, twice])
        with pytest.raises(RuntimeError, match="spec failed"):
            _core.Core(str(store_path), definitions=specs())

    core = _core.Core(str(store_path), definitions=iter([good]))
    try:
        assert len(core.registered_at_open()) == 1
    finally:
        core.close()
