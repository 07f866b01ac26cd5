"""Saga compensation and the on-failure handler, including the seed library's own example."""

from __future__ import annotations

from typing import Any, Dict, List

import duro

from support import FAST, ONCE


class Ledger:
    """The external systems of the seed example: inventory, payments, shipping."""

    def __init__(self, ship_fails: bool) -> None:
        self.ship_fails = ship_fails
        self.events: List[str] = []
        self.failure_seen: Dict[str, Any] = {}

    def reserve(self, order: Dict[str, Any]) -> Dict[str, Any]:
        self.events.append(f"reserve {order['sku']}")
        return {"reservation": f"res-{order['order_id']}"}

    def charge(self, order: Dict[str, Any], prev: Any, ctx: duro.StepContext) -> Dict[str, Any]:
        self.events.append(f"charge {order['amount']} key={ctx.idempotency_key}")
        return {"charge_id": f"ch-{order['order_id']}"}

    def ship(self, order: Dict[str, Any], prev: Any) -> Dict[str, Any]:
        if self.ship_fails:
            raise ConnectionError("carrier API down")
        self.events.append(f"ship {prev['reserve-inventory']['reservation']}")
        return {"tracking": "T-1"}

    def refund(self, order: Dict[str, Any], output: Dict[str, Any]) -> str:
        self.events.append(f"refund {output['charge_id']}")
        return "refunded"

    def release(self, order: Dict[str, Any], output: Dict[str, Any]) -> str:
        self.events.append(f"release {output['reservation']}")
        return "released"

    def on_failure(self, ctx: duro.FailureContext) -> None:
        self.failure_seen = {
            "input": ctx.input,
            "failed_step": ctx.failed_step,
            "error": (ctx.error.error_type, ctx.error.message),
            "completed_steps": ctx.completed_steps,
            "step_outputs": ctx.step_outputs,
        }
        self.events.append("notify customer")


def order_flow(name: str, ledger: Ledger) -> duro.Workflow:
    return (
        duro.workflow(name, retry=FAST, timeout="1m")
        .step("reserve-inventory", ledger.reserve, compensate=ledger.release)
        .step("charge-card", ledger.charge, idempotency_key=lambda o: f"charge:{o['order_id']}", compensate=ledger.refund)
        .step("ship", ledger.ship)
        .on_failure(ledger.on_failure)
    )


ORDER = {"order_id": "o-1", "sku": "book", "amount": 30}


def test_the_seed_example_succeeds(engine: duro.Engine, name: str) -> None:
    ledger = Ledger(ship_fails=False)
    result = order_flow(name, ledger).run(ORDER, engine=engine, run_id="o-1").result(timeout=30)
    assert result.ok
    assert result.value == {
        "reserve-inventory": {"reservation": "res-o-1"},
        "charge-card": {"charge_id": "ch-o-1"},
        "ship": {"tracking": "T-1"},
    }
    assert ledger.events == ["reserve book", "charge 30 key=charge:o-1", "ship res-o-1"]


def test_the_seed_example_failure_path_refunds_and_releases_in_reverse(engine: duro.Engine, name: str) -> None:
    ledger = Ledger(ship_fails=True)
    result = order_flow(name, ledger).run(ORDER, engine=engine, run_id="o-2").result(timeout=30)
    assert not result.ok and result.status == "failed"
    assert ledger.events == [
        "reserve book",
        "charge 30 key=charge:o-1",
        "refund ch-o-1",
        "release res-o-1",
        "notify customer",
    ]
    assert result.error is not None
    assert (result.error.failed_step, result.error.error_type, result.error.message) == ("ship", "ConnectionError", "carrier API down")
    assert result.error.attempt == 3, "ship was retried per the policy before giving up"
    assert ledger.failure_seen == {
        "input": ORDER,
        "failed_step": "ship",
        "error": ("ConnectionError", "carrier API down"),
        "completed_steps": ["reserve-inventory", "charge-card"],
        "step_outputs": {"reserve-inventory": {"reservation": "res-o-1"}, "charge-card": {"charge_id": "ch-o-1"}},
    }
    kinds = [(e.kind, e.name, e.status) for e in result.error.journal]
    assert kinds == [
        ("step", "reserve-inventory", "completed"),
        ("step", "charge-card", "completed"),
        ("step", "ship", "failed"),
        ("compensation", "charge-card", "completed"),
        ("compensation", "reserve-inventory", "completed"),
        ("on_failure", "on_failure", "completed"),
    ]


def test_a_compensation_that_finally_fails_is_recorded_not_swallowed(engine: duro.Engine, name: str) -> None:
    def refund(order: Any, output: Any) -> None:
        raise RuntimeError("refund API rejected")

    flow = (
        duro.workflow(name, retry=ONCE)
        .step("charge", lambda o: {"id": 1}, compensate=refund)
        .step("ship", lambda o: 1 / 0)
    )
    result = flow.run(None, engine=engine).result(timeout=30)
    assert result.error is not None
    assert result.error.error_type == "ZeroDivisionError"
    assert [(c.step, c.error_type, c.message) for c in result.error.compensation_errors] == [
        ("charge", "RuntimeError", "refund API rejected")
    ]
    assert "compensation of \"charge\" failed" in result.error.message


def test_compensations_and_on_failure_are_retried_per_policy(engine: duro.Engine, name: str) -> None:
    attempts: List[int] = []

    def release(order: Any, output: Any, ctx: duro.StepContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise TimeoutError("inventory busy")

    flow = duro.workflow(name, retry=FAST).step("reserve", lambda o: 1, compensate=release).step(
        "fail", lambda o: 1 / 0, retryable=False
    )
    result = flow.run(None, engine=engine).result(timeout=30)
    assert result.status == "failed" and attempts == [1, 2, 3]
    assert result.error is not None and result.error.compensation_errors == []


def test_cancel_with_compensation_undoes_completed_steps(engine: duro.Engine, name: str) -> None:
    undone: List[str] = []
    flow = (
        duro.workflow(name)
        .step("a", lambda o: "A", compensate=lambda o, out: undone.append(out))
        .wait_for_event("go")
        .step("b", lambda o: "B", compensate=lambda o, out: undone.append(out))
    )
    handle = flow.run(None, engine=engine)
    _wait_for_status(handle, "waiting")
    handle.cancel(compensate=True)
    result = handle.result(timeout=30)
    assert result.status == "cancelled" and undone == ["A"]
    assert result.error is not None and result.error.error_type == "Cancelled"


class Response:
    """What an HTTP client returns: not JSON-serialisable."""

    status_code = 200

    def __repr__(self) -> str:
        return "<Response [200]>"


def test_compensations_and_on_failure_returning_unencodable_values_count_as_done(engine: duro.Engine, name: str) -> None:
    calls: List[str] = []

    def refund(order: Any, output: Any) -> Response:
        calls.append("refund")
        return Response()  # the refund happened; the response object is just what the client returned

    def notify(ctx: duro.FailureContext) -> Any:
        calls.append("notify")
        return {"sent": object()}

    flow = (
        duro.workflow(name, retry=FAST)
        .step("charge", lambda o: {"id": 1}, compensate=refund)
        .step("ship", lambda o: 1 / 0, retryable=False)
        .on_failure(notify)
    )
    result = flow.run(None, engine=engine).result(timeout=30)
    assert result.error is not None and result.error.error_type == "ZeroDivisionError"
    assert result.error.compensation_errors == [], "the compensation ran: it must not be recorded as failed"
    assert "compensation" not in result.error.message
    assert calls == ["refund", "notify"], "each handler ran once, and was not retried"
    entries = {(e.kind, e.name): e for e in result.error.journal}
    refunded = entries[("compensation", "charge")]
    assert (refunded.status, refunded.attempt) == ("completed", 1)
    assert refunded.output == "<unrecorded Response: <Response [200]>>"
    notified = entries[("on_failure", "on_failure")]
    assert notified.status == "completed"
    assert isinstance(notified.output, str) and notified.output.startswith("<unrecorded dict: {'sent': <object object")


def test_encodable_compensation_results_are_recorded_as_returned(engine: duro.Engine, name: str) -> None:
    flow = (
        duro.workflow(name, retry=ONCE)
        .step("charge", lambda o: {"id": 1}, compensate=lambda o, out: {"refund_id": "r-1"})
        .step("ship", lambda o: 1 / 0)
    )
    result = flow.run(None, engine=engine).result(timeout=30)
    assert result.error is not None
    [refunded] = [e for e in result.error.journal if e.kind == "compensation"]
    assert refunded.output == {"refund_id": "r-1"}


def _wait_for_status(handle: duro.RunHandle, status: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while handle.status() != status:
        assert time.monotonic() < deadline, f"run never reached {status!r} (is {handle.status()!r})"
        time.sleep(0.01)
