"""Child process of tests/test_crash_kill.py: runs rounds of a many-step workflow until killed.

    python kill_loop_child.py --store DIR --effects FILE --marker FILE --report FILE
                              [--steps 40] [--runs 4] [--final]

The workflow is defined before the engine opens, so unfinished runs resume at
open. Rounds are ``r000``, ``r001``, ...: each round starts ``--runs`` runs
with fixed ids (``flow.run(..., run_id=...)`` returns an existing run) and
waits for all of them, so several runs share each group commit. Without
``--final`` the child goes on with new rounds until the parent SIGKILLs it;
with ``--final`` it completes the rounds that exist in the store and writes
``--report``.

Every step does 0-5 ms of work, appends ``run_id,step,attempt,pid`` to the
effects file (one write + fsync) and returns ``{"i": i, "sq": i*i}``. It also
checks that the outputs of all earlier steps it is given are exactly the
expected ones; a mismatch fails the run (no retry), which the parent sees.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any, Dict, List

import _procutil as pu

pu.setup_logging()

import duro  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--store", required=True)
parser.add_argument("--effects", required=True)
parser.add_argument("--marker", required=True)
parser.add_argument("--report", required=True)
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--runs", type=int, default=4)
parser.add_argument("--final", action="store_true")
ARGS = parser.parse_args()

PID = os.getpid()
RNG = random.Random(PID ^ int(time.time() * 1e6))


def expected(i: int) -> Dict[str, int]:
    return {"i": i, "sq": i * i}


def make_step(i: int) -> Any:
    def step(inp: Any, prev: Any, ctx: duro.StepContext) -> Dict[str, int]:
        got = {name: prev[name] for name in prev}
        want = {f"s{k}": expected(k) for k in range(i)}
        if got != want:
            raise duro.NonRetryableError(f"step s{i} of {ctx.run_id} got wrong earlier outputs: {got!r}")
        time.sleep(RNG.uniform(0.0, 0.005))
        pu.append_line(ARGS.effects, f"{ctx.run_id},{i},{ctx.attempt},{PID}")
        return expected(i)

    step.__name__ = f"s{i}"
    return step


def build() -> duro.Workflow:
    flow = duro.workflow("kill-loop", retry=duro.Retry(max_attempts=3, initial_delay="10ms", jitter=0.0))
    for i in range(ARGS.steps):
        flow = flow.step(f"s{i}", make_step(i))
    return flow


def round_ids(r: int) -> List[str]:
    return [f"r{r:03d}-{j}" for j in range(ARGS.runs)]


def main() -> int:
    flow = build()
    # The parent's random delay before the kill counts from here (interpreter start-up excluded).
    with open(ARGS.marker, "w") as f:
        f.write(str(PID))
    engine = duro.Engine(ARGS.store)
    results: Dict[str, Any] = {}
    r = 0
    while True:
        ids = round_ids(r)
        if ARGS.final:
            existing = []
            for rid in ids:
                try:
                    engine.handle(rid)
                    existing.append(rid)
                except duro.RunNotFound:
                    pass
            if not existing:
                break
        handles = [flow.run({"round": r, "j": j}, engine=engine, run_id=rid) for j, rid in enumerate(ids)]
        for h in handles:
            res = h.result(timeout=120)
            if not res.ok:
                print(f"run {h.run_id} ended {res.status}: {res.error}", file=sys.stderr)
            if ARGS.final:
                results[h.run_id] = pu.result_dump(res)
        r += 1
    pu.write_json(ARGS.report, {"pid": PID, "rounds": r, "runs": results})
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
