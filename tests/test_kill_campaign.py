"""Kill campaign: SIGKILL processes running mixed durable workloads (sequential,
concurrent, retries, sleeps, compensation) at random moments, many times.

The oracle is a file outside the store, appended (fsync) by every step,
compensation and on_failure just before it returns, plus a KILL line per kill.
After the kills, a final process completes every round; then the checks:

* every run ended as its workload says (completed with exact outputs, or failed
  after its compensations and on_failure), and its journal replays;
* 0 re-executions of acknowledged steps: nothing of a run runs again after a
  later step of that run ran;
* re-executions <= kills: per run, executions beyond one per function are at
  most the number of kills;
* failed attempts never exceed max_attempts; compensations never run for a
  completed run.

Knobs (env): DURO_CAMPAIGN_KILLS (default 1000 in CI; the long mode is e.g.
DURO_CAMPAIGN_KILLS=100000 DURO_CAMPAIGN_ROUNDS=1000), DURO_CAMPAIGN_SEED.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import duro

CHILD = Path(__file__).resolve().parent / "procs" / "campaign_child.py"
KILLS = int(os.environ.get("DURO_CAMPAIGN_KILLS", "1000"))
# Rounds are cheap to allow: the final process finishes only the rounds started.
ROUNDS = int(os.environ.get("DURO_CAMPAIGN_ROUNDS", str(max(100, KILLS * 50))))
SEED = int(os.environ.get("DURO_CAMPAIGN_SEED", str(random.SystemRandom().randrange(2**32))))
SEQ_STEPS, CONC_RUNS = 20, 8


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _expected_runs(rounds: int) -> Dict[str, str]:
    runs = {}
    for r in range(rounds):
        runs[f"r{r}-seq"] = "seq"
        for k in range(CONC_RUNS):
            runs[f"r{r}-conc{k}"] = "conc"
        runs[f"r{r}-retry"] = "retry"
        runs[f"r{r}-sleepy"] = "sleepy"
        runs[f"r{r}-saga"] = "saga"
    return runs


def test_kill_campaign(tmp_path: Path) -> None:
    store, oracle = tmp_path / "store", tmp_path / "oracle.log"
    rng = random.Random(SEED)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    kills = idle = 0
    started = time.monotonic()
    while kills < KILLS:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(store), str(oracle), str(ROUNDS)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            # Half the kills early (start-up and recovery), half later (steps in flight).
            delay = rng.uniform(0.05, 0.15) if rng.random() < 0.5 else rng.uniform(0.15, 0.6)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                _append(oracle, f"KILL,{kills}")
                continue
            # It finished every round before the kill: nothing left to interrupt.
            assert proc.returncode == 0, proc.stderr.read().decode(errors="replace")[-4000:] if proc.stderr else ""
            idle += 1
            break
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()
    final = subprocess.run(
        [sys.executable, str(CHILD), str(store), str(oracle), str(ROUNDS), "--final"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert final.returncode == 0, final.stderr[-4000:]

    # -- the oracle ------------------------------------------------------------------------------
    executions: Dict[str, List[Tuple[str, str, int, int]]] = defaultdict(list)
    for line in oracle.read_text().splitlines():
        if line.startswith("KILL"):
            continue
        run_id, name, kind, attempt, pid = line.split(",")
        executions[run_id].append((name, kind, int(attempt), int(pid)))

    rounds = len({line.split(":")[1] for line in (tmp_path / "oracle.log.rounds").read_text().split() if line.startswith("start:")})
    expected = _expected_runs(rounds)
    violations: List[str] = []
    reexecutions = 0
    with duro.Engine(str(store)) as engine:
        for run_id, workload in expected.items():
            result = engine.handle(run_id).result(timeout=60)
            calls = executions[run_id]
            order = {
                "seq": [f"s{i}" for i in range(SEQ_STEPS)],
                "conc": [f"s{i}" for i in range(6)],
                "retry": ["flaky"],
                "sleepy": ["s0", "s1"],
                "saga": ["a", "b", "c", "b!", "a!", "on_failure"],
            }[workload]
            names = [n + ("!" if kind == "compensation" else "") for n, kind, _, _ in calls]
            # Nothing runs again once a later function of the run ran.
            last = -1
            for name in names:
                position = order.index(name)
                if position < last:
                    violations.append(f"{run_id}: {name} ran again after a later step ({names})")
                last = max(last, position)
            distinct = len(set(names))
            reexecutions += len(names) - distinct
            if len(names) - distinct > kills:
                violations.append(f"{run_id}: {len(names) - distinct} re-executions for {kills} kills")
            if workload == "saga":
                if result.status != "failed" or result.error is None or result.error.failed_step != "c":
                    violations.append(f"{run_id}: expected failed at c, got {result.status} {result.error}")
                elif set(names) != set(order):
                    violations.append(f"{run_id}: compensations/on_failure missing: {names}")
            else:
                if not result.ok:
                    violations.append(f"{run_id}: {result.status} {result.error}")
                    continue
                value = result.value or {}
                if workload == "retry":
                    failures = [e for e in engine.handle(run_id).journal() if e.name == "flaky"]
                    if value.get("flaky") != "ok" or failures[0].attempt < 1:
                        violations.append(f"{run_id}: {value}")
                else:
                    for name in order:
                        i = int(name[1:])
                        if value.get(name) != {"i": i, "sq": i * i}:
                            violations.append(f"{run_id}: wrong output of {name}: {value.get(name)}")
                if any(kind == "compensation" for _, kind, _, _ in calls):
                    violations.append(f"{run_id}: a completed run was compensated")
    elapsed = time.monotonic() - started
    print(
        f"kill campaign (seed {SEED}): {kills} kills, {len(expected)} runs in {rounds} rounds, "
        f"{sum(len(v) for v in executions.values())} executions, {reexecutions} re-executions, "
        f"{len(violations)} violations, {elapsed:.0f} s"
    )
    assert not violations, "\n".join(violations[:20])
    assert kills >= KILLS, f"only {kills} kills landed before the work ran out; raise DURO_CAMPAIGN_ROUNDS"
