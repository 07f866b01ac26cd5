"""DBOS replay: a child runs a chain whose last step blocks (SIGKILLed there);
a fresh process launches DBOS (which recovers pending workflows) and waits."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Dict

from dbos import DBOS, SetWorkflowID

from common import step_input
from workloads import dbos_app as A

RUN_ID = "replay-1"
#: The handle of a recovered run polls the database; DBOS's default is every 1 s. 10 ms favours DBOS.
POLL_S = 0.01


def _gate(p: Dict[str, Any]) -> None:
    A.GATE["release"] = p["release_file"]
    A.GATE["reached"] = p["reached_file"]


def child(p: Dict[str, Any]) -> Dict[str, Any]:
    _gate(p)
    x = step_input(p["payload"], 1)
    if p["api"] == "sync":
        A.open_dbos(p)
        with SetWorkflowID(RUN_ID):
            handle = DBOS.start_workflow(A.chain_last, p["steps"], x)
        handle.get_result()
    else:

        async def main() -> None:
            A.open_dbos(p)
            with SetWorkflowID(RUN_ID):
                handle = await DBOS.start_workflow_async(A.achain_last, p["steps"], x)
            await handle.get_result()

        asyncio.run(main())
    return {"metrics": {}, "error": "the child was not killed"}


def resume(p: Dict[str, Any]) -> Dict[str, Any]:
    _gate(p)
    n, x = p["steps"], step_input(p["payload"], 1)
    # The definition just built (thousands of steps) leaves garbage behind; collect it
    # before the clock starts, for every system alike, so no full collection of the
    # harness's setup lands in the measurement.
    gc.collect()
    if p["api"] == "sync":
        t0 = time.perf_counter()
        A.open_dbos(p)
        opened = time.perf_counter()
        result = DBOS.retrieve_workflow(RUN_ID).get_result(polling_interval_sec=POLL_S)
        done = time.perf_counter()
        done_wall = time.time()
    else:

        async def main() -> Any:
            t0 = time.perf_counter()
            A.open_dbos(p)
            opened = time.perf_counter()
            handle = await DBOS.retrieve_workflow_async(RUN_ID)
            result = await handle.get_result(polling_interval_sec=POLL_S)
            return t0, opened, result, time.perf_counter(), time.time()

        t0, opened, result, done, done_wall = asyncio.run(main())
    error = None if result == x else f"result {result!r} != input"
    last_started = A.LAST["started"]
    if last_started is None:
        error = error or "the last step never started"
        last_started = done
    if A.STARTS:
        error = error or f"{len(A.STARTS)} recorded steps ran again"
    DBOS.destroy()
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
