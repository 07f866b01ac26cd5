"""Kill campaign: SIGKILL processes running mixed durable workloads (sequential,
concurrent, retries, sleeps, compensation) at random moments, many times.

The oracle is a file outside the store (see tests/procs/campaign_child.py): every
step, compensation and on_failure appends a BEGIN line before its body and an
END line (``ok`` or ``raised``) after it; a DONE line follows each ``result()``
that returned; the parent appends a KILL line naming the process (its *life*)
after each kill. After the kills, a final process completes every round. An
execution is *acknowledged in its life* once that process went on: the next
function of its run began (the engine hands it out only after the previous
result is durable), or the run's ``result()`` returned. A kill *landed inside
an open step* of a run when that run had an execution the killed process had
not seen acknowledged: inside the body (BEGIN without END) or after it (END
written, checkpoint not yet seen durable). Checks:

* every run ended as its workload says (completed with exact outputs, or failed
  after its compensations and on_failure), every function ran, and its journal
  replays;
* 0 re-executions of acknowledged steps: nothing of a run begins after a later
  function of that run began, nor after the run's result was acknowledged (a
  DONE line: this covers the last step); the output the store kept for every
  function is the one its last execution returned (an execution after the one
  whose result was committed would be a re-execution of an acknowledged step);
* no function raises but the two that do by design (a step that raised, e.g.
  because ``prev`` lacked an output, is reported with its error type);
* re-executions <= kills that landed inside an open step: an execution of a
  function that ran before is a *retry* when the previous one raised and the
  policy retries it (not counted), else a *re-execution*, which
  must follow an execution that was open when its process was killed (so
  per run, re-executions <= kills that landed inside an open step of that run);
* attempts grow with every execution of a function; a flaky step fails at most
  twice (max_attempts 3); compensations never run for a completed run.

Knobs (env): DURO_CAMPAIGN_KILLS (default 1000 in CI, about 4-5 minutes),
DURO_CAMPAIGN_SEED, DURO_CAMPAIGN_ROUNDS (default 50 per kill, so the work never
runs out). The oracle is analysed in memory (about 250 MB per 1,000 kills), so
the long mode repeats the campaign with new seeds rather than running one huge one:

    for seed in $(seq 1 100); do DURO_CAMPAIGN_SEED=$seed DURO_CAMPAIGN_KILLS=2000 \
        .venv/bin/python -m pytest -q -s tests/test_kill_campaign.py::test_kill_campaign || break; done
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

import pytest

import duro
from support import report_campaign

CHILD = Path(__file__).resolve().parent / "procs" / "campaign_child.py"
KILLS = int(os.environ.get("DURO_CAMPAIGN_KILLS", "1000"))
# Rounds are cheap to allow: the final process finishes only the rounds started.
ROUNDS = int(os.environ.get("DURO_CAMPAIGN_ROUNDS", str(max(100, KILLS * 50))))
SEED = int(os.environ.get("DURO_CAMPAIGN_SEED", str(random.SystemRandom().randrange(2**32))))
SEQ_STEPS, CONC_RUNS = 20, 8

#: Functions of each workload, in the order they run ("x!" is the compensation of x).
ORDER = {
    "seq": [f"s{i}" for i in range(SEQ_STEPS)],
    "conc": [f"s{i}" for i in range(6)],
    "retry": ["flaky"],
    "sleepy": ["s0", "s1"],
    "saga": ["a", "b", "c", "b!", "a!", "on_failure"],
}
#: The only functions that raise, by design, and what they raise.
RAISES = {("retry", "flaky"): "ConnectionError", ("saga", "c"): "NonRetryableError"}
#: Functions whose failure is not retried (a run after it raised is a re-execution, not a retry).
NOT_RETRIED = {("saga", "c")}


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_kill(path: Path, line: str) -> None:
    """Appends the KILL line after a killed child's last oracle line. A SIGKILL can cut that
    line short (a write that crosses a page boundary of the file stops there): then the
    fragment is ended and marked, so the analysis skips it (a BEGIN cut short means the body
    never ran; an END cut short leaves the step open, as it was)."""
    torn = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    _append(path, ("\nTORN\n" if torn else "") + line)


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


def _workload(run_id: str) -> str:
    kind = run_id.split("-", 1)[1]
    return "conc" if kind.startswith("conc") else kind


# -- the oracle ------------------------------------------------------------------------------------


@dataclass
class Execution:
    run: str
    fn: str  # "s3", "b!" (compensation of b), "on_failure"
    attempt: int
    life: int
    line: int
    outcome: Optional[str] = None  # "ok", "raised", or None: no END (killed in the body)
    acked: bool = False  # its process saw it acknowledged (went on with the run)
    open_at_kill: Optional[str] = None  # "body" or "after body": open when its process was killed

    @property
    def token(self) -> str:
        return f"{self.life}.{self.attempt}"

    def __str__(self) -> str:
        return f"{self.fn} (life {self.life}, attempt {self.attempt}, oracle line {self.line})"


@dataclass
class Analysis:
    executions: Dict[Tuple[str, str], List[Execution]] = field(default_factory=lambda: defaultdict(list))
    kills: int = 0
    torn: int = 0  # oracle lines a kill cut short (skipped)
    kills_in_body: int = 0  # some step body was running (BEGIN without END)
    kills_after_body: int = 0  # no body running, but a step's checkpoint not yet seen durable
    open_by_run: Dict[str, int] = field(default_factory=lambda: defaultdict(int))  # kills with a step of the run open
    done: Set[str] = field(default_factory=set)  # runs whose result() returned
    retries: int = 0
    reexecutions: int = 0
    reexec_by_run: Dict[str, int] = field(default_factory=lambda: defaultdict(int))
    violations: List[str] = field(default_factory=list)

    @property
    def total_executions(self) -> int:
        return sum(len(v) for v in self.executions.values())

    def last(self, run: str, fn: str) -> Optional[Execution]:
        execs = self.executions.get((run, fn))
        return execs[-1] if execs else None


def analyse(lines: Iterable[str]) -> Analysis:
    """Replays the oracle file: which executions were open at each kill, which runs of a
    function are retries or re-executions, and every rule about them that can be judged
    from the oracle alone (the journal is checked by the test)."""
    a = Analysis()
    v = a.violations
    lines = list(lines)
    # A fragment the parent marked as cut short by the kill (see _append_kill).
    marked = {i - 1 for i, line in enumerate(lines) if line == "TORN"}
    a.torn = len(marked)
    lines = [line if i not in marked else "TORN" for i, line in enumerate(lines)]
    current: Dict[int, Dict[str, Execution]] = defaultdict(dict)  # life -> run -> its latest execution
    position: Dict[str, Tuple[int, str]] = {}  # run -> (furthest position in ORDER, its function)
    for number, line in enumerate(lines, 1):
        fields = line.split(",")
        tag = fields[0]
        if tag == "TORN":
            continue
        if tag == "KILL" and len(fields) == 3:
            a.kills += 1
            life = int(fields[2])
            open_now = [e for e in current.pop(life, {}).values() if not e.acked]
            for e in open_now:
                e.open_at_kill = "body" if e.outcome is None else "after body"
                a.open_by_run[e.run] += 1
            if any(e.open_at_kill == "body" for e in open_now):
                a.kills_in_body += 1
            elif open_now:
                a.kills_after_body += 1
        elif tag == "B" and len(fields) == 6:
            run, name, kind, attempt, life = fields[1], fields[2], fields[3], int(fields[4]), int(fields[5])
            fn = name + "!" if kind == "compensation" else name
            if run in a.done:
                v.append(f"{run}: {fn} began (life {life}, line {number}) after the run's result was acknowledged")
            order = ORDER[_workload(run)]
            if fn not in order:
                v.append(f"{run}: unknown function {fn} (line {number})")
                continue
            furthest = position.get(run, (-1, ""))
            if order.index(fn) < furthest[0]:
                v.append(f"{run}: {fn} began (life {life}, line {number}) after a later function, {furthest[1]}, had begun")
            position[run] = max(furthest, (order.index(fn), fn))
            previous_here = current[life].get(run)
            if previous_here is not None:
                previous_here.acked = True  # the engine handed out the next work: its result is durable
            e = Execution(run, fn, attempt, life, number)
            same = a.executions[(run, fn)]
            if same:
                before = same[-1]
                if attempt <= before.attempt:
                    v.append(f"{run}: {e} does not have a higher attempt than {before}")
                if before.outcome == "raised" and (_workload(run), fn) not in NOT_RETRIED:
                    a.retries += 1
                else:
                    a.reexecutions += 1
                    a.reexec_by_run[run] += 1
                    if before.life == life:
                        v.append(f"{run}: {fn} ran again in the same process: {before}, then {e}")
                    elif before.open_at_kill is None:
                        why = "it was acknowledged in its process" if before.acked else "its process was not killed while it ran"
                        v.append(f"{run}: re-execution of an acknowledged step: {e} after {before} ({why})")
            same.append(e)
            current[life][run] = e
        elif tag == "E" and len(fields) in (7, 8):
            run, name, kind, attempt, life, outcome = fields[1], fields[2], fields[3], int(fields[4]), int(fields[5]), fields[6]
            fn = name + "!" if kind == "compensation" else name
            ended = current[life].get(run)
            if ended is None or (ended.fn, ended.attempt, ended.outcome) != (fn, attempt, None) or outcome not in ("ok", "raised"):
                v.append(f"{run}: END of {fn} attempt {attempt} (life {life}, line {number}) without its BEGIN")
                continue
            ended.outcome = outcome
            error = fields[7] if len(fields) == 8 else ""
            if outcome == "raised" and RAISES.get((_workload(run), fn)) != error:
                v.append(f"{run}: {ended} raised {error} (only flaky and c raise, by design)")
        elif tag == "D" and len(fields) == 4:
            run, life = fields[1], int(fields[3])
            a.done.add(run)
            latest = current[life].get(run)
            if latest is not None:
                latest.acked = True
        else:
            v.append(f"malformed oracle line {number}: {line!r}")
    for run, count in a.reexec_by_run.items():
        if count > a.open_by_run[run]:
            v.append(f"{run}: {count} re-executions, but only {a.open_by_run[run]} kills landed inside an open step of it")
    return a


# -- the campaign ----------------------------------------------------------------------------------


def test_kill_campaign(tmp_path: Path) -> None:
    store, oracle = tmp_path / "store", tmp_path / "oracle.log"
    rng = random.Random(SEED)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    kills = life = 0
    started = time.monotonic()
    while kills < KILLS:
        life += 1
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(store), str(oracle), str(ROUNDS), str(life)],
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
                _append_kill(oracle, f"KILL,{kills},{life}")
                continue
            # It finished every round before the kill: nothing left to interrupt.
            assert proc.returncode == 0, proc.stderr.read().decode(errors="replace")[-4000:] if proc.stderr else ""
            break
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()
    life += 1
    final = subprocess.run(
        [sys.executable, str(CHILD), str(store), str(oracle), str(ROUNDS), str(life), "--final"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert final.returncode == 0, final.stderr[-4000:]

    a = analyse(oracle.read_text().splitlines())
    violations = list(a.violations)
    rounds = len({line.split(":")[1] for line in (tmp_path / "oracle.log.rounds").read_text().split() if line.startswith("start:")})
    expected = _expected_runs(rounds)
    unexpected = {run for run, _ in a.executions} - set(expected)
    if unexpected:
        violations.append(f"functions ran for runs never started: {sorted(unexpected)[:5]}")
    with duro.Engine(str(store)) as engine:
        for run_id, workload in expected.items():
            handle = engine.handle(run_id)
            result = handle.result(timeout=60)
            order = ORDER[workload]
            ran = [fn for fn in order if a.executions.get((run_id, fn))]
            # The output the store kept is the last execution's (see the module docstring).
            for entry in handle.journal():
                if entry.kind not in ("step", "compensation", "on_failure"):
                    continue
                fn = entry.name + "!" if entry.kind == "compensation" else entry.name
                last = a.last(run_id, fn)
                if last is None:
                    violations.append(f"{run_id}: the journal has {fn} ({entry.status}), which never ran")
                elif entry.status == "completed":
                    by = entry.output.get("by") if isinstance(entry.output, dict) else None
                    if last.outcome != "ok" or by != last.token:
                        violations.append(
                            f"{run_id}: the journal kept the output of {fn} from execution {by}, "
                            f"but its last execution is {last} ({last.outcome}): it ran after its result was committed"
                        )
                elif entry.status == "failed" and (last.outcome != "raised" or entry.attempt != last.attempt):
                    violations.append(f"{run_id}: {fn} failed at attempt {entry.attempt}, but its last execution is {last}")
            if workload == "saga":
                if result.status != "failed" or result.error is None or result.error.failed_step != "c":
                    violations.append(f"{run_id}: expected failed at c, got {result.status} {result.error}")
                elif ran != order:
                    violations.append(f"{run_id}: compensations/on_failure missing: ran {ran}")
                continue
            if not result.ok:
                violations.append(f"{run_id}: {result.status} {result.error}")
                continue
            if ran != order:
                violations.append(f"{run_id}: completed, but only {ran} ran")
            if any(fn.endswith("!") for fn in ran):
                violations.append(f"{run_id}: a completed run was compensated")
            value = result.value or {}
            if workload == "retry":
                raised = sum(1 for e in a.executions[(run_id, "flaky")] if e.outcome == "raised")
                if (value.get("flaky") or {}).get("ok") is not True or raised > 2:
                    violations.append(f"{run_id}: {value}, {raised} failed attempts (max_attempts 3)")
            else:
                for name in order:
                    i = int(name[1:])
                    out = value.get(name) or {}
                    if (out.get("i"), out.get("sq")) != (i, i * i):
                        violations.append(f"{run_id}: wrong output of {name}: {value.get(name)}")
    elapsed = time.monotonic() - started
    open_pairs = sum(a.open_by_run.values())
    report_campaign(
        f"kills         kill campaign [seq, conc, retry, sleepy, saga] (seed {SEED}): {a.kills} kills "
        f"({a.kills_in_body} inside a step body, {a.kills_after_body} after a body before its checkpoint was seen "
        f"durable, {a.kills - a.kills_in_body - a.kills_after_body} with no step open); {len(expected)} runs in "
        f"{rounds} rounds; {a.total_executions} executions, {a.retries} retries, {a.reexecutions} re-executions "
        f"<= {open_pairs} (kill, run) pairs with a step open; {a.torn} oracle lines cut by a kill; "
        f"{elapsed:.0f} s; violations {len(violations)}"
    )
    assert not violations, "\n".join(violations[:20])
    assert kills >= KILLS, f"only {kills} kills landed before the work ran out; raise DURO_CAMPAIGN_ROUNDS"


# -- the oracle's rules, on made-up histories ------------------------------------------------------


def _history(*lines: str) -> List[str]:
    return [line.replace(" ", "") for line in lines]


def test_the_oracle_allows_what_a_kill_explains() -> None:
    a = analyse(_history(
        "B, r0-seq, s0, step, 1, 1", "E, r0-seq, s0, step, 1, 1, ok", "B, r0-seq, s1, step, 1, 1",
        "KILL, 1, 1",  # inside the body of s1
        "B, r0-seq, s1, step, 2, 2", "E, r0-seq, s1, step, 2, 2, ok",
        "KILL, 2, 2",  # after the body of s1, before s2 began: s1 may run again
        "B, r0-seq, s1, step, 3, 3", "E, r0-seq, s1, step, 3, 3, ok", "B, r0-seq, s2, step, 1, 3",
        "B, r0-retry, flaky, step, 1, 3", "E, r0-retry, flaky, step, 1, 3, raised, ConnectionError",
        "B, r0-retry, flaky, step, 2, 3", "E, r0-retry, flaky, step, 2, 3, raised, ConnectionError",
        "KILL, 3, 3",
        "B, r0-retry, flaky, step, 3, 4", "E, r0-retry, flaky, step, 3, 4, ok", "D, r0-retry, completed, 4",
    ))
    assert a.violations == []
    assert (a.kills, a.kills_in_body, a.kills_after_body) == (3, 2, 1)
    assert (a.reexecutions, a.retries) == (2, 2)


def test_the_oracle_catches_re_executions_of_acknowledged_steps() -> None:
    # The last step of a run ran again after the run's result was acknowledged.
    a = analyse(_history(
        "B, r0-sleepy, s1, step, 1, 1", "E, r0-sleepy, s1, step, 1, 1, ok", "D, r0-sleepy, completed, 1",
        "KILL, 1, 1", "B, r0-sleepy, s1, step, 2, 2",
    ))
    assert any("after the run's result was acknowledged" in v for v in a.violations), a.violations
    assert any("re-execution of an acknowledged step" in v for v in a.violations), a.violations
    # A step ran again in a process that was not killed; one ran again after a later one began.
    a = analyse(_history(
        "B, r0-conc1, s0, step, 1, 1", "E, r0-conc1, s0, step, 1, 1, ok", "B, r0-conc1, s0, step, 2, 2",
        "B, r0-conc2, s0, step, 1, 2", "E, r0-conc2, s0, step, 1, 2, ok", "B, r0-conc2, s1, step, 1, 2",
        "KILL, 1, 2", "B, r0-conc2, s0, step, 2, 3",
    ))
    assert any("its process was not killed" in v for v in a.violations), a.violations
    assert any("after a later function, s1, had begun" in v for v in a.violations), a.violations
    # A non-retryable failure run again with no kill, and an attempt number reused.
    a = analyse(_history(
        "B, r0-saga, c, step, 1, 1", "E, r0-saga, c, step, 1, 1, raised, NonRetryableError", "B, r0-saga, c, step, 1, 1",
    ))
    assert any("same process" in v for v in a.violations), a.violations
    assert any("higher attempt" in v for v in a.violations), a.violations
    # A step that raised although it never does by design (then its retry is no re-execution).
    a = analyse(_history(
        "B, r0-conc1, s3, step, 1, 1", "E, r0-conc1, s3, step, 1, 1, raised, KeyError", "B, r0-conc1, s3, step, 2, 1",
    ))
    assert len(a.violations) == 1 and "raised KeyError" in a.violations[0], a.violations
    assert (a.retries, a.reexecutions) == (1, 0)


def test_the_oracle_skips_lines_a_kill_cut_short() -> None:
    a = analyse(_history(
        "B, r0-seq, s0, step, 1, 1", "E, r0-seq, s0, step, 1, 1, ok", "B, r0-seq, s1, step, 1, 1", "E, r0-se", "TORN",
        "KILL, 1, 1",  # s1's END was cut short: s1 was still open
        "B, r0-seq, s1, step, 2, 2", "E, r0-seq, s1, step, 2, 2, ok", "B, r0-se", "TORN",
        "KILL, 2, 2",  # a BEGIN cut short: that body never ran, s1 was still open
        "B, r0-seq, s1, step, 3, 3", "E, r0-seq, s1, step, 3, 3, ok", "B, r0-seq, s2, step, 1, 3",
    ))
    assert a.violations == []
    assert (a.torn, a.kills, a.kills_in_body, a.kills_after_body, a.reexecutions) == (2, 2, 1, 1, 2)
    # Unmarked garbage is still a violation.
    assert analyse(["E,r0-se", "KILL,1,1"]).violations == ["malformed oracle line 1: 'E,r0-se'"]


# -- a bug the campaign found (fixed) ------------------------------------------------------------


def test_the_next_step_sees_the_output_even_when_the_worker_that_committed_it_is_slow(
    monkeypatch: pytest.MonkeyPatch, memory_engine: duro.Engine, name: str
) -> None:
    """Found by the kill campaign (a conc step raised KeyError 's2' in a process that was
    never killed, under load): Runner.commit reported the result to the engine before it
    put the output in ``prev``, so another worker could take the next step in between.
    Repro: the worker that ran s0 is slow to record its output (a sleep stands for a
    descheduled thread)."""
    from duro import _runner

    put = _runner.Outputs._put

    def slow_put(self: "_runner.Outputs", step: str, raw: bytes) -> None:
        time.sleep(0.2)
        put(self, step, raw)

    monkeypatch.setattr(_runner.Outputs, "_put", slow_put)
    flow = (
        duro.workflow(name, retry=duro.Retry(max_attempts=1))
        .step("s0", lambda i: 1)
        .step("s1", lambda i, prev: prev["s0"] + 1)
    )
    result = flow.run(None, engine=memory_engine).result(timeout=30)
    assert result.ok and result.value == {"s0": 1, "s1": 2}, result.error
