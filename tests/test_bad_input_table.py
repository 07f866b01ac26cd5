"""Bad input through the Python API, as one table: each case must give a typed
duro error and lose nothing (the engine keeps working, no partial run is left).
Prints how many bad inputs were tried."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

import duro

Case = Tuple[str, Callable[[duro.Engine, str], Any], type]


class Nasty(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() fails")


def _cases() -> List[Case]:
    def run(engine: duro.Engine, name: str, value: Any = 1, **kwargs: Any) -> Any:
        return duro.workflow(name).step("a", lambda i: i).run(value, engine=engine, **kwargs)

    def failed_run(fn: Callable[[Any], Any]) -> Callable[[duro.Engine, str], Any]:
        def case(engine: duro.Engine, name: str) -> Any:
            result = duro.workflow(name, retry=duro.Retry(max_attempts=1)).step("a", fn).run(None, engine=engine).result(timeout=30)
            assert not result.ok and result.error is not None
            raise {"SerializationError": duro.SerializationError, "PayloadTooLarge": duro.PayloadTooLarge}.get(
                result.error.error_type, duro.DuroError
            )(result.error.message)

        return case

    def ended(engine: duro.Engine, name: str) -> Any:
        handle = run(engine, name)
        handle.result(timeout=30)
        handle.send_event("late", 1)

    return [
        ("empty run id", lambda e, n: run(e, n, run_id=""), duro.InvalidArgument),
        ("huge run id", lambda e, n: run(e, n, run_id="x" * 100_000), duro.InvalidArgument),
        ("run id with a newline", lambda e, n: run(e, n, run_id="a\nb"), duro.InvalidArgument),
        ("run id of the wrong type", lambda e, n: run(e, n, run_id=b"bytes"), duro.InvalidArgument),
        ("input over the limit", lambda e, n: run(e, n, "x" * (1 << 20)), duro.PayloadTooLarge),
        ("non-serialisable input", lambda e, n: run(e, n, object()), duro.SerializationError),
        ("NaN input", lambda e, n: run(e, n, float("nan")), duro.SerializationError),
        ("non-serialisable output", failed_run(lambda i: {1, 2}), duro.SerializationError),
        ("output over the limit", failed_run(lambda i: "y" * (1 << 20)), duro.PayloadTooLarge),
        ("error whose __str__ raises", failed_run(lambda i: (_ for _ in ()).throw(Nasty())), duro.DuroError),
        ("event for an ended run", ended, duro.RunEnded),
        ("unknown run id", lambda e, n: e.handle("no-such-run"), duro.RunNotFound),
        ("bad duration", lambda e, n: duro.workflow(n).sleep("s", "soon"), duro.InvalidArgument),
        ("negative delay", lambda e, n: run(e, n, delay=-5), duro.InvalidArgument),
        ("bad retry", lambda e, n: duro.Retry(max_attempts=0), duro.InvalidArgument),
        ("duplicate step names", lambda e, n: duro.workflow(n).step("a", len).step("a", len), duro.InvalidArgument),
        ("unknown status filter", lambda e, n: e.runs(status="exploded"), duro.InvalidArgument),
    ]


def test_bad_input_table(engine: duro.Engine, name: str) -> None:
    tried = typed = 0
    for label, case, expected in _cases():
        tried += 1
        with pytest.raises(expected) as raised:
            case(engine, f"{name}-{tried}")
        assert isinstance(raised.value, duro.DuroError), label
        assert str(raised.value), f"{label}: the error says nothing"
        typed += 1
    # Nothing was lost and the engine still works: only runs that started exist, all ended.
    unfinished = [m for m in engine.runs(limit=1000) if m.status not in ("completed", "failed")]
    assert unfinished == [], unfinished
    assert duro.workflow(name + "-after").step("a", lambda i: i + 1).run(1, engine=engine).result(timeout=30).value == {"a": 2}
    print(f"bad input table: {tried} bad inputs tried, {typed} typed errors, 0 losses")


def test_a_second_process_on_the_same_store_gets_a_clear_error(store_path: Path, name: str) -> None:
    with duro.Engine(str(store_path)) as engine:
        duro.workflow(name).step("a", lambda i: i).run(1, engine=engine, run_id="kept").result(timeout=30)
        other = subprocess.run(
            [sys.executable, "-c", f"import duro\ntry:\n    duro.Engine({str(store_path)!r})\nexcept duro.StoreLocked as e:\n    print('LOCKED', e)"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.stdout.startswith("LOCKED") and str(os.getpid()) in other.stdout, other.stdout + other.stderr
        assert engine.handle("kept").result(timeout=5).ok, "the first process keeps working"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_a_store_directory_without_permission(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    script = textwrap.dedent(
        f"""
        import os, duro
        os.setgid(65534); os.setuid(65534)
        for path in ({str(private / 'store')!r}, {str(private)!r}):
            try:
                duro.Engine(path)
            except duro.StoreError as e:
                print('TYPED', type(e).__name__, e)
            else:
                print('OPENED')
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("TYPED") for line in lines), done.stdout + done.stderr
    assert "Permission denied" in done.stdout and "check that the directory exists" in done.stdout
