"""Child of tests/test_bad_input_table.py: the cases that need another process.

    bad_input_child.py crash STORE WORKFLOW STEPS KILL_AT
        defines WORKFLOW (version "1") with the comma-separated STEPS (each returns
        {"step": name, "pid": pid}), starts run "r1" and SIGKILLs its own process
        when step KILL_AT starts: a crash with KILL_AT's start durable.
    bad_input_child.py open STORE [UID]
        (drops to UID first, when given) opens an engine on STORE and prints one
        line: "TYPED <error type> <message>" for a duro error, "OPENED" if it opened.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable, Dict

import duro


def crash(store: str, workflow: str, steps: str, kill_at: str) -> None:
    def step(name: str) -> Callable[[Any], Dict[str, Any]]:
        def fn(inp: Any) -> Dict[str, Any]:
            if name == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return {"step": name, "pid": os.getpid()}

        return fn

    flow = duro.workflow(workflow, version="1")
    for name in steps.split(","):
        flow = flow.step(name, step(name))
    with duro.Engine(store) as engine:
        flow.run({"case": workflow}, engine=engine, run_id="r1").result(timeout=60)
    raise SystemExit(f"step {kill_at} never ran")


def open_store(store: str, uid: str = "") -> None:
    if uid:
        os.setgid(int(uid))
        os.setuid(int(uid))
    try:
        duro.Engine(store).close()
    except duro.DuroError as e:
        print("TYPED", type(e).__name__, e, flush=True)
    else:
        print("OPENED", flush=True)


if __name__ == "__main__":
    {"crash": crash, "open": open_store}[sys.argv[1]](*sys.argv[2:])
