"""The asyncio API: coroutine steps, run_async, result_async and the other twins."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, List

import pytest

import duro

from support import FAST, ONCE


async def test_coroutine_steps_run_on_the_engines_loop(tmp_path: Path, name: str) -> None:
    loop = asyncio.get_running_loop()
    seen: List[Any] = []

    async def fetch(order: Any) -> dict:
        seen.append(asyncio.get_running_loop() is loop)
        await asyncio.sleep(0.01)
        return {"price": 10}

    async def charge(order: Any, prev: Any, ctx: duro.StepContext) -> int:
        seen.append(ctx.step_name)
        return prev["fetch"]["price"] * order["qty"]

    async with duro.Engine(str(tmp_path / "s")) as engine:
        flow = duro.workflow(name).step("fetch", fetch).step("charge", charge)
        handle = await flow.run_async({"qty": 3}, engine=engine, run_id="a-1")
        result = await handle.result_async(timeout=30)
    assert result.value == {"fetch": {"price": 10}, "charge": 30}
    assert seen == [True, "charge"], "the engine opened in this loop runs coroutine steps in it"


async def test_sync_steps_of_an_async_workflow_never_run_on_the_loop(tmp_path: Path, name: str) -> None:
    loop_thread = threading.current_thread()

    def blocking(order: Any) -> bool:
        time.sleep(0.01)
        return threading.current_thread() is not loop_thread

    async def nothing(order: Any) -> None:
        return None

    async with duro.Engine(str(tmp_path / "s")) as engine:
        flow = duro.workflow(name).step("sync", blocking).step("async", nothing)
        result = await (await flow.run_async(None, engine=engine)).result_async(timeout=30)
    assert result.value == {"sync": True, "async": None}


async def test_many_concurrent_async_runs(tmp_path: Path, name: str) -> None:
    async def step(i: int) -> int:
        return i * 2

    async with duro.Engine(str(tmp_path / "s")) as engine:
        flow = duro.workflow(name).step("a", step).step("b", lambda i, p: p["a"] + 1)
        handles = await asyncio.gather(*(flow.run_async(i, engine=engine, run_id=f"r{i}") for i in range(200)))
        results = await asyncio.gather(*(h.result_async(timeout=60) for h in handles))
    assert [r.value for r in results] == [{"a": i * 2, "b": i * 2 + 1} for i in range(200)]


async def test_the_tasks_driving_runs_are_let_go_when_the_runs_end(tmp_path: Path, name: str) -> None:
    async def step(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def fails(i: int) -> int:
        raise duro.NonRetryableError("no")

    async with duro.Engine(str(tmp_path / "s")) as engine:
        flows = [duro.workflow(name).step("a", step).step("b", step), duro.workflow(name + "-f").step("a", fails)]
        handles = await asyncio.gather(*(flows[i % 2].run_async(i, engine=engine) for i in range(100)))
        results = await asyncio.gather(*(h.result_async(timeout=60) for h in handles))
        driver = engine._async
        assert driver is not None
        assert driver._tasks == set(), "a finished run's task is still held"
    assert [r.ok for r in results] == [i % 2 == 0 for i in range(100)]


async def test_async_retries_and_timeouts(tmp_path: Path, name: str) -> None:
    attempts: List[int] = []

    async def flaky(order: Any, prev: Any, ctx: duro.StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(5)  # cancelled by the step timeout
        return "ok"

    async with duro.Engine(str(tmp_path / "s")) as engine:
        flow = duro.workflow(name, retry=FAST).step("flaky", flaky, timeout="100ms")
        result = await (await flow.run_async(None, engine=engine)).result_async(timeout=30)
    assert result.ok and attempts == [1, 2]


async def test_async_twins_of_the_handle(tmp_path: Path, name: str) -> None:
    async with duro.Engine(str(tmp_path / "s")) as engine:
        flow = duro.workflow(name, retry=ONCE).wait_for_event("go").step("after", lambda i, p: p["go"])
        handle = await flow.run_async(None, engine=engine, run_id="twins")
        for _ in range(500):
            if await handle.status_async() == "waiting":
                break
            await asyncio.sleep(0.01)
        assert (await handle.meta_async()).current_step == "go"
        await handle.pause_async()
        await handle.resume_async()
        await handle.send_event_async("go", [1, 2])
        result = await handle.result_async(timeout=30)
        assert result.value == {"go": [1, 2], "after": [1, 2]}
        assert [e.name for e in await handle.journal_async()] == ["go", "after"]
        other = await flow.run_async(None, engine=engine, run_id="twins-2")
        await other.cancel_async()
        assert (await other.result_async(timeout=30)).status == "cancelled"
        assert {m.run_id for m in await engine.runs_async(workflow=name)} == {"twins", "twins-2"}
        assert (await engine.handle_async("twins")).run_id == "twins"


async def test_result_async_times_out(tmp_path: Path, name: str) -> None:
    async with duro.Engine(str(tmp_path / "s")) as engine:
        handle = await duro.workflow(name).sleep("nap", "1h").run_async(None, engine=engine)
        with pytest.raises(duro.ResultTimeout):
            await handle.result_async(timeout=0.05)


def test_async_api_works_with_an_engine_opened_outside_any_loop(engine: duro.Engine, name: str) -> None:
    async def step(i: int) -> int:
        await asyncio.sleep(0)
        return i + 1

    flow = duro.workflow(name).step("a", step)

    async def main() -> Any:
        handle = await flow.run_async(1, engine=engine)
        return await handle.result_async(timeout=30)

    assert asyncio.run(main()).value == {"a": 2}
    assert flow.run(5, engine=engine).result(timeout=30).value == {"a": 6}, "sync callers use the background loop"


async def test_hanging_timed_sync_steps_of_an_async_workflow_do_not_starve_the_others(tmp_path: Path, name: str) -> None:
    gate = threading.Event()
    started: List[int] = []
    hung = 40  # more than the loop's default executor holds (min(32, cpus + 4))

    def hang(i: int) -> None:
        started.append(i)
        gate.wait(60)

    async def first(i: int) -> int:
        return i

    try:
        async with duro.Engine(str(tmp_path / "s")) as engine:
            flow = duro.workflow(name, retry=ONCE).step("first", first).step("hang", hang, timeout="2s")
            handles = await asyncio.gather(*(flow.run_async(i, engine=engine) for i in range(hung)))
            results = await asyncio.gather(*(h.result_async(timeout=120) for h in handles))
            assert {(r.error.error_type, r.error.failed_step) for r in results if r.error} == {("StepTimeout", "hang")}
            assert sorted(started) == list(range(hung)), "every timed call started at once, on its own thread"
            quick = duro.workflow(name + "-quick").step("first", first).step("quick", lambda i, p: p["first"] + 1, timeout="10s")
            result = await (await quick.run_async(1, engine=engine)).result_async(timeout=60)
            assert result.value == {"first": 1, "quick": 2}
    finally:
        gate.set()


async def test_run_many_async_starts_many_runs_with_one_durability_wait(tmp_path: Path, name: str) -> None:
    async def double(i: int) -> int:
        return i * 2

    async with duro.Engine(str(tmp_path / "s")) as engine:
        flow = duro.workflow(name).step("double", double)
        handles = await flow.run_many_async(range(20), engine=engine, run_ids=[f"m{i}" for i in range(20)])
        assert [h.run_id for h in handles] == [f"m{i}" for i in range(20)]
        results = await asyncio.gather(*(h.result_async(timeout=60) for h in handles))
        assert [r.value for r in results] == [{"double": i * 2} for i in range(20)]
        again = await flow.run_many_async([100, 200], engine=engine, run_ids=["m0", "new"])
        assert [h.run_id for h in again] == ["m0", "new"], "an existing run id gives that run's handle"
        assert (await again[0].result_async(timeout=60)).value == {"double": 0}
        sync_flow = duro.workflow(name + "-sync").step("inc", lambda i: i + 1)
        sync_handles = await sync_flow.run_many_async([1, 2], engine=engine)
        assert [(await h.result_async(timeout=60)).value for h in sync_handles] == [{"inc": 2}, {"inc": 3}]
        assert await flow.run_many_async([], engine=engine) == []


async def test_a_blocking_result_on_the_loop_that_runs_the_run_raises_instead_of_hanging(tmp_path: Path, name: str) -> None:
    async def first(i: Any) -> int:
        return 1

    async with duro.Engine(str(tmp_path / "s")) as engine:
        flow = duro.workflow(name).step("first", first).wait_for_event("go")
        handle = await flow.run_async(None, engine=engine)
        with pytest.raises(duro.BlockingCallInEventLoop, match=r"await handle\.result_async\(\)") as raised:
            handle.result(timeout=10)  # used to block this loop until the timeout
        assert isinstance(raised.value, duro.DuroError)
        with pytest.raises(duro.ResultTimeout):  # a poll (timeout=0) never blocks, so it is allowed
            handle.result(timeout=0)
        await handle.send_event_async("go", "yes")
        result = await handle.result_async(timeout=30)
        assert result.value == {"first": 1, "go": "yes"}
        assert handle.result().value == result.value, "an ended run's result never blocks"
        # A plain workflow does not need this loop: its blocking result() works (it only blocks the loop).
        plain = duro.workflow(name + "-plain").step("a", lambda i: i + 1)
        assert plain.run(1, engine=engine).result(timeout=30).value == {"a": 2}


def test_an_engine_whose_event_loop_closed_says_so_instead_of_hanging(tmp_path: Path, name: str) -> None:
    async def first(i: int) -> int:
        return i

    async_flow = duro.workflow(name).step("first", first).sleep("nap", "1h")
    plain = duro.workflow(name + "-plain").step("a", lambda i: i + 1)
    path = str(tmp_path / "s")

    async def open_in_a_loop() -> Any:
        engine = duro.Engine(path)  # runs async workflows on this loop, which ends below
        sleeping = await async_flow.run_async(1, engine=engine, run_id="sleeper")
        for _ in range(3000):
            if await sleeping.status_async() == "sleeping":
                break
            await asyncio.sleep(0.01)
        return engine, sleeping

    engine, sleeping = asyncio.run(open_in_a_loop())
    try:
        with pytest.raises(duro.EventLoopClosed, match=r"async with duro\.Engine"):
            sleeping.result(timeout=10)  # used to wait until the timeout
        with pytest.raises(duro.EventLoopClosed):
            async_flow.run(2, engine=engine)
        assert [m.run_id for m in engine.runs(workflow=name)] == ["sleeper"], "no run was started"
        assert plain.run(1, engine=engine).result(timeout=30).value == {"a": 2}, "plain workflows keep working"

        async def in_a_new_loop() -> Any:
            with pytest.raises(duro.EventLoopClosed):
                await async_flow.run_async(3, engine=engine)
            with pytest.raises(duro.EventLoopClosed):
                await sleeping.result_async(timeout=10)
            handle = await plain.run_async(5, engine=engine)
            await sleeping.pause_async()
            return await handle.result_async(timeout=30)

        assert asyncio.run(in_a_new_loop()).value == {"a": 6}
    finally:
        engine.close()
    with duro.Engine(path) as reopened:
        assert reopened.handle("sleeper").status() == "paused", "the run waits, intact, for an engine that can run it"
