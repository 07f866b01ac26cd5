"""duro replay: a child runs a chain whose last step blocks (and is SIGKILLed
there by the orchestrator); a fresh process opens the store and finishes it."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any, Dict

import duro

from common import step_input
from workloads import duro_flows as F

RUN_ID = "replay-1"


def _setup(p: Dict[str, Any]) -> duro.Workflow:
    F.GATE["release"] = p["release_file"]
    F.GATE["reached"] = p["reached_file"]
    return F.chain("bench-replay", p["steps"], p["api"], blocking_last=True)


def child(p: Dict[str, Any]) -> Dict[str, Any]:
    wf = _setup(p)
    x = step_input(p["payload"], 1)
    if p["api"] == "sync":
        engine = duro.Engine(os.path.join(p["dir"], "duro-store"))
        wf.run(x, engine=engine, run_id=RUN_ID).result()
    else:

        async def main() -> None:
            engine = duro.Engine(os.path.join(p["dir"], "duro-store"))
            await (await wf.run_async(x, engine=engine, run_id=RUN_ID)).result_async()

        asyncio.run(main())
    return {"metrics": {}, "error": "the child was not killed"}


def resume(p: Dict[str, Any]) -> Dict[str, Any]:
    wf = _setup(p)  # defined before the engine opens, so recovery starts at once
    n = p["steps"]
    x = step_input(p["payload"], 1)
    # The definition just built (thousands of steps) leaves garbage behind; collect it
    # before the clock starts, for every system alike, so no full collection of the
    # harness's setup lands in the measurement.
    gc.collect()
    if p["api"] == "sync":
        t0 = time.perf_counter()
        engine = duro.Engine(os.path.join(p["dir"], "duro-store"))
        opened = time.perf_counter()
        result = engine.handle(RUN_ID).result()
        done = time.perf_counter()
        done_wall = time.time()
        engine.close()
    else:

        async def main() -> Any:
            t0 = time.perf_counter()
            engine = duro.Engine(os.path.join(p["dir"], "duro-store"))
            opened = time.perf_counter()
            handle = await engine.handle_async(RUN_ID)
            result = await handle.result_async()
            done = time.perf_counter()
            done_wall = time.time()
            await asyncio.to_thread(engine.close)
            return t0, opened, result, done, done_wall

        t0, opened, result, done, done_wall = asyncio.run(main())
    error = F.check_outputs(result, n, x)
    last_started = F.LAST["started"]
    if last_started is None:
        error = error or "the last step never started"
        last_started = done
    executed = len(F.STARTS)
    if executed:
        error = error or f"{executed} recorded steps ran again"
    return {
        "metrics": {
            "open_to_result_ms": (done - t0) * 1e3,
            "us_per_recorded_step": (last_started - t0) * 1e6 / n,
            "engine_open_ms": (opened - t0) * 1e3,
            "us_per_step_after_open": (last_started - opened) * 1e6 / n,
        },
        "done_wall": done_wall,
        "error": error,
    }
