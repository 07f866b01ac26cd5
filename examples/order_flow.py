"""The order flow: reserve -> charge -> ship, with saga compensation, a real
crash in the middle, and the resume.

    python examples/order_flow.py [store-directory]

1. A child process starts order o-1 and is killed (SIGKILL) while charging.
2. This process opens the same store, defines the workflow, and the run
   resumes by itself: "reserve" does not run again, "charge" runs again with
   the same idempotency key, then "ship".
3. Order o-2 fails to ship: its charge is refunded and its stock released
   (in reverse order), then the on-failure handler runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict

import duro

STORE = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else os.path.join(
    tempfile.gettempdir(), f"duro-example-{os.getpid()}"
)
CRASH_MARKER = os.path.join(STORE + ".charging")


def say(text: str) -> None:
    print(text, flush=True)


# -- the services the workflow calls -------------------------------------------------------------

def reserve(order: Dict[str, Any], prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
    say(f"    reserve-inventory: holding {order['qty']} x {order['sku']} (attempt {ctx.attempt}, pid {os.getpid()})")
    return {"reservation": f"res-{order['order_id']}"}


def charge(order: Dict[str, Any], prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
    say(f"    charge-card: charging {order['amount']} with idempotency key {ctx.idempotency_key!r} (pid {os.getpid()})")
    if "--child" in sys.argv:
        open(CRASH_MARKER, "w").close()  # tell the parent we are inside the charge...
        time.sleep(60)  # ...and wait to be killed
    return {"charge_id": f"ch-{order['order_id']}"}


def ship(order: Dict[str, Any], prev: Any) -> Dict[str, Any]:
    if order.get("address") is None:
        raise duro.NonRetryableError("no shipping address")
    say(f"    ship: sending {prev['reserve-inventory']['reservation']} to {order['address']}")
    return {"tracking": "TRK-" + order["order_id"]}


def refund(order: Dict[str, Any], charged: Dict[str, Any]) -> str:
    say(f"    compensate charge-card: refunding {charged['charge_id']}")
    return "refunded"


def release(order: Dict[str, Any], reserved: Dict[str, Any]) -> str:
    say(f"    compensate reserve-inventory: releasing {reserved['reservation']}")
    return "released"


def on_failure(ctx: duro.FailureContext) -> None:
    say(f"    on_failure: order {ctx.input['order_id']} failed at {ctx.failed_step!r}: {ctx.error.message}"
        f" (completed before: {ctx.completed_steps})")


order_flow = (
    duro.workflow("order-flow", retry=duro.Retry(max_attempts=3, initial_delay="1s", max_delay="30s", multiplier=2.0), timeout="10m")
    .step("reserve-inventory", reserve, compensate=release)
    .step("charge-card", charge, retry=duro.Retry(max_attempts=5, initial_delay="200ms"),
          idempotency_key=lambda order: f"charge:{order['order_id']}", compensate=refund)
    .step("ship", ship)
    .on_failure(on_failure)
)

ORDER_1 = {"order_id": "o-1", "sku": "book", "qty": 1, "amount": 30, "address": "1 Main St"}
ORDER_2 = {"order_id": "o-2", "sku": "lamp", "qty": 2, "amount": 80, "address": None}


def child() -> None:
    engine = duro.Engine(STORE)
    order_flow.run(ORDER_1, engine=engine, run_id="o-1")
    time.sleep(120)  # the parent kills us during the charge


def main() -> None:
    say(f"store: {STORE}")
    say("1. a child process starts order o-1 ...")
    proc = subprocess.Popen([sys.executable, __file__, STORE, "--child"])
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(CRASH_MARKER):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the child process did not reach the charge step")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        say(f"   ... and is killed with SIGKILL while charging (exit {proc.returncode}).")
    finally:
        if proc.poll() is None:
            proc.kill()
        if os.path.exists(CRASH_MARKER):
            os.remove(CRASH_MARKER)

    say("2. this process opens the store; the run resumes where it stopped:")
    with duro.Engine(STORE) as engine:
        handle = engine.handle("o-1")
        result = handle.result(timeout=60)
        say(f"   o-1 {result.status}: {result.value}")
        for entry in handle.journal():
            say(f"     #{entry.index} {entry.name:<18} {entry.status:<9} attempt {entry.attempt}")

        say("3. order o-2 cannot ship: completed steps are compensated in reverse, then on_failure runs:")
        failed = order_flow.run(ORDER_2, engine=engine, run_id="o-2").result(timeout=60)
        assert failed.error is not None
        say(f"   o-2 {failed.status}: {failed.error}")
        for entry in failed.error.journal:
            say(f"     #{entry.index} {entry.kind:<12} {entry.name:<18} {entry.status}")
        say(f"   failed runs in the store: {[m.run_id for m in engine.runs(status='failed')]}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
