"""Durable sleeps, events, delayed starts, pause/resume, cancel, and timeouts."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest

import duro

from support import FAST, ONCE


def wait_for_status(handle: duro.RunHandle, *statuses: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = handle.status()
        if status in statuses:
            return status
        assert time.monotonic() < deadline, f"run never reached {statuses} (is {status!r})"
        time.sleep(0.005)


def test_sleep_is_a_durable_timer_that_holds_no_memory(engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name).step("a", lambda i: 1).sleep("cool-off", "300ms").step("b", lambda i: 2)
    started = time.monotonic()
    handle = flow.run(None, engine=engine)
    wait_for_status(handle, "sleeping")
    meta = handle.meta()
    assert meta.current_step == "cool-off" and meta.wake_at is not None
    assert engine.stats()["runs_in_memory"] == 0, "a sleeping run is evicted; only its timer remains"
    assert handle.result(timeout=30).ok
    assert time.monotonic() - started >= 0.3


def test_events_are_delivered_to_the_waiting_step(engine: duro.Engine, name: str) -> None:
    got: List[Any] = []
    flow = duro.workflow(name).wait_for_event("approved", timeout="1m").step("ship", lambda i, prev: got.append(prev["approved"]) or "ok")
    handle = flow.run(None, engine=engine)
    wait_for_status(handle, "waiting")
    handle.send_event("approved", {"by": "ann"})
    result = handle.result(timeout=30)
    assert result.value == {"approved": {"by": "ann"}, "ship": "ok"}
    assert got == [{"by": "ann"}]


def test_an_event_sent_before_the_wait_is_kept_for_it(engine: duro.Engine, name: str) -> None:
    gate = threading.Event()
    flow = duro.workflow(name).step("slow", lambda i: gate.wait(10)).wait_for_event("approved")
    handle = flow.run(None, engine=engine)
    handle.send_event("approved", "early")
    gate.set()
    assert handle.result(timeout=30).value == {"slow": True, "approved": "early"}


def test_a_wait_times_out_with_event_timeout(engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name).wait_for_event("approved", timeout="150ms")
    result = flow.run(None, engine=engine).result(timeout=30)
    assert result.error is not None
    assert (result.error.error_type, result.error.failed_step) == ("EventTimeout", "approved")


def test_events_for_an_ended_run_are_refused(engine: duro.Engine, name: str) -> None:
    handle = duro.workflow(name).step("a", lambda i: 1).run(None, engine=engine)
    handle.result(timeout=30)
    with pytest.raises(duro.RunEnded):
        handle.send_event("late", 1)


def test_a_delayed_run_is_pending_until_its_time(engine: duro.Engine, name: str) -> None:
    started = time.monotonic()
    handle = duro.workflow(name).step("a", lambda i: time.monotonic()).run(None, engine=engine, delay="300ms")
    assert handle.status() == "pending"
    assert handle.result(timeout=30).value["a"] - started >= 0.3  # type: ignore[index]


def test_pause_stops_at_the_next_boundary_and_resume_continues(engine: duro.Engine, name: str) -> None:
    gate = threading.Event()
    inside_a = threading.Event()
    ran: List[str] = []

    def a(_: Any) -> None:
        inside_a.set()
        gate.wait(10)
        ran.append("a")

    flow = duro.workflow(name).step("a", a).step("b", lambda i: ran.append("b"))
    handle = flow.run(None, engine=engine)
    assert inside_a.wait(10)
    handle.pause()
    gate.set()
    wait_for_status(handle, "paused")
    time.sleep(0.2)
    assert ran == ["a"], "b must not start while paused"
    assert handle.status() == "paused"
    handle.resume()
    assert handle.result(timeout=30).ok and ran == ["a", "b"]


def test_cancel_without_compensation_stops_the_run(engine: duro.Engine, name: str) -> None:
    undone: List[Any] = []
    flow = duro.workflow(name).step("a", lambda i: 1, compensate=lambda i, o: undone.append(o)).sleep("long", "1h")
    handle = flow.run(None, engine=engine)
    wait_for_status(handle, "sleeping")
    handle.cancel()
    result = handle.result(timeout=30)
    assert result.status == "cancelled" and undone == []
    assert handle.journal()[1].status == "failed", "the interrupted sleep is closed, not left running"


def test_workflow_timeout_fails_the_run(engine: duro.Engine, name: str) -> None:
    undone: List[Any] = []
    flow = (
        duro.workflow(name, timeout="300ms")
        .step("a", lambda i: "A", compensate=lambda i, o: undone.append(o))
        .sleep("too-long", "10s")
    )
    result = flow.run(None, engine=engine).result(timeout=30)
    assert result.error is not None and result.error.error_type == "WorkflowTimeout"
    assert undone == ["A"]


def test_a_slow_sync_step_times_out_and_its_late_result_is_discarded(engine: duro.Engine, name: str) -> None:
    release = threading.Event()
    attempts: List[int] = []

    def slow(i: Any, prev: Any, ctx: duro.StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            release.wait(10)
            return "late"
        return "on time"

    flow = duro.workflow(name, retry=FAST).step("slow", slow, timeout="200ms")
    result = flow.run(None, engine=engine).result(timeout=30)
    release.set()
    assert result.value == {"slow": "on time"}
    journal = result.value and engine.handle(result.run_id).journal()
    assert journal[0].attempt == 2  # type: ignore[index]


def test_a_step_timeout_counts_as_a_failed_attempt(engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name, retry=ONCE).step("hang", lambda i: time.sleep(2), timeout="100ms")
    result = flow.run(None, engine=engine).result(timeout=30)
    assert result.error is not None
    assert (result.error.error_type, result.error.failed_step) == ("StepTimeout", "hang")


def test_result_timeout_raises_and_the_run_goes_on(engine: duro.Engine, name: str) -> None:
    handle = duro.workflow(name).sleep("nap", "300ms").run(None, engine=engine)
    with pytest.raises(duro.ResultTimeout):
        handle.result(timeout=0.05)
    assert handle.result(timeout=30).ok


#: More hanging steps than any ThreadPoolExecutor's default size (min(32, cpus + 4)).
HUNG = 40


def test_hanging_timed_sync_steps_hold_only_their_own_threads(tmp_path: Any, name: str) -> None:
    gate = threading.Event()
    started: List[int] = []
    undone: List[int] = []

    def hang(i: int) -> str:
        started.append(i)
        gate.wait(60)
        return "late"

    flow = (
        duro.workflow(name, retry=ONCE)
        .step("a", lambda i: i, timeout="10s", compensate=lambda i, out: undone.append(out))
        .step("hang", hang, timeout="2s")  # ample time for each body to start: a timed call starts at once
    )
    engine = duro.Engine(str(tmp_path / "s"), workers=HUNG)  # all hang at once: the test takes one timeout
    try:
        results = [h.result(timeout=120) for h in flow.run_many(range(HUNG), engine=engine)]
        for result in results:
            assert result.error is not None
            assert (result.error.error_type, result.error.failed_step) == ("StepTimeout", "hang")
            assert result.error.compensation_errors == [], "timed compensations start at once too"
        assert sorted(undone) == list(range(HUNG))
        # Every body started while its run was live: none waits in a queue to run after the run is final.
        assert sorted(started) == list(range(HUNG))
        quick = duro.workflow(name + "-quick").step("quick", lambda i: i + 1, timeout="10s")
        assert quick.run(1, engine=engine).result(timeout=60).value == {"quick": 2}
    finally:
        gate.set()
        engine.close()


def test_a_timed_call_whose_thread_starts_too_late_never_runs(
    engine: duro.Engine, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duro._runner as runner

    ran: List[Any] = []
    deferred: List[Any] = []
    spawn = runner._spawn

    def late_spawn(target: Any, thread_name: str) -> None:
        if "starved" in thread_name:
            deferred.append(target)  # as if the thread got no CPU before the timeout
        else:
            spawn(target, thread_name)

    monkeypatch.setattr(runner, "_spawn", late_spawn)
    flow = duro.workflow(name, retry=ONCE).step("starved", lambda i: ran.append(i), timeout="50ms")
    result = flow.run("x", engine=engine).result(timeout=30)
    assert result.error is not None and result.error.error_type == "StepTimeout"
    assert len(deferred) == 1
    deferred[0]()  # the thread finally runs, after the run is final
    assert ran == [], "a call abandoned before it started must not run later"


def test_a_run_reloaded_by_another_engine_reads_every_recorded_output(store_path: Any, name: str) -> None:
    """The outputs recorded before a reload reach ``prev`` from the native map, in step order,
    sleeps (no output) left out, and read the same as outputs recorded since."""
    seen: List[Any] = []

    def final(i: Any, prev: Any) -> str:
        seen.append((list(prev), dict(prev), len(prev), "a" in prev, "nap" in prev, "nope" in prev))
        return "done"

    flow = (
        duro.workflow(name)
        .step("a", lambda i: {"n": 1})
        .sleep("nap", "1ms")
        .step("b", lambda i, prev: [prev["a"]["n"], 2])
        .wait_for_event("go", timeout="1m")
        .step("c", lambda i, prev: prev["go"] * 2)
        .step("final", final)
    )
    first = duro.Engine(str(store_path))
    handle = flow.run(None, engine=first, run_id="reloaded")
    wait_for_status(handle, "waiting")
    first.close()
    second = duro.Engine(str(store_path))
    try:
        handle = second.handle("reloaded")
        handle.send_event("go", 21)
        assert handle.result(timeout=30).value == {"a": {"n": 1}, "b": [1, 2], "go": 21, "c": 42, "final": "done"}
    finally:
        second.close()
    names, values, count, has_a, has_nap, has_nope = seen[0]
    assert names == ["a", "b", "go", "c"]
    assert values == {"a": {"n": 1}, "b": [1, 2], "go": 21, "c": 42}
    assert (count, has_a, has_nap, has_nope) == (4, True, False, False)
