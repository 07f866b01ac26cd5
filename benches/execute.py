"""Runs one measurement in fresh processes: its directory, its database, the crash for replay."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, Optional

import sysinfo
from common import RESULT_PREFIX, wait_for_file

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")


def _parse(stdout: str, stderr: str, code: Optional[int]) -> Dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    return {"metrics": {}, "error": f"no result (exit code {code}); stderr tail:\n{tail}"}


def run_worker(spec: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, WORKER, json.dumps(spec)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {"metrics": {}, "error": f"timed out after {timeout:.0f} s (hang?); stderr tail:\n{err[-2000:]}"}
    return _parse(proc.stdout, proc.stderr, proc.returncode)


def _replay(spec: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """Child runs the chain until its last step blocks; SIGKILL; a fresh process resumes it."""
    d = spec["dir"]
    spec = dict(spec, release_file=os.path.join(d, "release"), reached_file=os.path.join(d, "reached"))
    log = open(os.path.join(d, "child.log"), "w")
    child = subprocess.Popen(
        [sys.executable, WORKER, json.dumps(dict(spec, workload="replay_child"))], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + timeout
    while not os.path.exists(spec["reached_file"]):
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            child.wait()
            log.close()
            with open(os.path.join(d, "child.log")) as f:
                tail = f.read()[-2000:]
            return {"metrics": {}, "error": f"the crashing child did not reach its last step:\n{tail}"}
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    log.close()
    open(spec["release_file"], "w").close()
    spawned = time.time()
    out = run_worker(dict(spec, workload="replay"), timeout)
    if "done_wall" in out:
        out["metrics"]["restart_to_result_ms"] = (out.pop("done_wall") - spawned) * 1e3
    return out


def run_spec(spec: Dict[str, Any], workdir: str, index: int, timeout: float) -> Dict[str, Any]:
    d = os.path.join(workdir, f"{index:04d}-" + spec["id"].replace("/", "-"))
    os.makedirs(d)
    spec = dict(spec, dir=d)
    db: Optional[str] = None
    backend = spec.get("backend")
    if backend in ("sqlite", "sqlite-wal"):
        spec["url"] = "sqlite:///" + os.path.join(d, "dbos.sqlite")
    elif backend == "pg":
        db = f"duro_bench_{os.getpid()}_{index}"
        spec["url"] = sysinfo.pg_create(db)
    started = time.perf_counter()
    try:
        replay = spec["workload"] in ("replay", "replay_long")
        out = _replay(spec, timeout) if replay else run_worker(spec, timeout)
    finally:
        if db is not None:
            sysinfo.pg_drop(db)
    if out.get("error"):
        out["kept_dir"] = d  # for a repro: the store as the failing process left it
    else:
        shutil.rmtree(d, ignore_errors=True)
    out["wall_s"] = time.perf_counter() - started
    return out
