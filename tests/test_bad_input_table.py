"""Bad input through the Python API, as one table (issue 5, campaign 6): each bad
input must give a typed duro error with a message, each edge input inside the
limits must be accepted and read back exactly, and nothing may be lost: every
run a case started ends (or stays intact, where that is the point), keeps its
journal, and the engine keeps working.

Sections: API misuse (the original table); run ids empty / at the 512-byte limit
and over it / huge / unicode / quoted / control characters / wrong types;
input, step output and event payloads at the size limit -1 / = / +1; 64
concurrent starts of one run id (exactly one run); a definition with steps
renamed, reordered or removed between a crash and the recovery
(NonDeterminismError naming the recorded and the found step, run untouched,
then completed by the original definition); an unknown workflow on recovery
(run kept, visible, untouched, completed once defined); a store directory
without permission; two processes opening one store (StoreLocked; the store
is intact when the first one reopens it). Crashes are real: a child process
(tests/procs/bad_input_child.py) SIGKILLs itself inside a step.

Prints (and reports, see tests/support.py) how many bad inputs were tried, how
many runs were checked afterwards and how many were lost or changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import duro
from support import report_campaign

CHILD = Path(__file__).resolve().parent / "procs" / "bad_input_child.py"
LIMIT = 4096  # max_payload_bytes of the payload section
ND_ORIGINAL = ["alpha", "bravo", "charlie", "delta"]
ND_CHANGED = {
    "renamed": (["alpha", "bravo_renamed", "charlie", "delta"], "bravo_renamed"),
    "reordered": (["alpha", "charlie", "bravo", "delta"], "charlie"),
    "removed": (["alpha", "charlie", "delta"], "charlie"),
}


class Nasty(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() fails")


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001
        return ""


def _journal(handle: duro.RunHandle) -> List[Tuple[Any, ...]]:
    return [(e.index, e.name, e.kind, e.status, e.attempt, e.output, e.error) for e in handle.journal()]


class Table:
    """Counts what the cases try and collects every problem (the test fails on any)."""

    def __init__(self) -> None:
        self.tried = 0  # bad or edge inputs tried
        self.typed = 0  # refused with a typed duro error that says something
        self.accepted = 0  # edge inputs inside the limits, accepted and read back
        self.runs_checked = 0  # runs checked afterwards (ended, or intact)
        self.losses = 0  # runs lost, changed, or left unfinished
        self.problems: List[str] = []

    def refuse(self, label: str, expected: Type[BaseException], action: Callable[[], Any]) -> Optional[BaseException]:
        """``action`` must raise ``expected``, a duro error whose message says something."""
        self.tried += 1
        try:
            action()
        except expected as exc:
            if not isinstance(exc, duro.DuroError):
                self.problems.append(f"{label}: {type(exc).__name__} is not a duro.DuroError")
            elif not _text(exc):
                self.problems.append(f"{label}: the {type(exc).__name__} says nothing")
            else:
                self.typed += 1
            return exc
        except Exception as exc:  # noqa: BLE001 - the table judges it
            self.problems.append(f"{label}: {type(exc).__name__} ({_text(exc)}), expected {expected.__name__}")
        else:
            self.problems.append(f"{label}: accepted, expected {expected.__name__}")
        return None

    def refused_as(self, label: str, expected: Type[BaseException], error_type: str, message: str) -> None:
        """A refusal seen as data (a failed run's error, a child process's report): the
        error type must be ``expected`` or a subclass, and the message say something."""
        self.tried += 1
        found = getattr(duro, error_type, None)
        if not (isinstance(found, type) and issubclass(found, expected)):
            self.problems.append(f"{label}: {error_type or 'no error'} ({message[:300]}), expected {expected.__name__}")
        elif not message.strip():
            self.problems.append(f"{label}: the {error_type} says nothing")
        else:
            self.typed += 1

    def accept(self, label: str, action: Callable[[], Any], expected: Any) -> None:
        """``action`` must succeed and return ``expected``."""
        self.tried += 1
        try:
            got = action()
        except Exception as exc:  # noqa: BLE001
            self.problems.append(f"{label}: refused with {type(exc).__name__}: {_text(exc)}")
            return
        if got != expected:
            self.problems.append(f"{label}: read back {str(got)[:200]!r}, expected {str(expected)[:200]!r}")
        else:
            self.accepted += 1

    def intact(self, label: str, ok: bool, detail: Any = "") -> None:
        """One run checked afterwards: ``ok`` says it ended as it should, or is untouched."""
        self.runs_checked += 1
        if not ok:
            self.losses += 1
            self.problems.append(f"LOST or changed: {label} {str(detail)[:300]}")

    def check(self, label: str, ok: bool, detail: Any = "") -> None:
        if not ok:
            self.problems.append(f"{label} {str(detail)[:300]}")

    def section(self, name: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(self, *args)
        except Exception as exc:  # noqa: BLE001 - report it and go on with the other sections
            where = traceback.format_exc(limit=-3)
            self.problems.append(f"section {name} stopped: {type(exc).__name__}: {_text(exc)}\n{where}")


def _child(*args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([sys.executable, str(CHILD), *args], capture_output=True, text=True, timeout=120)


def _crash(t: Table, store: Path, workflow: str, steps: List[str], kill_at: str) -> bool:
    done = _child("crash", str(store), workflow, ",".join(steps), kill_at)
    t.check(f"{workflow}: the child did not die of SIGKILL in {kill_at}:", done.returncode == -9, done.stderr[-2000:])
    return done.returncode == -9


def _flow(name: str, steps: List[str], version: str = "1") -> duro.Workflow:
    def step(step_name: str) -> Callable[[Any], Dict[str, Any]]:
        return lambda inp: {"step": step_name, "pid": os.getpid()}

    flow = duro.workflow(name, version=version)
    for step_name in steps:
        flow = flow.step(step_name, step(step_name))
    return flow


# -- sections ----------------------------------------------------------------------------------------


def api_misuse(t: Table, engine: duro.Engine, name: str) -> None:
    """The original table: misuse of the API on the default engine."""

    def run(n: str, value: Any = 1, **kwargs: Any) -> Any:
        return duro.workflow(n).step("a", lambda i: i).run(value, engine=engine, **kwargs)

    def failed_run(n: str, fn: Callable[[Any], Any]) -> Callable[[], Any]:
        def case() -> Any:
            result = duro.workflow(n, retry=duro.Retry(max_attempts=1)).step("a", fn).run(None, engine=engine).result(timeout=30)
            assert not result.ok and result.error is not None
            raise {"SerializationError": duro.SerializationError, "PayloadTooLarge": duro.PayloadTooLarge}.get(
                result.error.error_type, duro.DuroError
            )(result.error.message)

        return case

    def ended(n: str) -> Callable[[], Any]:
        def case() -> Any:
            handle = run(n)
            handle.result(timeout=30)
            handle.send_event("late", 1)

        return case

    cases: List[Tuple[str, Callable[[str], Callable[[], Any]], Type[BaseException]]] = [
        ("empty run id", lambda n: lambda: run(n, run_id=""), duro.InvalidArgument),
        ("huge run id", lambda n: lambda: run(n, run_id="x" * 100_000), duro.InvalidArgument),
        ("run id with a newline", lambda n: lambda: run(n, run_id="a\nb"), duro.InvalidArgument),
        ("run id of the wrong type", lambda n: lambda: run(n, run_id=b"bytes"), duro.InvalidArgument),
        ("input over the limit", lambda n: lambda: run(n, "x" * (1 << 20)), duro.PayloadTooLarge),
        ("non-serialisable input", lambda n: lambda: run(n, object()), duro.SerializationError),
        ("NaN input", lambda n: lambda: run(n, float("nan")), duro.SerializationError),
        ("non-serialisable output", lambda n: failed_run(n, lambda i: {1, 2}), duro.SerializationError),
        ("output over the limit", lambda n: failed_run(n, lambda i: "y" * (1 << 20)), duro.PayloadTooLarge),
        ("error whose __str__ raises", lambda n: failed_run(n, lambda i: (_ for _ in ()).throw(Nasty())), duro.DuroError),
        ("event for an ended run", ended, duro.RunEnded),
        ("unknown run id", lambda n: lambda: engine.handle("no-such-run"), duro.RunNotFound),
        ("bad duration", lambda n: lambda: duro.workflow(n).sleep("s", "soon"), duro.InvalidArgument),
        ("negative delay", lambda n: lambda: run(n, delay=-5), duro.InvalidArgument),
        ("bad retry", lambda n: lambda: duro.Retry(max_attempts=0), duro.InvalidArgument),
        ("duplicate step names", lambda n: lambda: duro.workflow(n).step("a", len).step("a", len), duro.InvalidArgument),
        ("unknown status filter", lambda n: lambda: engine.runs(status="exploded"), duro.InvalidArgument),
    ]
    for i, (label, case, expected) in enumerate(cases):
        t.refuse(label, expected, case(f"{name}-misuse-{i}"))
    # Nothing was lost: only runs that started exist, and all ended.
    for meta in engine.runs(limit=1000):
        t.intact(f"{meta.run_id} ({meta.workflow})", meta.status in ("completed", "failed"), meta.status)
    after = duro.workflow(name + "-after").step("a", lambda i: i + 1).run(1, engine=engine).result(timeout=30)
    t.check("the engine stopped working after bad input:", after.value == {"a": 2}, after)


def run_ids(t: Table, engine: duro.Engine, name: str) -> None:
    flow = duro.workflow(name + "-ids").step("a", lambda i: i)
    refused = [
        ("empty", ""),
        ("513 bytes", "x" * 513),
        ("514 bytes of unicode (257 characters)", "ü" * 257),
        ("huge", "x" * 100_000),
        ("newline", "new\nline"),
        ("tab", "tab\there"),
        ("NUL byte", "nul\0byte"),
        ("bytes", b"bytes"),
        ("int", 42),
    ]
    for label, run_id in refused:
        t.refuse(f"run id {label}", duro.InvalidArgument, lambda run_id=run_id: flow.run(1, engine=engine, run_id=run_id))
    accepted = [
        "x" * 512,
        "ü" * 256,  # 512 bytes
        "ünïcødé-🚀",
        "it's \"quoted\" ' OR 1=1 --",
        "../../etc/passwd",
        "%s and {} and \\ and ;",
    ]
    for run_id in accepted:
        # The id is the input too: the value read back carries it.
        start = lambda run_id=run_id: flow.run(run_id, engine=engine, run_id=run_id).result(timeout=30).value  # noqa: E731
        t.accept(f"run id {run_id[:20]!r}", start, {"a": run_id})
        t.accept(f"handle of {run_id[:20]!r}", lambda run_id=run_id: engine.handle(run_id).run_id, run_id)
        again = flow.run("other input", engine=engine, run_id=run_id).result(timeout=30).value
        t.check(f"a second start of {run_id[:20]!r} started another run:", again == {"a": run_id}, again)
    stored = sorted(m.run_id for m in engine.runs(workflow=flow.name, limit=100))
    for run_id in accepted:
        t.intact(f"run id {run_id[:20]!r}", stored.count(run_id) == 1, stored)
    t.check("runs of refused ids exist:", len(stored) == len(accepted), stored)


def payloads(t: Table, tmp_path: Path, name: str) -> None:
    """Input, step output and event payloads at the limit -1, =, +1 (JSON-encoded size)."""
    store = tmp_path / "payloads"
    quotes = len(b'""')
    done: Dict[str, Tuple[str, Any]] = {}  # run id -> (status, value) that must survive a reopen
    with duro.Engine(str(store), max_payload_bytes=LIMIT) as engine:
        echo = duro.workflow(name + "-echo").step("echo", lambda i: i)

        def start(size: int) -> Any:
            return echo.run("x" * (size - quotes), engine=engine, run_id=f"in-{size}").result(timeout=30).value

        for size in (LIMIT - 1, LIMIT):
            expected = {"echo": "x" * (size - quotes)}
            t.accept(f"input of {size} bytes", lambda size=size: start(size), expected)
            done[f"in-{size}"] = ("completed", expected)
        t.refuse(f"input of {LIMIT + 1} bytes", duro.PayloadTooLarge, lambda: start(LIMIT + 1))
        t.check("a refused input started a run:", f"in-{LIMIT + 1}" not in [m.run_id for m in engine.runs(workflow=echo.name)])

        def output(size: int) -> duro.RunResult:
            text = "y" * (size - quotes)
            flow = duro.workflow(f"{name}-out-{size}", retry=duro.Retry(max_attempts=1)).step("grow", lambda i: text)
            return flow.run(None, engine=engine, run_id=f"out-{size}").result(timeout=30)

        for size in (LIMIT - 1, LIMIT):
            expected = {"grow": "y" * (size - quotes)}
            t.accept(f"step output of {size} bytes", lambda size=size: output(size).value, expected)
            done[f"out-{size}"] = ("completed", expected)
        error = output(LIMIT + 1).error
        what = f"step output of {LIMIT + 1} bytes"
        t.refused_as(what, duro.PayloadTooLarge, error.error_type if error else "", error.message if error else "")
        done[f"out-{LIMIT + 1}"] = ("failed", None)

        waits = duro.workflow(name + "-event").wait_for_event("e")
        for size in (LIMIT - 1, LIMIT):
            handle = waits.run(None, engine=engine, run_id=f"ev-{size}")

            def send(handle: duro.RunHandle = handle, size: int = size) -> Any:
                handle.send_event("e", "z" * (size - quotes))
                return handle.result(timeout=30).value

            t.refuse(f"event payload of {LIMIT + 1} bytes", duro.PayloadTooLarge, lambda send=send: send(size=LIMIT + 1))
            expected = {"e": "z" * (size - quotes)}
            t.accept(f"event payload of {size} bytes", send, expected)
            done[f"ev-{size}"] = ("completed", expected)
    # Everything accepted (and the failed run of the refused output) is still there after a restart.
    with duro.Engine(str(store), max_payload_bytes=LIMIT) as engine:
        for run_id, (status, value) in done.items():
            result = engine.handle(run_id).result(timeout=30)
            ok = result.status == status and (status != "completed" or result.value == value)
            t.intact(f"payload run {run_id} after a restart", ok, result.status)
        t.check("runs nobody started exist:", sorted(m.run_id for m in engine.runs(limit=100)) == sorted(done))


def concurrent_starts(t: Table, engine: duro.Engine, name: str) -> None:
    executions: List[int] = []
    flow = duro.workflow(name + "-64").step("a", lambda i: executions.append(i) or i)
    barrier = threading.Barrier(64)
    handles: List[duro.RunHandle] = []
    errors: List[BaseException] = []

    def start(i: int) -> None:
        try:
            barrier.wait()
            handles.append(flow.run(i, engine=engine, run_id="contended"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    t.tried += 1
    values = {str(h.result(timeout=30).value) for h in handles}
    runs = engine.runs(workflow=flow.name, limit=100)
    ok = not errors and len(handles) == 64 and len(values) == 1 and len(executions) == 1 and len(runs) == 1
    if ok:
        t.accepted += 1
    else:
        t.problems.append(
            f"64 concurrent starts of one id: {len(runs)} runs, {len(executions)} executions, "
            f"values {values}, errors {errors[:3]}"
        )
    t.intact("the contended run", len(runs) == 1 and runs[0].status == "completed", runs)


def changed_definition(t: Table, tmp_path: Path, name: str, variant: str) -> None:
    store, workflow = tmp_path / f"nd-{variant}", f"{name}-nd-{variant}"
    if not _crash(t, store, workflow, ND_ORIGINAL, kill_at="charlie"):
        return
    steps, found = ND_CHANGED[variant]
    with duro.Engine(str(store)) as engine:  # the workflow is not defined yet: nothing moves
        handle = engine.handle("r1")
        before, status = _journal(handle), handle.status()
        left = [(e[1], e[3]) for e in before]
        t.check(f"{variant}: the crash left", left == [("alpha", "completed"), ("bravo", "completed"), ("charlie", "running")], left)
        changed = _flow(workflow, steps)
        engine.register(changed)
        error = t.refuse(f"steps {variant} between crash and recovery", duro.NonDeterminismError, lambda: handle.result(timeout=30))
        message = _text(error) if error else ""
        named = '"bravo"' in message and f'"{found}"' in message
        t.check(f"{variant}: the error must name the recorded and the found step:", named, message)
        time.sleep(0.3)  # time for a wrongly running run to write something
        t.intact(f"the run under the {variant} definition", _journal(handle) == before and handle.status() == status, _journal(handle))
        # The original definition again (same name and version): the run goes on, nothing lost.
        engine.register(_flow(workflow, ND_ORIGINAL))
        result = handle.result(timeout=30)
        value = result.value or {}
        crashed = value.get("alpha", {}).get("pid")
        ok = result.ok and sorted(value) == sorted(ND_ORIGINAL) and crashed != os.getpid() and value["bravo"]["pid"] == crashed
        t.intact(f"the {variant} run, completed by the original definition", ok, result.value or result.error)


def unknown_workflow(t: Table, tmp_path: Path, name: str) -> None:
    store, workflow = tmp_path / "unknown", f"{name}-unknown"
    steps = ["s1", "s2", "s3"]
    if not _crash(t, store, workflow, steps, kill_at="s2"):
        return
    with duro.Engine(str(store)) as engine:  # the workflow is not defined in this process
        listed = [m for m in engine.runs(limit=100) if m.run_id == "r1"]
        t.check("a run of an unknown workflow is not listed:", len(listed) == 1 and listed[0].workflow == workflow, listed)
        handle = engine.handle("r1")
        before, status = _journal(handle), handle.status()
        t.refuse("a result of a run whose workflow is unknown", duro.ResultTimeout, lambda: handle.result(timeout=0.5))
        visible = [m.run_id for m in engine.runs(status=status, limit=100)]
        untouched = _journal(handle) == before and handle.status() == status and visible == ["r1"]
        t.intact("the run of the unknown workflow", untouched, (before, status, visible))
        engine.register(_flow(workflow, steps))
        result = handle.result(timeout=30)
        value = result.value or {}
        ok = result.ok and sorted(value) == steps and value["s1"]["pid"] != os.getpid() and value["s3"]["pid"] == os.getpid()
        t.intact("the run of the unknown workflow, once defined", ok, result.value or result.error)


def no_permission(t: Table, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # Root ignores permissions: another user (nobody) tries, in a child process.
        base = Path(tempfile.mkdtemp(prefix="duro-perm-"))
        try:
            os.chmod(base, 0o755)
            private = base / "private"
            private.mkdir(mode=0o700)
            for path in (private / "store", private):
                done = _child("open", str(path), "65534")
                _, typename, message = (done.stdout.strip() + "  ").split(" ", 2)
                t.refused_as(f"a store at {path.name} the user cannot access", duro.StoreError, typename, message or done.stderr[-2000:])
                t.check("the permission error does not say why:", "Permission denied" in message, message)
            t.check("a refused open created files:", list(private.iterdir()) == [], list(private.iterdir()))
            duro.Engine(str(private / "store")).close()  # and the directory still works for its owner
        finally:
            shutil.rmtree(base, ignore_errors=True)
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0)
        try:
            t.refuse("a store in a directory without permission", duro.StoreError, lambda: duro.Engine(str(locked / "store")))
        finally:
            locked.chmod(0o700)
        t.check("a refused open created files:", list(locked.iterdir()) == [], list(locked.iterdir()))
        duro.Engine(str(locked / "store")).close()


def two_processes(t: Table, tmp_path: Path, name: str) -> None:
    store = tmp_path / "shared"
    done = duro.workflow(name + "-kept").step("a", lambda i: {"kept": i})
    waits = duro.workflow(name + "-waits").step("a", lambda i: i).wait_for_event("go")
    with duro.Engine(str(store)) as engine:
        kept = done.run(7, engine=engine, run_id="kept")
        kept.result(timeout=30)
        waiting = waits.run(8, engine=engine, run_id="waiting")
        deadline = time.monotonic() + 30
        while waiting.status() != "waiting" and time.monotonic() < deadline:
            time.sleep(0.01)
        snapshot = {h.run_id: (_journal(h), h.status()) for h in (kept, waiting)}
        other = _child("open", str(store))
        _, typename, message = (other.stdout.strip() + "  ").split(" ", 2)
        t.refused_as("a second process opening the store", duro.StoreLocked, typename, message or other.stderr[-2000:])
        t.check("StoreLocked must name the process holding the store:", str(os.getpid()) in message, message)
        after = done.run(9, engine=engine, run_id="after").result(timeout=30)
        t.check("the first process stopped working:", after.value == {"a": {"kept": 9}}, after)
        snapshot["after"] = (_journal(engine.handle("after")), "completed")
    # The first process closed: reopen and compare everything.
    with duro.Engine(str(store)) as engine:
        t.check("runs appeared or vanished:", sorted(m.run_id for m in engine.runs(limit=100)) == sorted(snapshot))
        for run_id, (journal, status) in snapshot.items():
            handle = engine.handle(run_id)
            now = (_journal(handle), handle.status())
            t.intact(f"{run_id} after the second process tried", now == (journal, status), now)
        handle = engine.handle("waiting")
        handle.send_event("go", "now")
        result = handle.result(timeout=30)
        resumed = result.ok and result.value == {"a": 8, "go": "now"}
        t.intact("the waiting run, resumed after the reopen", resumed, result.value or result.error)


# -- the table -------------------------------------------------------------------------------------


def test_bad_input_table(engine: duro.Engine, tmp_path: Path, name: str) -> None:
    t = Table()
    t.section("API misuse", api_misuse, engine, name)
    t.section("run ids", run_ids, engine, name)
    t.section("payloads at the limit", payloads, tmp_path, name)
    t.section("64 concurrent starts", concurrent_starts, engine, name)
    for variant in ND_CHANGED:
        t.section(f"steps {variant} after a crash", changed_definition, tmp_path, name, variant)
    t.section("unknown workflow on recovery", unknown_workflow, tmp_path, name)
    t.section("store without permission", no_permission, tmp_path)
    t.section("two processes on one store", two_processes, tmp_path, name)
    report_campaign(
        f"bad input     table: {t.tried} bad inputs tried ({t.typed} typed errors, {t.accepted} edge inputs accepted "
        f"and read back), {t.runs_checked} runs checked afterwards, {t.losses} lost or changed; "
        f"violations {len(t.problems)}"
    )
    assert not t.problems, "\n".join(t.problems[:30])
