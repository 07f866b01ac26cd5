"""Helpers shared by the child processes of the crash tests (not a test module).

Children are started by tests/test_recovery.py and tests/test_crash_kill.py with
``sys.executable path/to/child.py ...``; this directory is then ``sys.path[0]``.
Everything here is plain stdlib so a child can be SIGKILLed at any moment
without leaving anything but complete lines and atomically replaced files.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional


def setup_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="%(asctime)s pid=%(process)d %(name)s %(levelname)s %(message)s",
    )


def append_line(path: str, line: str) -> None:
    """Appends one line with a single write(2) on an O_APPEND descriptor, then fsyncs.

    A SIGKILL can land before or after the write, never in the middle of the line.
    """
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        assert written == len(data), (written, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str, obj: Any) -> None:
    """Writes ``obj`` as JSON atomically (tmp file, fsync, rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, default=_default, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    return repr(value)


def ts(value: Optional[datetime]) -> Optional[float]:
    return None if value is None else value.timestamp()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def block_forever() -> None:
    """Used inside a step: the parent SIGKILLs the process while it is here."""
    while True:
        time.sleep(0.05)


def journal_dump(entries: List[Any]) -> List[Dict[str, Any]]:
    return [
        {
            "index": e.index,
            "name": e.name,
            "kind": e.kind,
            "status": e.status,
            "attempt": e.attempt,
            "output": e.output if not isinstance(e.output, bytes) else {"bytes": e.output.hex()},
            "error": e.error,
            "error_type": e.error_type,
            "started_at": ts(e.started_at),
            "completed_at": ts(e.completed_at),
            "duration": e.duration,
            "retry_at": ts(e.retry_at),
        }
        for e in entries
    ]


def meta_dump(meta: Any) -> Dict[str, Any]:
    return {
        "run_id": meta.run_id,
        "workflow": meta.workflow,
        "version": meta.version,
        "status": meta.status,
        "created_at": ts(meta.created_at),
        "started_at": ts(meta.started_at),
        "completed_at": ts(meta.completed_at),
        "current_step": meta.current_step,
        "step_count": meta.step_count,
        "completed_step_count": meta.completed_step_count,
        "error": meta.error,
        "error_type": meta.error_type,
        "wake_at": ts(meta.wake_at),
        "blocked": meta.blocked,
    }


def result_dump(result: Any) -> Dict[str, Any]:
    error = result.error
    return {
        "run_id": result.run_id,
        "status": result.status,
        "ok": result.ok,
        "value": result.value,
        "error": None
        if error is None
        else {
            "message": error.message,
            "error_type": error.error_type,
            "failed_step": error.failed_step,
            "attempt": error.attempt,
            "compensation_errors": [
                {"step": c.step, "error_type": c.error_type, "message": c.message} for c in error.compensation_errors
            ],
        },
        "completed_at": ts(result.completed_at),
    }
