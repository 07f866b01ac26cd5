"""duro workflow definitions used by the measurements: chains of no-op steps.

Every step function appends ``time.perf_counter()`` to ``STARTS`` when it
begins, so step latency is measured inside the step (time between consecutive
step starts). The replay chain ends with a step that blocks until a file
exists (the child process is SIGKILLed there).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Dict, List, Optional

import duro

STARTS: List[float] = []
GATE: Dict[str, Optional[str]] = {"release": None, "reached": None}
LAST: Dict[str, Optional[float]] = {"started": None}


def noop(x: Any) -> Any:
    STARTS.append(time.perf_counter())
    return x


async def anoop(x: Any) -> Any:
    STARTS.append(time.perf_counter())
    return x


def _reached() -> bool:
    """Marks that the last step began; True when it may finish (the release file exists)."""
    LAST["started"] = time.perf_counter()
    release, reached = GATE["release"], GATE["reached"]
    if release is None or os.path.exists(release):
        return True
    if reached is not None:
        with open(reached, "w") as f:
            f.write(str(os.getpid()))
    return False


def last(x: Any) -> Any:
    if not _reached():
        while not os.path.exists(GATE["release"] or ""):
            time.sleep(0.01)
    return x


async def alast(x: Any) -> Any:
    if not _reached():
        while not os.path.exists(GATE["release"] or ""):
            await asyncio.sleep(0.01)
    return x


def chain(name: str, steps: int, api: str, blocking_last: bool = False) -> duro.Workflow:
    """A workflow of ``steps`` sequential no-op steps (the last one blocking if asked)."""
    fn = anoop if api == "async" else noop
    wf = duro.workflow(name)
    body = steps - 1 if blocking_last else steps
    for k in range(body):
        wf = wf.step(f"s{k}", fn)
    if blocking_last:
        wf = wf.step("last", alast if api == "async" else last)
    return wf


def sleeper(name: str = "nap") -> duro.Workflow:
    return duro.workflow(name).sleep("nap", "1h")


def check_outputs(result: Any, steps: int, expected: Any) -> Optional[str]:
    """None if the run completed with every step's output equal to its input, else what is wrong."""
    if not result.ok:
        return f"run {result.run_id} ended {result.status}: {result.error}"
    value = result.value
    if len(value) != steps:
        return f"run {result.run_id}: {len(value)} step outputs, expected {steps}"
    for name, out in value.items():
        if out != expected:
            return f"run {result.run_id}: step {name} returned {out!r}, expected {expected!r}"
    return None
