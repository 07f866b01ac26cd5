"""The workflow API end to end: running, results, inspection, idempotent starts."""

from __future__ import annotations

import threading
from typing import Any, Dict, List

import pytest

import duro

from support import FAST


def test_steps_run_in_order_and_the_result_maps_names_to_outputs(engine: duro.Engine, name: str) -> None:
    seen: List[str] = []

    def reserve(order: Dict[str, Any]) -> Dict[str, Any]:
        seen.append("reserve")
        return {"sku": order["sku"], "held": True}

    def charge(order: Dict[str, Any], prev: Any) -> Dict[str, Any]:
        seen.append("charge")
        assert prev["reserve"] == {"sku": "x1", "held": True}
        return {"amount": 42}

    def ship(order: Dict[str, Any], prev: Any, ctx: duro.StepContext) -> str:
        seen.append("ship")
        assert dict(prev) == {"reserve": {"sku": "x1", "held": True}, "charge": {"amount": 42}}
        return f"shipped {order['sku']} by {ctx.step_name}"

    flow = duro.workflow(name).step("reserve", reserve).step("charge", charge).step("ship", ship)
    handle = flow.run({"sku": "x1"}, engine=engine, run_id="order-1")
    result = handle.result(timeout=30)
    assert result.ok and result.error is None
    assert result.value == {
        "reserve": {"sku": "x1", "held": True},
        "charge": {"amount": 42},
        "ship": "shipped x1 by ship",
    }
    assert seen == ["reserve", "charge", "ship"]
    assert handle.run_id == "order-1"
    assert handle.status() == "completed"


def test_meta_and_journal_describe_the_run(engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name, version="7").step("a", lambda i: 1).sleep("nap", "10ms").step("b", lambda i: {"x": i})
    handle = flow.run("in", engine=engine, run_id="m-1")
    handle.result(timeout=30)
    meta = handle.meta()
    assert (meta.run_id, meta.workflow, meta.version, meta.status) == ("m-1", name, "7", "completed")
    assert meta.step_count == 3 and meta.completed_step_count == 3
    assert meta.created_at <= meta.started_at <= meta.completed_at  # type: ignore[operator]
    assert meta.current_step == "b" and meta.error is None
    journal = handle.journal()
    assert [(e.index, e.name, e.kind, e.status, e.attempt) for e in journal] == [
        (0, "a", "step", "completed", 1),
        (1, "nap", "sleep", "completed", 1),
        (2, "b", "step", "completed", 1),
    ]
    assert journal[0].output == 1 and journal[2].output == {"x": "in"}
    assert all(e.duration is not None and e.duration >= 0 for e in journal)
    assert journal[1].duration >= 0.01  # type: ignore[operator]


def test_ctx_gives_attempt_run_id_step_name_and_a_stable_idempotency_key(engine: duro.Engine, name: str) -> None:
    seen: List[Any] = []

    def flaky(order: Any, prev: Any, ctx: duro.StepContext) -> str:
        seen.append((ctx.attempt, ctx.run_id, ctx.step_name, ctx.idempotency_key))
        ctx.logger.info("attempt %d", ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("gateway timeout")
        return "ok"

    custom = lambda order, prev, ctx: ctx.idempotency_key  # noqa: E731
    flow = (
        duro.workflow(name, retry=FAST)
        .step("charge", flaky)
        .step("refund-key", custom, idempotency_key=lambda order: f"charge:{order['id']}")
    )
    result = flow.run({"id": "o-9"}, engine=engine, run_id="ctx-1").result(timeout=30)
    assert result.ok
    assert seen == [(1, "ctx-1", "charge", "ctx-1:charge"), (2, "ctx-1", "charge", "ctx-1:charge"), (3, "ctx-1", "charge", "ctx-1:charge")]
    assert result.value["refund-key"] == "charge:o-9"


def test_a_compensation_gets_its_own_idempotency_key_and_the_step_keeps_its_own(engine: duro.Engine, name: str) -> None:
    keys: List[str] = []

    def charge(order: Any, prev: Any, ctx: duro.StepContext) -> str:
        keys.append(ctx.idempotency_key)
        return "charged"

    def refund(order: Any, charged: Any, ctx: duro.StepContext) -> None:
        keys.append(ctx.idempotency_key)

    def ship(order: Any) -> None:
        raise duro.NonRetryableError("no stock")

    flow = duro.workflow(name).step("charge", charge, compensate=refund).step("ship", ship)
    result = flow.run(1, engine=engine, run_id="keys-1").result(timeout=30)
    assert not result.ok
    assert keys == ["keys-1:charge", "keys-1:compensate:charge"]


def test_starting_an_existing_run_id_returns_that_run(engine: duro.Engine, name: str) -> None:
    runs = []
    flow = duro.workflow(name).step("a", lambda i: runs.append(i) or i)
    first = flow.run(1, engine=engine, run_id="same")
    first.result(timeout=30)
    second = flow.run(2, engine=engine, run_id="same")
    assert second.result(timeout=30).value == {"a": 1}, "the second start did not start anything"
    assert runs == [1]
    assert second == first


def test_64_concurrent_starts_of_one_id_make_exactly_one_run(engine: duro.Engine, name: str) -> None:
    executions: List[int] = []
    flow = duro.workflow(name).step("a", lambda i: executions.append(i) or i)
    barrier = threading.Barrier(64)
    handles: List[duro.RunHandle] = []

    def start(i: int) -> None:
        barrier.wait()
        handles.append(flow.run(i, engine=engine, run_id="contended"))

    threads = [threading.Thread(target=start, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    values = {h.result(timeout=30).value["a"] for h in handles}  # type: ignore[index]
    assert len(values) == 1 and len(executions) == 1
    assert len(engine.runs(workflow=name, limit=100)) == 1


def test_generated_run_ids_are_unique(memory_engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name).step("a", lambda i: i)
    ids = {flow.run(i, engine=memory_engine).run_id for i in range(20)}
    assert len(ids) == 20


def test_run_many_starts_runs_with_one_durable_wait(engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name).step("double", lambda i: i * 2)
    handles = flow.run_many(range(50), engine=engine, run_ids=[f"m{i}" for i in range(50)])
    assert [h.result(timeout=30).value["double"] for h in handles] == [i * 2 for i in range(50)]  # type: ignore[index]


def test_run_many_with_one_bad_input_starts_nothing(engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name).step("a", lambda i: i)
    with pytest.raises(duro.SerializationError):
        flow.run_many([1, 2, object(), 4], engine=engine, run_ids=["b0", "b1", "b2", "b3"])
    with pytest.raises(duro.InvalidArgument, match="run_id must be a str"):
        flow.run_many([1, 2], engine=engine, run_ids=["c0", 7])  # type: ignore[list-item]
    assert engine.runs(workflow=name) == []
    # The same inputs, fixed, start every run.
    handles = flow.run_many([1, 2, 3, 4], engine=engine, run_ids=["b0", "b1", "b2", "b3"])
    assert [h.result(timeout=30).value["a"] for h in handles] == [1, 2, 3, 4]  # type: ignore[index]


def test_engine_handle_and_runs_filter(engine: duro.Engine, name: str) -> None:
    ok = duro.workflow(name).step("a", lambda i: i)
    bad = duro.workflow(name + "-bad", retry=duro.Retry(max_attempts=1)).step("a", lambda i: 1 / 0)
    for i in range(3):
        ok.run(i, engine=engine, run_id=f"ok-{i}").result(timeout=30)
    bad.run(0, engine=engine, run_id="bad-0").result(timeout=30)
    assert engine.handle("ok-1").result(timeout=5).value == {"a": 1}
    with pytest.raises(duro.RunNotFound):
        engine.handle("nope")
    failed = engine.runs(status="failed")
    assert [m.run_id for m in failed] == ["bad-0"] and failed[0].error_type == "ZeroDivisionError"
    mine = engine.runs(workflow=name)
    assert [m.run_id for m in mine] == ["ok-2", "ok-1", "ok-0"], "newest first"
    assert len(engine.runs(workflow=name, limit=2)) == 2
    assert {m.run_id for m in engine.runs(status=["completed", "failed"])} >= {"ok-0", "bad-0"}
    with pytest.raises(duro.InvalidArgument):
        engine.runs(status="exploded")


def test_memory_engine_runs_workflows(memory_engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name).step("a", lambda i: i + 1).sleep("nap", "5ms").step("b", lambda i, p: p["a"] * 10)
    assert flow.run(1, engine=memory_engine).result(timeout=30).value == {"a": 2, "b": 20}


def test_the_only_open_engine_is_the_default(tmp_path: Any, name: str) -> None:
    flow = duro.workflow(name).step("a", lambda i: i)
    with duro.Engine(str(tmp_path / "only")):
        assert flow.run(5).result(timeout=30).value == {"a": 5}


def test_sync_steps_run_on_worker_threads_not_an_event_loop(engine: duro.Engine, name: str) -> None:
    import asyncio

    def where(_: Any) -> str:
        try:
            asyncio.get_running_loop()
            return "loop"
        except RuntimeError:
            return threading.current_thread().name

    result = duro.workflow(name).step("where", where).run(None, engine=engine).result(timeout=30)
    assert result.value["where"].startswith("duro-worker")  # type: ignore[index]


def test_the_native_spec_kept_while_building_equals_a_full_conversion() -> None:
    """Each added step's native form is kept as the workflow is built (so an engine
    opening after a crash does not convert thousands of steps); it must be exactly
    what converting the finished definition gives, and is_async likewise."""
    import dataclasses

    def sync_step(x: Any) -> Any:
        return x

    async def async_step(x: Any) -> Any:
        return x

    def undo(x: Any, out: Any) -> None:
        return None

    built = (
        duro.workflow("native-chain", version="7", retry=duro.Retry(max_attempts=5))
        .step("a", sync_step, retry=duro.Retry(max_attempts=2), timeout="2s")
        .sleep("nap", "1m")
        .wait_for_event("approved", timeout="1h")
        .step("b", sync_step, compensate=undo)
        .step("c", async_step)
    )
    # dataclasses.replace makes a copy without the kept chain: converted from scratch.
    fresh = dataclasses.replace(built, name="native-chain-fresh")
    assert "_native_chain" in built.__dict__ and "_native_chain" not in fresh.__dict__
    assert built._build_native_spec()[1:] == fresh._build_native_spec()[1:]
    assert built.is_async is True and fresh.is_async is True
    assert duro.workflow("plain").step("a", sync_step).is_async is False


def _ident(x: Any) -> Any:
    return x


def test_building_step_by_step_appends_in_place_and_branches_copy() -> None:
    # Each .step() returns a new workflow; the newest of a chain extends the shared list
    # in place (building n steps is O(n), not O(n²)), and an older one copies on extend.
    base = duro.workflow("branching").step("a", _ident)
    left = base.step("b", _ident)
    assert left.steps.items is base.steps.items  # type: ignore[attr-defined]
    right = base.step("c", _ident)
    assert right.steps.items is not base.steps.items  # type: ignore[attr-defined]
    assert [s.name for s in base.steps] == ["a"]
    assert [s.name for s in left.steps] == ["a", "b"]
    assert [s.name for s in right.steps] == ["a", "c"]
    # Names are per workflow: "b" is free on the right branch and taken on the left.
    assert [s.name for s in right.step("b", _ident).steps] == ["a", "c", "b"]
    with pytest.raises(duro.InvalidArgument, match="used twice"):
        left.step("b", _ident)
    with pytest.raises(IndexError):
        base.steps[1]
    # The steps behave like the tuple they replace.
    assert left.steps == tuple(left.steps) and hash(left.steps) == hash(tuple(left.steps))
    assert left.steps[-1].name == "b" and [s.name for s in left.steps[::-1]] == ["b", "a"]
    assert repr(left.steps) == repr(tuple(left.steps)) and len(left.steps) == 2


def test_threads_extending_one_workflow_each_get_their_own_steps() -> None:
    base = duro.workflow("branching-threads").step("a", _ident)
    built: Dict[int, duro.Workflow] = {}

    def extend(k: int) -> None:
        wf = base
        for j in range(50):
            wf = wf.step(f"t{k}-{j}", _ident)
        built[k] = wf

    threads = [threading.Thread(target=extend, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, wf in built.items():
        assert [s.name for s in wf.steps] == ["a"] + [f"t{k}-{j}" for j in range(50)]
    assert [s.name for s in base.steps] == ["a"]
