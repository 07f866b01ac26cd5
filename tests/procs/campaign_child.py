"""Child of tests/test_kill_campaign.py: runs mixed durable workloads, round
after round, until it is killed (or, with --final, until every round is done).

Workloads per round (fixed run ids, so a restarted child resumes them):
  seq     one run of SEQ_STEPS sequential steps
  conc    CONC_RUNS runs of 6 steps each, concurrently (shared group commits)
  retry   a step that fails its first two attempts, then succeeds
  sleepy  step, durable sleep of 30 ms, step
  saga    two compensated steps, then a step that fails for good: compensations
          run in reverse, then on_failure

The oracle file (outside the store) gets one line per event, each a single
O_APPEND write, fsynced:
  B,run,name,kind,attempt,life        before a function's body runs
  E,run,name,kind,attempt,life,ok     after it returned (``raised,<error type>`` if it raised)
  D,run,status,life                   after ``result()`` of the run returned (its end is durable)
``life`` numbers the processes (argv), so the parent can tell which one a KILL
line ends. Every function's output (journaled) carries ``by = "life.attempt"``:
the parent checks that the output the store kept is the last execution's. Each
step also checks that it sees its predecessors' outputs.

argv: STORE ORACLE ROUNDS LIFE [--final]
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable, Dict, List, Tuple

import duro

STORE, ORACLE, ROUNDS, LIFE = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
FINAL = "--final" in sys.argv
SEQ_STEPS = 20
CONC_RUNS = 8
logging.basicConfig(level=logging.ERROR, stream=sys.stderr)


def oracle(line: str) -> None:
    fd = os.open(ORACLE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def traced(name: str, kind: str, body: Callable[..., Any]) -> Callable[..., Any]:
    """``body`` between a BEGIN and an END line; the last argument is the context. The
    wrapper has ``body``'s signature (duro passes as many arguments as it takes)."""

    @functools.wraps(body)
    def fn(*args: Any) -> Any:
        ctx = args[-1]
        what = f"{ctx.run_id},{name},{kind},{ctx.attempt},{LIFE}"
        oracle(f"B,{what}")
        try:
            out = body(*args)
        except BaseException as exc:
            oracle(f"E,{what},raised,{type(exc).__name__}")
            raise
        oracle(f"E,{what},ok")
        return out

    return fn


def by(ctx: Any) -> str:
    return f"{LIFE}.{ctx.attempt}"


class PrevMissing(Exception):
    """``prev`` lacks the output of an earlier step (the parent counts it as a known bug)."""


def numbered(i: int) -> Any:
    def step(inp: Any, prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
        missing = [f"s{j}" for j in range(i) if f"s{j}" not in prev]
        if missing:
            raise PrevMissing(f"step s{i} finds no output of {missing} in prev")
        for j in range(i):
            got = prev[f"s{j}"]
            assert (got["i"], got["sq"]) == (j, j * j), f"step s{i} sees a wrong output of s{j}: {got}"
        return {"i": i, "sq": i * i, "by": by(ctx)}

    return traced(f"s{i}", "step", step)


def flaky_body(inp: Any, prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
    if ctx.attempt <= 2:
        # Fails its first two starts (a crash may take one of them: then it fails once).
        raise ConnectionError(f"attempt {ctx.attempt} fails")
    return {"ok": True, "by": by(ctx)}


def undo(name: str) -> Any:
    def compensate(inp: Any, output: Any, ctx: duro.StepContext) -> Dict[str, Any]:
        assert output["did"] == name, output
        return {"undid": name, "by": by(ctx)}

    return traced(name, "compensation", compensate)


def did(name: str) -> Any:
    def step(inp: Any, prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
        return {"did": name, "by": by(ctx)}

    return traced(name, "step", step)


def fail_for_good(inp: Any, prev: Any, ctx: duro.StepContext) -> None:
    raise duro.NonRetryableError("c cannot succeed")


def on_failure_body(ctx: duro.FailureContext) -> Dict[str, Any]:
    assert ctx.failed_step == "c" and ctx.completed_steps == ["a", "b"]
    return {"handled": "c", "by": by(ctx)}


RETRY = duro.Retry(max_attempts=3, initial_delay="5ms", jitter=0.0)
seq = duro.workflow("camp-seq", retry=RETRY)
for i in range(SEQ_STEPS):
    seq = seq.step(f"s{i}", numbered(i))
conc = duro.workflow("camp-conc", retry=RETRY)
for i in range(6):
    conc = conc.step(f"s{i}", numbered(i))
retry = duro.workflow("camp-retry", retry=RETRY).step("flaky", traced("flaky", "step", flaky_body))
sleepy = duro.workflow("camp-sleepy", retry=RETRY).step("s0", numbered(0)).sleep("nap", "30ms").step("s1", numbered(1))
saga = (
    duro.workflow("camp-saga", retry=RETRY)
    .step("a", did("a"), compensate=undo("a"))
    .step("b", did("b"), compensate=undo("b"))
    .step("c", traced("c", "step", fail_for_good))
    .on_failure(traced("on_failure", "on_failure", on_failure_body))
)


PROGRESS = ORACLE + ".rounds"


def progress() -> Tuple[int, int]:
    """(rounds started, rounds done), from the progress file (outside the store)."""
    started = done = 0
    if os.path.exists(PROGRESS):
        for line in open(PROGRESS).read().split():
            kind, number = line.split(":")
            if kind == "start":
                started = max(started, int(number) + 1)
            else:
                done = max(done, int(number) + 1)
    return started, done


def note(line: str) -> None:
    fd = os.open(PROGRESS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> None:
    engine = duro.Engine(STORE)
    started, done = progress()
    # The final process finishes the rounds that were started and starts none.
    last = started if FINAL else ROUNDS
    for r in range(done, last):
        if r >= started:
            note(f"start:{r}")
        handles: List[duro.RunHandle] = [seq.run(None, engine=engine, run_id=f"r{r}-seq")]
        handles += conc.run_many([None] * CONC_RUNS, engine=engine, run_ids=[f"r{r}-conc{k}" for k in range(CONC_RUNS)])
        handles.append(retry.run(None, engine=engine, run_id=f"r{r}-retry"))
        handles.append(sleepy.run(None, engine=engine, run_id=f"r{r}-sleepy"))
        handles.append(saga.run(None, engine=engine, run_id=f"r{r}-saga"))
        for h in handles:
            result = h.result(timeout=120)
            oracle(f"D,{h.run_id},{result.status},{LIFE}")
        note(f"done:{r}")
    engine.close()
    if FINAL:
        print("all rounds done", flush=True)


if __name__ == "__main__":
    main()
