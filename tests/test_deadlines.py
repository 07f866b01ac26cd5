"""The workflow deadline while a step runs, cancel while paused, and definitions
whose step count changed under the same version."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import pytest

import duro


def test_the_workflow_deadline_fails_the_run_while_a_step_still_runs(engine: duro.Engine, name: str) -> None:
    release = threading.Event()
    compensated: List[str] = []
    flow = (
        duro.workflow(name, timeout="1s")
        .step("a", lambda i: "A", compensate=lambda i, out: compensated.append(out))
        .step("hangs", lambda i: release.wait(30) and "late", compensate=lambda i, out: compensated.append(out))
        .step("never", lambda i: "never")
    )
    handle = flow.run(None, engine=engine)
    started = time.monotonic()
    result = handle.result(timeout=20)
    took = time.monotonic() - started
    release.set()
    assert not result.ok
    assert result.error is not None
    assert result.error.error_type == "WorkflowTimeout"
    assert result.error.failed_step == "hangs"
    assert took < 20, "the deadline, not the step's return, ended the run"
    # Only the step that completed is compensated; the late result is discarded.
    assert compensated == ["A"]
    entries = {e.name: e for e in handle.journal() if e.name == "hangs"}
    assert entries["hangs"].status == "failed"
    # The worker that ran the late step survives its discarded result: the engine still runs work.
    time.sleep(0.2)
    assert duro.workflow(f"{name}-after").step("x", lambda i: 1).run(None, engine=engine).result(timeout=20).ok


async def test_the_workflow_deadline_fails_an_async_run_while_its_step_awaits(engine: duro.Engine, name: str) -> None:
    async def hangs(i: object) -> str:
        await asyncio.sleep(30)
        return "late"

    flow = duro.workflow(name, timeout="1s").step("hangs", hangs)
    handle = await flow.run_async(None, engine=engine)
    result = await asyncio.wait_for(handle.result_async(), 20)
    assert not result.ok and result.error is not None
    assert result.error.error_type == "WorkflowTimeout"
    assert result.error.failed_step == "hangs"

    # A late coroutine result is discarded and its driver ends; the loop keeps serving runs.
    release = asyncio.Event()
    compensated: List[str] = []

    async def late(i: object) -> str:
        await release.wait()
        return "late"

    async def undo(i: object, out: object) -> None:
        compensated.append(str(out))

    flow2 = duro.workflow(f"{name}-2", timeout="1s").step("a", lambda i: "A", compensate=undo).step("late", late)
    h2 = await flow2.run_async(None, engine=engine)
    r2 = await asyncio.wait_for(h2.result_async(), 20)
    assert r2.error is not None and r2.error.failed_step == "late"
    release.set()
    await asyncio.sleep(0.1)
    assert compensated == ["A"]

    async def ok(i: object) -> int:
        return 1

    h3 = await duro.workflow(f"{name}-3").step("x", ok).run_async(None, engine=engine)
    assert (await asyncio.wait_for(h3.result_async(), 20)).ok


def test_cancel_with_compensation_on_a_paused_run_compensates(engine: duro.Engine, name: str) -> None:
    compensated: List[str] = []
    gate, a_ran = threading.Event(), threading.Event()
    flow = (
        duro.workflow(name)
        .step("a", lambda i: a_ran.set() or "A", compensate=lambda i, out: compensated.append(out))
        .step("b", lambda i: gate.wait(30) and "B")
        .step("c", lambda i: "C")
    )
    handle = flow.run(None, engine=engine)
    # Pause once "a" ran (paused earlier, there would be nothing to compensate).
    assert a_ran.wait(20)
    handle.pause()
    gate.set()
    deadline = time.monotonic() + 20
    while handle.status() != "paused":
        assert time.monotonic() < deadline, handle.status()
        time.sleep(0.01)
    handle.cancel(compensate=True)
    result = handle.result(timeout=20)
    assert result.status == "cancelled"
    assert compensated == ["A"]


CHILD = """
import sys, duro
store, name = sys.argv[1], sys.argv[2]
with duro.Engine(store) as engine:
    # The same name and version, one step shorter: the run must not finish without "b".
    duro.workflow(name).step("a", lambda i: "A").wait_for_event("go")
    h = engine.handle("r1")
    try:
        h.result(timeout=20)
        print("finished")
    except duro.NonDeterminismError as e:
        print("nondeterminism", h.meta().completed_step_count, "started with 3 steps" in str(e))
"""


def test_a_trailing_step_removed_under_the_same_version_is_reported(tmp_path: Path, name: str) -> None:
    store = str(tmp_path / "store")
    with duro.Engine(store) as engine:
        full = duro.workflow(name).step("a", lambda i: "A").wait_for_event("go").step("b", lambda i: "B")
        handle = full.run(None, engine=engine, run_id="r1")
        deadline = time.monotonic() + 20
        while handle.status() != "waiting":
            assert time.monotonic() < deadline
            time.sleep(0.01)
    # A new process (definitions are process-wide) with the shortened definition.
    out = subprocess.run([sys.executable, "-c", CHILD, store, name], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["nondeterminism", "1", "True"], out.stdout + out.stderr[-2000:]
