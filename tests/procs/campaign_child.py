"""Child of tests/test_kill_campaign.py: runs mixed durable workloads, round
after round, until it is killed (or, with --final, until every round is done).

Workloads per round (fixed run ids, so a restarted child resumes them):
  seq     one run of SEQ_STEPS sequential steps
  conc    CONC_RUNS runs of 6 steps each, concurrently (shared group commits)
  retry   a step that fails its first two attempts, then succeeds
  sleepy  step, durable sleep of 30 ms, step
  saga    two compensated steps, then a step that fails for good: compensations
          run in reverse, then on_failure
Every function appends "run,name,kind,attempt,pid" to the oracle file (fsync)
just before it returns, and checks that it sees its predecessors' outputs.

argv: STORE ORACLE ROUNDS [--final]
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, List

import duro

STORE, ORACLE, ROUNDS = sys.argv[1], sys.argv[2], int(sys.argv[3])
FINAL = "--final" in sys.argv
SEQ_STEPS = 20
CONC_RUNS = 8
logging.basicConfig(level=logging.ERROR, stream=sys.stderr)


def record(ctx: Any, name: str, kind: str) -> None:
    fd = os.open(ORACLE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.run_id},{name},{kind},{ctx.attempt},{os.getpid()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def numbered(i: int) -> Any:
    def step(inp: Any, prev: Any, ctx: duro.StepContext) -> dict:
        for j in range(i):
            assert prev[f"s{j}"] == {"i": j, "sq": j * j}, f"step s{i} sees a wrong output of s{j}"
        record(ctx, ctx.step_name, "step")
        return {"i": i, "sq": i * i}

    return step


def flaky(inp: Any, prev: Any, ctx: duro.StepContext) -> str:
    record(ctx, ctx.step_name, "step")
    if ctx.attempt <= 2 and not os.environ.get("NEVER"):
        # Fails its first two starts (a crash may take one of them: then it fails once).
        raise ConnectionError(f"attempt {ctx.attempt} fails")
    return "ok"


def undo(name: str) -> Any:
    def compensate(inp: Any, output: Any, ctx: duro.StepContext) -> str:
        assert output == {"did": name}
        record(ctx, name, "compensation")
        return f"undid {name}"

    return compensate


def did(name: str) -> Any:
    def step(inp: Any, prev: Any, ctx: duro.StepContext) -> dict:
        record(ctx, name, "step")
        return {"did": name}

    return step


def fail_for_good(inp: Any, prev: Any, ctx: duro.StepContext) -> None:
    record(ctx, "c", "step")
    raise duro.NonRetryableError("c cannot succeed")


def on_failure(ctx: duro.FailureContext) -> None:
    assert ctx.failed_step == "c" and ctx.completed_steps == ["a", "b"]

    class _C:
        run_id, attempt = ctx.run_id, ctx.attempt

    record(_C, "on_failure", "on_failure")


RETRY = duro.Retry(max_attempts=3, initial_delay="5ms", jitter=0.0)
seq = duro.workflow("camp-seq", retry=RETRY)
for i in range(SEQ_STEPS):
    seq = seq.step(f"s{i}", numbered(i))
conc = duro.workflow("camp-conc", retry=RETRY)
for i in range(6):
    conc = conc.step(f"s{i}", numbered(i))
retry = duro.workflow("camp-retry", retry=RETRY).step("flaky", flaky)
sleepy = duro.workflow("camp-sleepy", retry=RETRY).step("s0", numbered(0)).sleep("nap", "30ms").step("s1", numbered(1))
saga = (
    duro.workflow("camp-saga", retry=RETRY)
    .step("a", did("a"), compensate=undo("a"))
    .step("b", did("b"), compensate=undo("b"))
    .step("c", fail_for_good)
    .on_failure(on_failure)
)


PROGRESS = ORACLE + ".rounds"


def progress() -> tuple:
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
            h.result(timeout=120)
        note(f"done:{r}")
    if FINAL:
        engine.close()
        print("all rounds done", flush=True)
    else:
        engine.close()


if __name__ == "__main__":
    main()
