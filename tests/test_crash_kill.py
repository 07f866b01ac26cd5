"""The kill loop: SIGKILL a process running many durable steps, at random moments, many times.

tests/procs/kill_loop_child.py runs rounds of 4 concurrent runs of a 40-step
workflow (fixed run ids, so each restart resumes the same runs and then starts
new rounds). The parent kills it 5-150 ms after it announces it is opening the
engine (so kills land in recovery as well as in steps), restarts it, and after
``DURO_KILLS`` kills (default 50) lets a final child complete every run.

The oracle is the side-effect file the steps append to (fsync) before they
return, plus a ``KILL`` line the parent appends after each kill (the child is
dead then, so the file is quiet). Checks:

* every run completed and its result holds every step's exact output;
* 0 re-executions of acknowledged steps: step i of a run never runs after step
  i+1 (or later) of that run ran;
* a step never runs twice in one process lifetime; per run, each kill causes at
  most one re-execution, hence executions - steps <= kills per run.

Knobs (env): DURO_KILLS, DURO_KILL_SEED, DURO_KILL_STEPS, DURO_KILL_RUNS.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from support import report_campaign

CHILD = Path(__file__).resolve().parent / "procs" / "kill_loop_child.py"
KILLS = int(os.environ.get("DURO_KILLS", "50"))
SEED = int(os.environ.get("DURO_KILL_SEED", str(random.SystemRandom().randrange(2**32))))
STEPS = int(os.environ.get("DURO_KILL_STEPS", "40"))
RUNS = int(os.environ.get("DURO_KILL_RUNS", "4"))
MIN_DELAY, MAX_DELAY = 0.005, 0.150


def append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def append_kill(path: Path, line: str) -> None:
    """Appends a KILL line after the killed child's last effect line. A SIGKILL can cut that
    line short (a write that crosses a page boundary of the file stops there): the fragment
    is then ended and marked ``TORN``, and the parser skips it (the step had not returned)."""
    torn = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    append_line(path, ("\nTORN\n" if torn else "") + line)


def tail(path: Path, n: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "<no log>"


def test_random_sigkills_lose_no_step_and_rerun_no_acknowledged_step(tmp_path: Path) -> None:
    store = tmp_path / "store"
    effects = tmp_path / "effects.log"
    marker = tmp_path / "opening"
    report_path = tmp_path / "report.json"
    log_path = tmp_path / "children.log"
    rng = random.Random(SEED)
    print(f"\nkill loop: seed={SEED} kills={KILLS} steps={STEPS} runs/round={RUNS} (DURO_KILL_SEED={SEED} to replay)")

    def command(final: bool) -> List[str]:
        cmd = [
            sys.executable, str(CHILD), "--store", str(store), "--effects", str(effects), "--marker", str(marker),
            "--report", str(report_path), "--steps", str(STEPS), "--runs", str(RUNS),
        ]
        return cmd + (["--final"] if final else [])

    procs: List[subprocess.Popen] = []

    def spawn(final: bool) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            log.write(f"--- child {len(procs)} final={final}\n".encode())
            log.flush()
            proc = subprocess.Popen(command(final), stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
        procs.append(proc)
        return proc

    began = time.monotonic()
    delays: List[float] = []
    try:
        for k in range(KILLS):
            if marker.exists():
                marker.unlink()
            proc = spawn(final=False)
            deadline = time.monotonic() + 60
            while not marker.exists():
                if proc.poll() is not None:
                    pytest.fail(f"child {k} exited with {proc.returncode} before opening the engine:\n{tail(log_path)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"child {k} did not get to open the engine within 60 s:\n{tail(log_path)}")
                time.sleep(0.001)
            delay = rng.uniform(MIN_DELAY, MAX_DELAY)
            delays.append(delay)
            time.sleep(delay)
            if proc.poll() is not None:
                pytest.fail(f"child {k} exited with {proc.returncode} on its own:\n{tail(log_path)}")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            append_kill(effects, f"KILL,{k},{proc.pid}")
        loop_seconds = time.monotonic() - began

        final = spawn(final=True)
        try:
            final.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the final child did not finish within 180 s:\n{tail(log_path)}")
        assert final.returncode == 0, f"final child exited with {final.returncode}:\n{tail(log_path)}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    report = json.loads(report_path.read_text())
    results: Dict[str, dict] = report["runs"]

    # -- parse the oracle -----------------------------------------------------------------------
    # Per run: executions as (step, attempt, pid, epoch); epoch = kills before the line.
    executions: Dict[str, List[Tuple[int, int, int, int]]] = defaultdict(list)
    epoch = 0
    malformed: List[str] = []
    kill_lines = torn = 0
    lines = effects.read_text().splitlines()
    for i, line in enumerate(lines):
        if line == "TORN" or (i + 1 < len(lines) and lines[i + 1] == "TORN"):
            torn += line == "TORN"
            continue  # a line a kill cut short (see append_kill), and its marker
        fields = line.split(",")
        if fields[0] == "KILL" and len(fields) == 3:
            epoch += 1
            kill_lines += 1
            continue
        if len(fields) != 4:
            malformed.append(line)
            continue
        run_id, step, attempt, pid = fields
        executions[run_id].append((int(step), int(attempt), int(pid), epoch))
    assert malformed == [], f"torn or malformed side-effect lines: {malformed[:5]}"
    assert kill_lines == KILLS

    # -- checks -------------------------------------------------------------------------------
    problems: List[str] = []
    violations = 0  # an acknowledged step ran again
    same_process_reruns = 0
    over_budget_kills = 0  # a kill followed by more than one re-execution in a run
    total_execs = 0
    reexecutions = 0
    worst_run = (0, "")
    idle_kills = 0  # kills after which the next process had not written any effect yet

    assert set(executions) <= set(results), f"runs with side effects but no result: {set(executions) - set(results)}"
    assert results, "no run was started at all"
    for run_id, res in sorted(results.items()):
        if res["status"] != "completed":
            problems.append(f"{run_id}: {res['status']}: {res['error']}")
            continue
        want = {f"s{i}": {"i": i, "sq": i * i} for i in range(STEPS)}
        if res["value"] != want:
            wrong = {k: res["value"].get(k) for k in want if res["value"].get(k) != want[k]}
            problems.append(f"{run_id}: wrong outputs {wrong}")

        execs = executions.get(run_id, [])
        total_execs += len(execs)
        seen_steps = {e[0] for e in execs}
        if seen_steps != set(range(STEPS)):
            problems.append(f"{run_id}: steps without any execution: {sorted(set(range(STEPS)) - seen_steps)}")
        max_seen = -1
        per_step: Dict[int, List[Tuple[int, int, int, int]]] = defaultdict(list)
        reexec_epochs: Dict[int, int] = defaultdict(int)
        for e in execs:
            step, _attempt, pid, ep = e
            if step < max_seen:
                violations += 1
                problems.append(f"{run_id}: step s{step} ran (pid {pid}) after step s{max_seen} had run")
            max_seen = max(max_seen, step)
            earlier = per_step[step]
            if earlier:
                if any(prev_pid == pid for _, _, prev_pid, _ in earlier):
                    same_process_reruns += 1
                    problems.append(f"{run_id}: step s{step} ran twice in process {pid}")
                reexec_epochs[ep] += 1
            per_step[step].append(e)
        run_reexecs = len(execs) - len(per_step)
        reexecutions += run_reexecs
        worst_run = max(worst_run, (run_reexecs, run_id))
        for ep, count in reexec_epochs.items():
            if count > 1:
                over_budget_kills += 1
                problems.append(f"{run_id}: {count} re-executions after kill #{ep} (at most 1 per kill)")
        if run_reexecs > KILLS:
            problems.append(f"{run_id}: {len(execs)} executions of {STEPS} steps with only {KILLS} kills")

    epochs_with_effects = {e[3] for execs in executions.values() for e in execs}
    idle_kills = sum(1 for k in range(KILLS) if k not in epochs_with_effects)
    print(
        f"kill loop: kills={KILLS} (idle: {idle_kills} killed before writing any effect) "
        f"rounds={report['rounds']} runs={len(results)} steps/run={STEPS} "
        f"executions={total_execs} re-executions={reexecutions} (max per run {worst_run[0]}: {worst_run[1]}) "
        f"violations={violations} same-process-reruns={same_process_reruns} over-budget-kills={over_budget_kills} "
        f"loop={loop_seconds:.1f}s mean-delay={1000 * sum(delays) / max(1, len(delays)):.0f}ms"
    )
    report_campaign(
        f"kills         kill loop [{RUNS} runs × {STEPS} steps per round]: {KILLS} kills "
        f"({idle_kills} before their process ran a step), {len(results)} runs, {total_execs} executions, "
        f"{reexecutions} re-executions (at most 1 per kill per run), {torn} effect lines cut by a kill; "
        f"violations {len(problems)}"
    )
    assert not problems, "\n".join(problems[:40])
    assert violations == 0
    assert reexecutions <= KILLS * RUNS
