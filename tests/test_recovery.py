"""Each recovery promise of duro, proven across real processes killed with SIGKILL.

Every test drives tests/procs/recovery_child.py: a first child opens the store,
starts runs and is SIGKILLed at a chosen point (it tells us it got there by
writing a file); later children (one process holds the store at a time) recover
and report what they saw as JSON. Side effects are judged from effects.log,
which step functions append to (fsynced) BEFORE they return: lines
``name,attempt,pid,run_id,idempotency_key,unix_time``.

Timing assertions are lower bounds only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

CHILD = Path(__file__).resolve().parent / "procs" / "recovery_child.py"
START_TIMEOUT = 90.0  # seconds a child may take to reach its point (slow CI machines)
RUN_TIMEOUT = 120.0  # seconds a verifying child may take to finish
CLOCK_SLACK = 0.002  # the engine's clock is in whole milliseconds (floor)


class Lab:
    """Starts, watches and always reaps the children of one test."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = tmp_path / "store"
        self.work = tmp_path / "work"
        self.logs = tmp_path / "logs"
        self.work.mkdir()
        self.logs.mkdir()
        self.procs: List[subprocess.Popen] = []
        self.kills = 0

    # -- processes ---------------------------------------------------------------------------

    def spawn(self, scenario: str, role: str, *args: str) -> subprocess.Popen:
        stale = self.work / f"{role}.json"
        if stale.exists():
            stale.unlink()
        log = open(self.logs / f"{len(self.procs):02d}-{scenario}-{role}.log", "wb")
        cmd = [sys.executable, str(CHILD), scenario, role, "--store", str(self.store), "--work", str(self.work), *args]
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.work))
        finally:
            log.close()
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def log_of(self, proc: subprocess.Popen) -> str:
        try:
            text = Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
        except OSError:
            return "<no log>"
        return text[-6000:]

    def wait_report(self, proc: subprocess.Popen, role: str, timeout: float = START_TIMEOUT) -> Dict[str, Any]:
        """Waits until ``proc`` wrote ``<role>.json``; fails at once if it died first."""
        path = self.work / f"{role}.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if proc.poll() is not None:
                pytest.fail(f"child {role!r} exited with {proc.returncode} before reporting:\n{self.log_of(proc)}")
            if time.monotonic() > deadline:
                pytest.fail(f"child {role!r} did not report within {timeout}s:\n{self.log_of(proc)}")
            time.sleep(0.01)
        return json.loads(path.read_text())

    def kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            pytest.fail(f"child exited on its own ({proc.returncode}) before the kill:\n{self.log_of(proc)}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        self.kills += 1

    def start_and_kill(self, scenario: str, *args: str, role: str = "start") -> Dict[str, Any]:
        proc = self.spawn(scenario, role, *args)
        report = self.wait_report(proc, role)
        self.kill(proc)
        return report

    def run(self, scenario: str, role: str, *args: str, timeout: float = RUN_TIMEOUT) -> Dict[str, Any]:
        """Runs a child to its normal exit and returns its report."""
        proc = self.spawn(scenario, role, *args)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"child {role!r} did not exit within {timeout}s:\n{self.log_of(proc)}")
        if proc.returncode != 0:
            pytest.fail(f"child {role!r} exited with {proc.returncode}:\n{self.log_of(proc)}")
        path = self.work / f"{role}.json"
        assert path.exists(), f"child {role!r} exited 0 without a report:\n{self.log_of(proc)}"
        return json.loads(path.read_text())

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    # -- oracle ------------------------------------------------------------------------------

    def effects(self, run_id: Optional[str] = None, name: Optional[str] = None) -> List[Dict[str, Any]]:
        path = self.work / "effects.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            step, attempt, pid, rid, key, t = line.split(",")
            row = {"name": step, "attempt": int(attempt), "pid": int(pid), "run_id": rid, "key": key, "t": float(t)}
            if (run_id is None or rid == run_id) and (name is None or step == name):
                out.append(row)
        return out

    def names(self, run_id: str) -> List[str]:
        return [e["name"] for e in self.effects(run_id)]


@pytest.fixture
def lab(tmp_path: Path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.cleanup()


def entry(journal: List[Dict[str, Any]], name: str) -> Dict[str, Any]:
    found = [e for e in journal if e["name"] == name]
    assert len(found) == 1, f"journal has {len(found)} entries named {name!r}: {journal}"
    return found[0]


def stable(journal: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """What of a journal must never change without a process acting on the run."""
    keys = ("index", "name", "kind", "status", "attempt", "output", "error", "started_at", "completed_at")
    return [{k: e[k] for k in keys} for e in journal]


# -- 1 -----------------------------------------------------------------------------------------


def test_killed_run_resumes_without_rerunning_finished_steps(lab: Lab) -> None:
    start = lab.start_and_kill("kill", "--block", "s3")
    start_pid = start["pid"]
    # When s3 started, s1 and s2 were checkpointed ("durable before the next step starts").
    assert [(e["name"], e["status"]) for e in start["journal"][:2]] == [("s1", "completed"), ("s2", "completed")]

    finish = lab.run("kill", "finish")
    finish_pid = finish["pid"]
    result = finish["result"]
    assert result["status"] == "completed", result

    effects = lab.effects("r1")
    assert [(e["name"], e["pid"]) for e in effects] == [
        ("s1", start_pid),
        ("s2", start_pid),
        ("s3", start_pid),  # interrupted by the kill
        ("s3", finish_pid),  # at-least-once: runs again
        ("s4", finish_pid),
    ], effects
    s3_first, s3_again = lab.effects("r1", "s3")
    assert s3_again["key"] == s3_first["key"] == "r1:s3", "the re-run must see the same idempotency key"
    # Every step's start is durable before the step runs, so the crash counts as an attempt.
    assert (s3_first["attempt"], s3_again["attempt"]) == (1, 2)

    value = result["value"]
    # Outputs of the steps that finished before the kill are the checkpointed ones, not recomputed.
    assert value["s1"]["pid"] == start_pid and value["s2"]["pid"] == start_pid
    assert value["s1"] == entry(start["journal"], "s1")["output"]
    assert value["s2"] == entry(start["journal"], "s2")["output"]
    assert value["s3"]["pid"] == finish_pid and value["s3"]["key"] == "r1:s3"
    assert value["s4"]["pid"] == finish_pid
    assert [e["status"] for e in finish["journal"]] == ["completed"] * 4


# -- 2 -----------------------------------------------------------------------------------------


def test_sleep_wakes_at_its_original_time_after_a_crash(lab: Lab) -> None:
    start = lab.start_and_kill("sleep")
    assert start["meta"]["status"] == "sleeping"
    wake_at = start["meta"]["wake_at"]
    nap = entry(start["journal"], "nap")
    a_time = start["journal"][0]["output"]["t"]
    assert wake_at is not None and wake_at >= a_time + 2.0 - CLOCK_SLACK

    finish = lab.run("sleep", "finish")
    # Recovered in a new process, before the workflow was defined there: the same timer.
    assert finish["before"]["meta"]["status"] == "sleeping"
    assert finish["before"]["meta"]["wake_at"] == wake_at, "the timer must keep its original wake time"
    assert entry(finish["before"]["journal"], "nap")["started_at"] == nap["started_at"]

    result = finish["result"]
    assert result["status"] == "completed", result
    b_time = result["value"]["b"]["t"]
    assert b_time >= wake_at - CLOCK_SLACK, "woke before its time"
    assert b_time >= a_time + 2.0 - CLOCK_SLACK
    nap_done = entry(finish["journal"], "nap")
    assert nap_done["started_at"] == nap["started_at"], "the sleep was restarted"
    assert nap_done["completed_at"] >= nap["started_at"] + 2.0 - CLOCK_SLACK
    assert [e["name"] for e in lab.effects("r1")] == ["a", "b"], "a ran again after the crash"


# -- 3 -----------------------------------------------------------------------------------------


def test_event_wait_survives_restart_and_send_event_from_the_new_process_completes_it(lab: Lab) -> None:
    start = lab.start_and_kill("event")
    assert start["meta"]["status"] == "waiting"

    finish = lab.run("event", "finish-live")
    assert finish["before"]["meta"]["status"] == "waiting"
    assert finish["still"]["meta"]["status"] == "waiting", "the run went on without its event"
    result = finish["result"]
    assert result["status"] == "completed", result
    assert result["value"]["approved"] == {"by": "finisher", "pid": finish["pid"]}
    assert result["value"]["b"]["got"] == {"by": "finisher", "pid": finish["pid"]}
    assert [(e["name"], e["pid"]) for e in lab.effects("r1")] == [("a", start["pid"]), ("b", finish["pid"])]


def _event_sent_without_the_definition(lab: Lab, variant: str) -> None:
    start = lab.start_and_kill("event", "--variant", variant)
    assert start["meta"]["status"] == "waiting"

    # A process that does not define rec-event sends the event: it is recorded, nothing runs.
    send = lab.run("event", "send", "--variant", variant)
    assert send["listed"]["r1"]["status"] == "waiting"
    assert send["after"]["meta"]["status"] == "waiting"
    assert entry(send["after"]["journal"], "approved")["status"] == "waiting"
    assert lab.effects("r1", "b") == []

    # A later process defines it: the kept event is consumed.
    finish = lab.run("event", "finish-parked", "--variant", variant, "--wait", "10")
    assert "timed_out" not in finish, (
        f"the event sent while rec-event was undefined was not consumed after 10 s: {finish['meta']}"
    )
    result = finish["result"]
    assert result["status"] == "completed", result
    assert result["value"]["approved"] == {"by": "sender", "pid": send["pid"]}
    assert result["value"]["b"]["got"] == {"by": "sender", "pid": send["pid"]}
    assert [(e["name"], e["pid"]) for e in lab.effects("r1")] == [("a", start["pid"]), ("b", finish["pid"])]


def test_event_sent_while_no_process_defines_the_workflow_is_kept_and_consumed(lab: Lab) -> None:
    """The wait has no timeout."""
    _event_sent_without_the_definition(lab, "notimeout")


def test_event_sent_while_no_process_defines_the_workflow_is_consumed_before_the_wait_times_out(lab: Lab) -> None:
    """The wait has a timeout of an hour; the event must not have to wait for it."""
    _event_sent_without_the_definition(lab, "timeout")


# -- 4 -----------------------------------------------------------------------------------------


def test_retry_backoff_keeps_its_attempt_count_across_a_restart(lab: Lab) -> None:
    start = lab.start_and_kill("retry")
    start_pid = start["pid"]
    retry_at = {}
    for rid in ("ok", "fail"):
        flaky = entry(start["runs"][rid]["journal"], "flaky")
        assert flaky["attempt"] == 2 and flaky["retry_at"] is not None, flaky
        retry_at[rid] = flaky["retry_at"]
        assert [e["attempt"] for e in lab.effects(rid, "flaky")] == [1, 2]

    finish = lab.run("retry", "finish")
    finish_pid = finish["pid"]
    for rid in ("ok", "fail"):
        before = entry(finish["before"][rid]["journal"], "flaky")
        assert before["attempt"] == 2 and before["retry_at"] == retry_at[rid], before

        calls = lab.effects(rid, "flaky")
        assert [(c["attempt"], c["pid"]) for c in calls] == [(1, start_pid), (2, start_pid), (3, finish_pid)], calls
        assert calls[2]["t"] >= retry_at[rid] - CLOCK_SLACK, "attempt 3 ran before its backoff ended"
        assert len(calls) <= 3, "more attempts than max_attempts"

    ok = finish["runs"]["ok"]["result"]
    assert ok["status"] == "completed", ok
    assert ok["value"]["flaky"]["attempt"] == 3
    assert [e["name"] for e in lab.effects("ok")] == ["flaky", "flaky", "flaky", "after"]

    fail = finish["runs"]["fail"]["result"]
    assert fail["status"] == "failed", fail
    assert fail["error"]["failed_step"] == "flaky"
    assert fail["error"]["attempt"] == 3
    assert "flaky failure at attempt 3" in fail["error"]["message"]
    assert lab.effects("fail", "after") == []


# -- 5 -----------------------------------------------------------------------------------------


def test_pause_survives_a_restart_and_resume_continues(lab: Lab) -> None:
    start = lab.start_and_kill("pause", "--gate", "a")
    start_pid = start["pid"]
    assert start["meta"]["status"] == "paused"
    assert lab.names("r1") == ["a"], "the run went on after pause()"

    resume = lab.run("pause", "resume")
    resume_pid = resume["pid"]
    assert resume["at_open"]["meta"]["status"] == "paused"
    assert resume["later"]["meta"]["status"] == "paused"
    assert stable(resume["later"]["journal"]) == stable(resume["at_open"]["journal"])
    # Nothing ran in the new process (where the workflow is defined) before resume().
    resumed_at = resume["resumed_at"]
    assert [e for e in lab.effects("r1") if e["pid"] == resume_pid and e["t"] < resumed_at] == []

    result = resume["result"]
    assert result["status"] == "completed", result
    assert [(e["name"], e["pid"]) for e in lab.effects("r1")] == [("a", start_pid), ("b", resume_pid), ("c", resume_pid)]
    assert result["value"]["a"]["pid"] == start_pid


# -- 6 -----------------------------------------------------------------------------------------


def test_run_of_an_undefined_workflow_is_kept_untouched_until_defined(lab: Lab) -> None:
    start = lab.start_and_kill("unknown", "--block", "s2")
    start_pid = start["pid"]
    status = start["meta"]["status"]

    inspect = lab.run("unknown", "inspect")
    listed = [m for m in inspect["runs"] if m["run_id"] == "r1"]
    assert len(listed) == 1, inspect["runs"]
    assert listed[0]["workflow"] == "rec-unknown" and listed[0]["status"] == status
    assert inspect["first"]["meta"]["status"] == status
    assert inspect["second"]["meta"]["status"] == status
    assert [m["run_id"] for m in inspect["by_status"]] == ["r1"]
    # Nothing lost: the journal is the one the first process left.
    assert stable(inspect["first"]["journal"]) == stable(start["journal"])
    assert stable(inspect["second"]["journal"]) == stable(start["journal"])
    assert entry(inspect["first"]["journal"], "s1")["output"]["pid"] == start_pid
    assert not any(e["pid"] == inspect["pid"] for e in lab.effects())

    finish = lab.run("unknown", "finish")
    result = finish["result"]
    assert result["status"] == "completed", result
    assert [(e["name"], e["pid"]) for e in lab.effects("r1")] == [
        ("s1", start_pid),
        ("s2", start_pid),
        ("s2", finish["pid"]),
        ("s3", finish["pid"]),
    ]
    assert result["value"]["s1"]["pid"] == start_pid


# -- 7 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant, found, fix_in_process",
    [
        ("renamed", "bravo_renamed", False),
        ("reordered", "charlie", True),
        ("removed", "charlie", False),
    ],
)
def test_changed_definition_raises_non_determinism_and_keeps_the_journal(
    lab: Lab, variant: str, found: str, fix_in_process: bool
) -> None:
    start = lab.start_and_kill("nd", "--variant", variant, "--block", "charlie")
    start_pid = start["pid"]
    journal = stable(start["journal"])
    assert [(e["name"], e["status"]) for e in start["journal"]] == [
        ("alpha", "completed"),
        ("bravo", "completed"),
        ("charlie", "running"),  # its start is durable before it runs
    ]

    role = "changed-then-fix" if fix_in_process else "changed"
    changed = lab.run("nd", role, "--variant", variant)
    error = changed["error"]
    assert error["raised"] == "NonDeterminismError" and error["is_nd"], error
    assert '"bravo"' in error["message"], f"message must name the recorded step: {error['message']}"
    assert f'"{found}"' in error["message"], f"message must name the step found: {error['message']}"
    assert stable(changed["before"]["journal"]) == journal
    assert stable(changed["after"]["journal"]) == journal, "the journal changed under a non-deterministic definition"
    assert changed["after"]["meta"]["blocked"], changed["after"]["meta"]
    ran_while_changed = [
        e for e in lab.effects() if e["pid"] == changed["pid"] and e["t"] < changed.get("fixed_at", float("inf"))
    ]
    assert ran_while_changed == [], "a step ran under the changed definition"

    if fix_in_process:
        fixed = changed["fixed"]
        runner_pid = changed["pid"]
    else:
        fixed = lab.run("nd", "finish", "--variant", variant)
        assert stable(fixed["before"]["journal"]) == journal
        runner_pid = fixed["pid"]
    result = fixed["result"]
    assert result["status"] == "completed", result
    assert [(e["name"], e["pid"]) for e in lab.effects("r1")] == [
        ("alpha", start_pid),
        ("bravo", start_pid),
        ("charlie", start_pid),
        ("charlie", runner_pid),
        ("delta", runner_pid),
    ]


# -- 8 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kill_in", ["compensate:s2", "on_failure"])
def test_compensations_resume_after_a_crash(lab: Lab, kill_in: str) -> None:
    start = lab.start_and_kill("comp", "--block", kill_in)
    start_pid = start["pid"]
    before_kill = ["s1", "s2", "s3", "s4", "compensate:s3", "compensate:s2"]
    if kill_in == "on_failure":
        before_kill += ["compensate:s1", "on_failure"]
    assert lab.names("r1") == before_kill

    finish = lab.run("comp", "finish")
    finish_pid = finish["pid"]
    result = finish["result"]
    assert result["status"] == "failed", result
    assert finish["meta"]["status"] == "failed"
    assert result["error"]["failed_step"] == "s4"
    assert result["error"]["error_type"] == "ValueError"
    assert result["error"]["message"] == "card declined (the original error)"
    assert result["error"]["compensation_errors"] == []

    # Steps s1..s4 ran once, in the first process; compensations in reverse order, each
    # finished one never again; the interrupted one once more; on_failure last.
    expected = [(name, start_pid) for name in before_kill] + [(kill_in, finish_pid)]
    if kill_in == "compensate:s2":
        expected += [("compensate:s1", finish_pid), ("on_failure", finish_pid)]
    effects = lab.effects("r1")
    assert [(e["name"], e["pid"]) for e in effects] == expected, effects
    if kill_in == "compensate:s2":
        c2 = lab.effects("r1", "compensate:s2")
        assert c2[0]["key"] == c2[1]["key"] == "r1:compensate:s2"

    handler = json.loads((lab.work / f"on_failure.{finish_pid}.json").read_text())
    assert handler["failed_step"] == "s4"
    assert handler["error_type"] == "ValueError"
    assert handler["message"] == "card declined (the original error)"
    assert handler["completed_steps"] == ["s1", "s2", "s3"]
    assert not (lab.work / f"on_failure.{start_pid}.json").exists()


# -- 9 -----------------------------------------------------------------------------------------


def test_delayed_start_survives_a_restart_and_starts_no_earlier_than_its_time(lab: Lab) -> None:
    start = lab.start_and_kill("delay")
    t0 = start["t0"]
    assert start["meta"]["status"] == "pending", start["meta"]
    assert start["meta"]["wake_at"] is not None and start["meta"]["wake_at"] >= t0 + 2.0 - CLOCK_SLACK
    assert lab.effects() == [], "the delayed run started at once"

    finish = lab.run("delay", "finish")
    assert finish["before"]["meta"]["status"] == "pending"
    assert finish["before"]["meta"]["wake_at"] == start["meta"]["wake_at"]
    result = finish["result"]
    assert result["status"] == "completed", result
    effects = lab.effects("r1")
    assert [(e["name"], e["pid"]) for e in effects] == [("a", finish["pid"]), ("b", finish["pid"])]
    assert effects[0]["t"] >= t0 + 2.0 - CLOCK_SLACK, "started before its delay"
    assert effects[0]["t"] >= start["meta"]["wake_at"] - CLOCK_SLACK


# -- further recovery limits -------------------------------------------------------------------


def test_a_step_that_kills_its_process_every_time_is_stopped_by_the_recovery_limit(lab: Lab) -> None:
    limit = 2
    outcomes = []
    report = None
    for _ in range(limit + 4):
        proc = lab.spawn("crashloop", "run", "--variant", str(limit))
        try:
            proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"crashloop child hung:\n{lab.log_of(proc)}")
        outcomes.append(proc.returncode)
        if proc.returncode == 0:
            report = json.loads((lab.work / "run.json").read_text())
            break
        assert proc.returncode == -signal.SIGKILL, f"unexpected exit {proc.returncode}:\n{lab.log_of(proc)}"
    print(f"crash loop: process exits {outcomes}")
    assert report is not None, f"the crashing step was never stopped: exits {outcomes}"
    result = report["result"]
    assert result["status"] == "failed", result
    assert result["error"]["error_type"] == "RecoveryLimitExceeded"
    assert result["error"]["failed_step"] == "boom"
    assert len(lab.effects("r1", "ok")) == 1
    assert 1 <= len(lab.effects("r1", "boom")) <= limit + 1


def test_a_crash_in_the_last_retry_attempt_is_not_a_failure(lab: Lab) -> None:
    """Documented rule: ``max_attempts`` bounds *failed* attempts; an attempt
    interrupted by a crash did not fail, so the step runs again (with the next
    attempt number: ``ctx.attempt`` counts every start). Crash loops are bounded
    by ``max_recovery_attempts`` instead. This keeps a crashed-and-replayed run
    deciding exactly like one that never crashed."""
    first = lab.start_and_kill("retrykill")
    assert first["attempt"] == 3
    assert [e["attempt"] for e in lab.effects("r1", "flaky")] == [1, 2, 3]
    # The next process either runs another attempt (we kill it inside) or ends the run.
    proc = lab.spawn("retrykill", "again")
    again = lab.wait_report(proc, "again")
    if again["reached"]:
        lab.kill(proc)
    else:
        proc.wait(timeout=RUN_TIMEOUT)
    final = lab.run("retrykill", "finish")
    attempts = [e["attempt"] for e in lab.effects("r1", "flaky")]
    print(f"attempts run: {attempts}; final: {final['result']['status']} {final['result']['error']}")
    assert final["result"]["status"] == "completed", final["result"]
    assert attempts == list(range(1, len(attempts) + 1)), f"every start has the next number: {attempts}"
    assert len(attempts) <= 3 + lab.kills, "more than one re-run per crash"
    assert len(attempts) >= 4, "the killed third attempt ran again"


def test_cancel_recorded_while_no_process_defines_the_workflow_takes_effect_once_defined(lab: Lab) -> None:
    start = lab.start_and_kill("cancel")
    assert start["meta"]["status"] == "sleeping"
    cancel = lab.run("cancel", "cancel")
    assert cancel["meta"]["status"] == "sleeping"  # nothing can act on it in that process
    finish = lab.run("cancel", "finish", "--wait", "10")
    assert "timed_out" not in finish, f"the recorded cancel was not acted on after 10 s: {finish['meta']}"
    assert finish["result"]["status"] == "cancelled", finish["result"]
    assert lab.effects("r1", "b") == []
