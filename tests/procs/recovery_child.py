"""Child process of tests/test_recovery.py: one scenario, one role, then exit or be killed.

    python recovery_child.py SCENARIO ROLE --store DIR --work DIR [--variant V] [--block NAME ...]

* ``--store`` is the engine directory; ``--work`` holds what the parent reads:
  ``effects.log`` (every step/compensation/on_failure call appends
  ``name,attempt,pid,run_id,idempotency_key,unix_time`` with fsync BEFORE it
  returns), ``reached.<run>.<name>`` files written by blocking steps, and
  ``<ROLE>.json``, the role's report (written once the role has seen what it
  waits for; "start" roles then block until the parent SIGKILLs them).
* ``--block NAME`` makes the step (``compensate:STEP``, ``on_failure``) called NAME
  write its reached file and block forever, so the parent can kill the process
  inside it; ``--gate NAME`` makes it wait for ``go.<run>.<NAME>`` instead.
* ``--variant`` picks a scenario's variant; ``--wait`` bounds waits for results.

Workflow definitions are built by functions so a role can define them only
after it has inspected the store (runs of a workflow resume only once it is
defined in the process).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import _procutil as pu

pu.setup_logging()

import duro  # noqa: E402  (logging first)

parser = argparse.ArgumentParser()
parser.add_argument("scenario")
parser.add_argument("role")
parser.add_argument("--store", required=True)
parser.add_argument("--work", required=True)
parser.add_argument("--variant", default="")
parser.add_argument("--block", action="append", default=[])
parser.add_argument("--gate", action="append", default=[])
parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a result (generous)")
ARGS = parser.parse_args()

WORK = Path(ARGS.work)
EFFECTS = str(WORK / "effects.log")
BLOCK = set(ARGS.block)
GATE = set(ARGS.gate)
PID = os.getpid()
FAST = duro.Retry(max_attempts=5, initial_delay="50ms", jitter=0.0)
WAIT = ARGS.wait


def record(name: str, ctx: Any) -> float:
    t = time.time()
    key = getattr(ctx, "idempotency_key", "-")  # a FailureContext has none
    pu.append_line(EFFECTS, f"{name},{ctx.attempt},{PID},{ctx.run_id},{key},{t:.6f}")
    return t


def reached(run_id: str, name: str, **extra: Any) -> None:
    pu.write_json(str(WORK / f"reached.{run_id}.{name}"), {"pid": PID, **extra})


def checkpoint_point(name: str, ctx: Any) -> None:
    if name in BLOCK:
        reached(ctx.run_id, name, attempt=ctx.attempt)
        pu.block_forever()
    if name in GATE:
        reached(ctx.run_id, name, attempt=ctx.attempt)
        go = WORK / f"go.{ctx.run_id}.{name}"
        pu.wait_until(go.exists, 120, f"{go}")


def task(name: str) -> Any:
    def fn(inp: Any, prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
        t = record(name, ctx)
        checkpoint_point(name, ctx)
        return {"step": name, "pid": PID, "attempt": ctx.attempt, "key": ctx.idempotency_key, "t": t}

    fn.__name__ = f"step_{name}"
    return fn


def compensation(name: str) -> Any:
    label = f"compensate:{name}"

    def fn(inp: Any, output: Any, ctx: duro.StepContext) -> Dict[str, Any]:
        t = record(label, ctx)
        checkpoint_point(label, ctx)
        return {"undone": name, "output_step": (output or {}).get("step"), "pid": PID, "t": t}

    fn.__name__ = f"compensate_{name}"
    return fn


def on_failure(fctx: duro.FailureContext) -> None:
    record("on_failure", fctx)
    checkpoint_point("on_failure", fctx)
    pu.write_json(
        str(WORK / f"on_failure.{PID}.json"),
        {
            "run_id": fctx.run_id,
            "failed_step": fctx.failed_step,
            "error_type": fctx.error.error_type,
            "message": fctx.error.message,
            "completed_steps": list(fctx.completed_steps),
        },
    )


def engine() -> duro.Engine:
    return duro.Engine(ARGS.store)


def report(role: str, **data: Any) -> None:
    pu.write_json(str(WORK / f"{role}.json"), {"pid": PID, **data})


def wait_reached(run_id: str, name: str) -> Dict[str, Any]:
    """Waits until step ``name`` of ``run_id`` got to its blocking point in THIS process."""
    path = WORK / f"reached.{run_id}.{name}"

    def mine() -> Any:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("pid") == PID else None

    return pu.wait_until(mine, WAIT, f"step {name} of {run_id}")


def settle() -> None:
    """A margin for the state just observed to be on disk before the parent kills us.

    Nothing the tests assert depends on the exact moment; the margin only
    avoids turning "killed after X was durable" into "killed while X was in flight".
    """
    time.sleep(0.3)


def snapshot(h: duro.RunHandle) -> Dict[str, Any]:
    return {"meta": pu.meta_dump(h.meta()), "journal": pu.journal_dump(h.journal())}


def finish(h: duro.RunHandle) -> Dict[str, Any]:
    r = h.result(timeout=WAIT)
    return {"result": pu.result_dump(r), **snapshot(h)}


# -- 1. kill mid-way ---------------------------------------------------------------------------


def wf_kill() -> duro.Workflow:
    flow = duro.workflow("rec-kill", retry=FAST)
    for name in ("s1", "s2", "s3", "s4"):
        flow = flow.step(name, task(name))
    return flow


def scenario_kill(role: str) -> None:
    if role == "start":
        flow = wf_kill()
        e = engine()
        h = flow.run({"n": 1}, engine=e, run_id="r1")
        wait_reached("r1", "s3")
        report(role, **snapshot(h))
        pu.block_forever()
    elif role == "finish":
        flow = wf_kill()  # defined BEFORE the engine opens: the run resumes at open
        e = engine()
        report(role, **finish(e.handle("r1")))
        e.close()


# -- 2. durable sleep --------------------------------------------------------------------------


def wf_sleep() -> duro.Workflow:
    return duro.workflow("rec-sleep", retry=FAST).step("a", task("a")).sleep("nap", "2s").step("b", task("b"))


def scenario_sleep(role: str) -> None:
    if role == "start":
        flow = wf_sleep()
        e = engine()
        h = flow.run({}, engine=e, run_id="r1")
        pu.wait_until(lambda: h.status() == "sleeping", WAIT, "status sleeping")
        settle()
        report(role, **snapshot(h))
        pu.block_forever()
    elif role == "finish":
        e = engine()
        h = e.handle("r1")
        opened = time.time()
        before = snapshot(h)  # the workflow is not defined yet: nothing can move
        flow = wf_sleep()
        e.register(flow)
        report(role, opened=opened, before=before, **finish(h))
        e.close()


# -- 3. events ---------------------------------------------------------------------------------


def event_b(inp: Any, prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
    t = record("b", ctx)
    return {"step": "b", "pid": PID, "got": prev["approved"], "t": t}


def wf_event() -> duro.Workflow:
    # --variant notimeout: the wait has no timeout; otherwise it times out after an hour.
    timeout = None if ARGS.variant == "notimeout" else "1h"
    return (
        duro.workflow("rec-event", retry=FAST)
        .step("a", task("a"))
        .wait_for_event("approved", timeout=timeout)
        .step("b", event_b)
    )


def scenario_event(role: str) -> None:
    if role == "start":
        flow = wf_event()
        e = engine()
        h = flow.run({}, engine=e, run_id="r1")
        pu.wait_until(lambda: h.status() == "waiting", WAIT, "status waiting")
        settle()
        report(role, **snapshot(h))
        pu.block_forever()
    elif role == "send":
        # This process never defines rec-event.
        e = engine()
        listed = {m.run_id: pu.meta_dump(m) for m in e.runs()}
        h = e.handle("r1")
        before = snapshot(h)
        h.send_event("approved", {"by": "sender", "pid": PID})
        time.sleep(0.5)
        after = snapshot(h)
        report(role, listed=listed, before=before, after=after)
        e.close()
    elif role == "finish-live":
        e = engine()
        h = e.handle("r1")
        before = snapshot(h)
        flow = wf_event()
        e.register(flow)
        time.sleep(0.5)
        still = snapshot(h)  # no event yet: it must still wait
        h.send_event("approved", {"by": "finisher", "pid": PID})
        report(role, before=before, still=still, **finish(h))
        e.close()
    elif role == "finish-parked":
        e = engine()
        h = e.handle("r1")
        before = snapshot(h)
        flow = wf_event()
        e.register(flow)
        try:
            # Generous, yet far below the wait's own timeout of an hour.
            out = finish(h)
        except duro.ResultTimeout as exc:
            out = {"timed_out": str(exc), **snapshot(h)}
        report(role, before=before, **out)
        e.close()


# -- 4. retry backoff --------------------------------------------------------------------------

RETRY_4 = duro.Retry(max_attempts=3, initial_delay="300ms", multiplier=10.0, jitter=0.0)  # waits 0.3 s, then 3 s


def flaky(inp: Any, prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
    t = record("flaky", ctx)
    succeed_at = inp["succeed_at"]
    if succeed_at is None or ctx.attempt < succeed_at:
        raise RuntimeError(f"flaky failure at attempt {ctx.attempt}")
    return {"step": "flaky", "pid": PID, "attempt": ctx.attempt, "t": t}


def wf_retry() -> duro.Workflow:
    return duro.workflow("rec-retry", retry=RETRY_4).step("flaky", flaky).step("after", task("after"))


def scenario_retry(role: str) -> None:
    if role == "start":
        flow = wf_retry()
        e = engine()
        hs = [
            flow.run({"succeed_at": 3}, engine=e, run_id="ok"),
            flow.run({"succeed_at": None}, engine=e, run_id="fail"),
        ]

        def in_second_backoff(h: duro.RunHandle) -> bool:
            j = h.journal()
            return bool(j) and j[0].attempt == 2 and j[0].retry_at is not None

        pu.wait_until(lambda: all(in_second_backoff(h) for h in hs), WAIT, "second backoff of both runs")
        settle()
        report(role, runs={h.run_id: snapshot(h) for h in hs})
        pu.block_forever()
    elif role == "finish":
        e = engine()
        hs = [e.handle("ok"), e.handle("fail")]
        before = {h.run_id: snapshot(h) for h in hs}
        flow = wf_retry()
        e.register(flow)
        report(role, before=before, runs={h.run_id: finish(h) for h in hs})
        e.close()


# -- 5. pause ----------------------------------------------------------------------------------


def wf_pause() -> duro.Workflow:
    return duro.workflow("rec-pause", retry=FAST).step("a", task("a")).step("b", task("b")).step("c", task("c"))


def scenario_pause(role: str) -> None:
    if role == "start":
        flow = wf_pause()
        e = engine()
        h = flow.run({}, engine=e, run_id="r1")
        wait_reached("r1", "a")  # step a is running and waits for its go file (--gate a)
        h.pause()
        (WORK / "go.r1.a").write_text("go")
        pu.wait_until(lambda: h.status() == "paused", WAIT, "status paused")
        settle()
        report(role, **snapshot(h))
        pu.block_forever()
    elif role == "resume":
        flow = wf_pause()  # defined before open: a run that were not paused would go on at once
        e = engine()
        h = e.handle("r1")
        at_open = snapshot(h)
        time.sleep(1.5)
        later = snapshot(h)
        resumed_at = time.time()
        h.resume()
        report(role, at_open=at_open, later=later, resumed_at=resumed_at, **finish(h))
        e.close()


# -- 6. unknown workflow on recovery -----------------------------------------------------------


def wf_unknown() -> duro.Workflow:
    return duro.workflow("rec-unknown", retry=FAST).step("s1", task("s1")).step("s2", task("s2")).step("s3", task("s3"))


def scenario_unknown(role: str) -> None:
    if role == "start":
        flow = wf_unknown()
        e = engine()
        h = flow.run({}, engine=e, run_id="r1")
        wait_reached("r1", "s2")
        settle()
        report(role, **snapshot(h))
        pu.block_forever()
    elif role == "inspect":
        e = engine()  # rec-unknown is never defined in this process
        runs = [pu.meta_dump(m) for m in e.runs()]
        first = snapshot(e.handle("r1"))
        time.sleep(1.0)  # several settle periods of the definition watcher
        second = snapshot(e.handle("r1"))
        by_status = [pu.meta_dump(m) for m in e.runs(status=first["meta"]["status"])]
        report(role, runs=runs, first=first, second=second, by_status=by_status)
        e.close()
    elif role == "finish":
        flow = wf_unknown()
        e = engine()
        report(role, **finish(e.handle("r1")))
        e.close()


# -- 7. non-determinism ------------------------------------------------------------------------

ND_ORIGINAL = ["alpha", "bravo", "charlie", "delta"]
ND_CHANGED = {
    "renamed": ["alpha", "bravo_renamed", "charlie", "delta"],
    "reordered": ["alpha", "charlie", "bravo", "delta"],
    "removed": ["alpha", "charlie", "delta"],
}


def wf_nd(steps: List[str]) -> duro.Workflow:
    flow = duro.workflow(f"rec-nd-{ARGS.variant}", retry=FAST)
    for name in steps:
        flow = flow.step(name, task(name))
    return flow


def scenario_nd(role: str) -> None:
    if role == "start":
        flow = wf_nd(ND_ORIGINAL)
        e = engine()
        h = flow.run({}, engine=e, run_id="r1")
        wait_reached("r1", "charlie")
        settle()
        report(role, **snapshot(h))
        pu.block_forever()
    elif role in ("changed", "changed-then-fix"):
        e = engine()
        h = e.handle("r1")
        before = snapshot(h)
        changed = wf_nd(ND_CHANGED[ARGS.variant])
        e.register(changed)
        error: Dict[str, Any] = {"raised": None}
        changed_at = time.time()
        try:
            r = h.result(timeout=WAIT)
            error["result"] = pu.result_dump(r)
        except Exception as exc:  # noqa: BLE001 - the parent judges the type
            error = {"raised": type(exc).__name__, "is_nd": isinstance(exc, duro.NonDeterminismError), "message": str(exc)}
        time.sleep(0.5)  # give a wrongly running run time to write something
        after = snapshot(h)
        out: Dict[str, Any] = {"before": before, "error": error, "after": after, "changed_at": changed_at}
        if role == "changed-then-fix":
            out["fixed_at"] = time.time()
            original = wf_nd(ND_ORIGINAL)  # the same (name, version) again, original steps
            e.register(original)
            out["fixed"] = finish(h)
        report(role, **out)
        e.close()
    elif role == "finish":
        e = engine()
        h = e.handle("r1")
        before = snapshot(h)
        flow = wf_nd(ND_ORIGINAL)
        e.register(flow)
        report(role, before=before, **finish(h))
        e.close()


# -- 8. compensation ---------------------------------------------------------------------------


def card_declined(inp: Any, prev: Any, ctx: duro.StepContext) -> None:
    record("s4", ctx)
    raise ValueError("card declined (the original error)")


def wf_comp() -> duro.Workflow:
    flow = duro.workflow("rec-comp", retry=FAST)
    for name in ("s1", "s2", "s3"):
        flow = flow.step(name, task(name), compensate=compensation(name))
    return flow.step("s4", card_declined, retry=duro.NO_RETRY).on_failure(on_failure)


def scenario_comp(role: str) -> None:
    if role == "start":
        flow = wf_comp()
        e = engine()
        h = flow.run({}, engine=e, run_id="r1")
        wait_reached("r1", ARGS.block[0])
        settle()
        report(role, **snapshot(h))
        pu.block_forever()
    elif role == "finish":
        flow = wf_comp()
        e = engine()
        report(role, **finish(e.handle("r1")))
        e.close()


# -- 9. delayed start --------------------------------------------------------------------------


def wf_delay() -> duro.Workflow:
    return duro.workflow("rec-delay", retry=FAST).step("a", task("a")).step("b", task("b"))


def scenario_delay(role: str) -> None:
    if role == "start":
        flow = wf_delay()
        e = engine()
        t0 = time.time()
        h = flow.run({}, engine=e, run_id="r1", delay="2s")
        t1 = time.time()
        report(role, t0=t0, t1=t1, **snapshot(h))
        pu.block_forever()
    elif role == "finish":
        e = engine()
        h = e.handle("r1")
        before = snapshot(h)
        flow = wf_delay()
        e.register(flow)
        report(role, before=before, **finish(h))
        e.close()


# -- crash loop: a step that kills its process each time -------------------------------------


def boom(inp: Any, prev: Any, ctx: duro.StepContext) -> None:
    record("boom", ctx)
    os.kill(PID, signal.SIGKILL)


def scenario_crashloop(role: str) -> None:
    flow = duro.workflow("rec-crashloop", retry=FAST).step("ok", task("ok")).step("boom", boom)
    e = duro.Engine(ARGS.store, max_recovery_attempts=int(ARGS.variant))
    h = flow.run({}, engine=e, run_id="r1")  # the same id: returns the existing run
    report(role, **finish(h))
    e.close()


# -- retries and a kill inside the last attempt ------------------------------------------------


def flaky_then_hang(inp: Any, prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
    record("flaky", ctx)
    if ctx.attempt <= 2:
        raise RuntimeError(f"flaky failure at attempt {ctx.attempt}")
    if ARGS.role in ("start", "again"):
        reached(ctx.run_id, "flaky", attempt=ctx.attempt)
        pu.block_forever()
    return {"step": "flaky", "attempt": ctx.attempt, "pid": PID}


def scenario_retrykill(role: str) -> None:
    """start: attempts 1-2 fail, attempt 3 hangs (killed). again: hangs in whatever attempt
    the engine runs next (killed), or reports how the run ended if it runs none. finish: completes."""
    flow = duro.workflow("rec-retrykill", retry=duro.Retry(max_attempts=3, initial_delay="50ms", jitter=0.0))
    flow = flow.step("flaky", flaky_then_hang)
    e = engine()
    h = flow.run({}, engine=e, run_id="r1")
    if role == "start":
        got = wait_reached("r1", "flaky")
        report(role, reached=True, attempt=got["attempt"])
        pu.block_forever()
    if role == "again":
        path = WORK / "reached.r1.flaky"
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                got = json.loads(path.read_text())
            except (OSError, ValueError):
                got = {}
            if got.get("pid") == PID:
                report(role, reached=True, attempt=got["attempt"])
                pu.block_forever()
            try:
                report(role, reached=False, **finish_now(h))
                e.close()
                return
            except duro.ResultTimeout:
                pass
        raise TimeoutError("the run neither ran an attempt nor ended")
    report(role, **finish(h))
    e.close()


def finish_now(h: duro.RunHandle) -> Dict[str, Any]:
    r = h.result(timeout=0.05)
    return {"result": pu.result_dump(r), **snapshot(h)}


# -- cancel recorded while the workflow is undefined -------------------------------------------


def wf_cancel() -> duro.Workflow:
    return duro.workflow("rec-cancel", retry=FAST).step("a", task("a")).sleep("nap", "1h").step("b", task("b"))


def scenario_cancel(role: str) -> None:
    if role == "start":
        flow = wf_cancel()
        e = engine()
        h = flow.run({}, engine=e, run_id="r1")
        pu.wait_until(lambda: h.status() == "sleeping", WAIT, "status sleeping")
        settle()
        report(role, **snapshot(h))
        pu.block_forever()
    elif role == "cancel":
        e = engine()  # rec-cancel is not defined here
        h = e.handle("r1")
        h.cancel()
        report(role, **snapshot(h))
        e.close()
    elif role == "finish":
        e = engine()
        h = e.handle("r1")
        e.register(wf_cancel())
        try:
            out = finish(h)
        except duro.ResultTimeout as exc:
            out = {"timed_out": str(exc), **snapshot(h)}
        report(role, **out)
        e.close()


SCENARIOS = {
    "kill": scenario_kill,
    "sleep": scenario_sleep,
    "event": scenario_event,
    "retry": scenario_retry,
    "pause": scenario_pause,
    "unknown": scenario_unknown,
    "nd": scenario_nd,
    "comp": scenario_comp,
    "delay": scenario_delay,
    "crashloop": scenario_crashloop,
    "retrykill": scenario_retrykill,
    "cancel": scenario_cancel,
}

if __name__ == "__main__":
    SCENARIOS[ARGS.scenario](ARGS.role)
    sys.stdout.flush()
