"""DBOS Transact: sequential chain, many concurrent runs, and sleeping-run memory."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Dict, List

from dbos import DBOS

from common import gaps_us, hwm_kib, percentile, rss_kib, step_input
from workloads import dbos_app as A


def seq(p: Dict[str, Any]) -> Dict[str, Any]:
    n, x = p["steps"], step_input(p["payload"], 1)
    if p["api"] == "sync":
        t = time.perf_counter()
        A.open_dbos(p)
        open_s = time.perf_counter() - t
        DBOS.start_workflow(A.chain, 10, x).get_result()  # warm-up
        A.STARTS.clear()
        t0 = time.perf_counter()
        result = DBOS.start_workflow(A.chain, n, x).get_result()
        elapsed = time.perf_counter() - t0
    else:

        async def main() -> Any:
            t = time.perf_counter()
            A.open_dbos(p)
            opened = time.perf_counter() - t
            await (await DBOS.start_workflow_async(A.achain, 10, x)).get_result()
            A.STARTS.clear()
            t0 = time.perf_counter()
            handle = await DBOS.start_workflow_async(A.achain, n, x)
            result = await handle.get_result()
            return opened, result, time.perf_counter() - t0

        open_s, result, elapsed = asyncio.run(main())
    error = None if result == x else f"result {result!r} != input"
    if len(A.STARTS) != n:
        error = error or f"{len(A.STARTS)} step starts recorded, expected {n}"
    gaps = gaps_us(A.STARTS)
    info = A.describe_sqlite(p["url"]) if p["backend"].startswith("sqlite") else {}
    DBOS.destroy()
    return {
        "metrics": {
            "steps_per_s": n / elapsed,
            "elapsed_s": elapsed,
            "step_gap_p50_us": percentile(gaps, 50),
            "step_gap_p99_us": percentile(gaps, 99),
            "engine_open_s": open_s,
        },
        "error": error,
        "store": info,
    }


def conc(p: Dict[str, Any]) -> Dict[str, Any]:
    runs, steps = p["runs"], p["steps"]
    inputs = [step_input(p["payload"], i) for i in range(runs)]
    errors: List[str] = []
    if p["api"] == "sync":
        A.open_dbos(p)
        for h in [DBOS.start_workflow(A.chain, steps, x) for x in inputs[:10]]:
            h.get_result()
        t0 = time.perf_counter()
        started = []
        for x in inputs:
            s = time.perf_counter()
            started.append((s, DBOS.start_workflow(A.chain, steps, x)))
        start_all = time.perf_counter() - t0
        latencies = []
        results = []
        for s, h in started:
            results.append(h.get_result())
            latencies.append(time.perf_counter() - s)
        elapsed = time.perf_counter() - t0
        # Checked after the clock stops, as for duro.
        errors = [f"run {i}: result {r!r}" for i, r in enumerate(results) if r != inputs[i]]
        how = "DBOS.start_workflow in a loop, then handle.get_result() in start order"
    else:
        start_all = None

        async def main() -> Any:
            A.open_dbos(p)
            hs = await asyncio.gather(*(DBOS.start_workflow_async(A.achain, steps, x) for x in inputs[:10]))
            for h in hs:
                await h.get_result()

            async def one(i: int) -> Any:
                s = time.perf_counter()
                h = await DBOS.start_workflow_async(A.achain, steps, inputs[i])
                r = await h.get_result()
                return time.perf_counter() - s, r

            t0 = time.perf_counter()
            done = await asyncio.gather(*(one(i) for i in range(runs)))
            return done, time.perf_counter() - t0

        done, elapsed = asyncio.run(main())
        latencies = [d[0] for d in done]
        # Checked after the clock stops, as for duro.
        errors = [f"run {i}: result {d[1]!r}" for i, d in enumerate(done) if d[1] != inputs[i]]
        how = "asyncio.gather of (await DBOS.start_workflow_async, await handle.get_result) per run"
    DBOS.destroy()
    metrics = {
        "steps_per_s": runs * steps / elapsed,
        "runs_per_s": runs / elapsed,
        "run_latency_p50_ms": percentile(latencies, 50) * 1e3,
        "run_latency_p99_ms": percentile(latencies, 99) * 1e3,
        "elapsed_s": elapsed,
    }
    if start_all is not None:
        metrics["start_all_s"] = start_all
    return {"metrics": metrics, "error": "; ".join(errors[:3]) or None, "how": how}


def memory(p: Dict[str, Any]) -> Dict[str, Any]:
    """Async workflows that call DBOS.sleep_async(3600) (a sync DBOS workflow would hold a thread each)."""
    runs = p["runs"]
    A.count_recorded_sleeps()

    async def main() -> Dict[str, Any]:
        A.open_dbos(p)
        await DBOS.start_workflow_async(A.anap, -1)  # warm-up: one sleeping run
        deadline = time.monotonic() + 30
        while A.SLEEPS["recorded"] < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        gc.collect()
        before = rss_kib()
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(DBOS.start_workflow_async(A.anap, i) for i in range(runs)))
        start_s = time.perf_counter() - t0
        after_start = rss_kib()
        deadline = time.monotonic() + p.get("timeout_s", 600)
        while A.SLEEPS["recorded"] < runs + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        all_sleeping_s = time.perf_counter() - t0
        del handles
        gc.collect()
        await asyncio.sleep(1.0)
        sleeping = rss_kib()
        recorded = A.SLEEPS["recorded"] - 1
        return {
            "metrics": {
                "kib_per_sleeping_run": (sleeping - before) / runs,
                "kib_per_run_after_start": (after_start - before) / runs,
                "kib_per_run_peak": (hwm_kib() - before) / runs,
                "start_all_s": start_s,
                "all_sleeping_s": all_sleeping_s,
                "rss_before_kib": before,
                "rss_sleeping_kib": sleeping,
            },
            "error": None if recorded >= runs else f"only {recorded} of {runs} sleeps recorded",
            "how": "asyncio.gather of DBOS.start_workflow_async of an async workflow awaiting DBOS.sleep_async(3600); "
            "RSS once every sleep is recorded, handles dropped",
        }

    out = asyncio.run(main())
    out["exit_without_destroy"] = True  # the worker exits at once: 10k sleeping tasks make destroy slow
    return out
