"""Retries: the policy's schedule, and every way an error says "don't retry"."""

from __future__ import annotations

from typing import Any, List

import pytest

import duro

from support import FAST, ONCE


def failing(times: int, exc: BaseException) -> Any:
    calls: List[int] = []

    def step(order: Any, prev: Any, ctx: duro.StepContext) -> str:
        calls.append(ctx.attempt)
        if len(calls) <= times:
            raise exc
        return "ok"

    step.calls = calls  # type: ignore[attr-defined]
    return step


def test_a_failing_step_is_retried_until_it_succeeds(engine: duro.Engine, name: str) -> None:
    step = failing(2, TimeoutError("slow gateway"))
    result = duro.workflow(name, retry=FAST).step("call", step).run(None, engine=engine).result(timeout=30)
    assert result.ok and step.calls == [1, 2, 3]


def test_backoff_is_exponential_and_there_is_no_wait_after_the_last_attempt(engine: duro.Engine, name: str) -> None:
    retry = duro.Retry(max_attempts=4, initial_delay="60ms", multiplier=2.0, jitter=0.0)
    step = failing(10, RuntimeError("down"))
    handle = duro.workflow(name, retry=retry).step("call", step).run(None, engine=engine)
    result = handle.result(timeout=30)
    assert not result.ok and step.calls == [1, 2, 3, 4]
    assert result.error is not None
    assert (result.error.failed_step, result.error.error_type, result.error.attempt) == ("call", "RuntimeError", 4)
    entry = result.error.journal[0]
    assert entry.status == "failed" and entry.retry_at is None, "no retry scheduled after the last attempt"
    # Lower bounds only: 60 + 120 + 240 ms of backoff between four attempts.
    assert entry.duration is not None and entry.duration >= 0.42


def test_the_policy_schedule_is_deterministic_and_capped() -> None:
    retry = duro.Retry(max_attempts=10, initial_delay="1s", multiplier=3.0, max_delay="10s", jitter=0.5)
    delays = [retry.delay(n, run_id="r", seq=0) for n in range(1, 6)]
    assert delays == [retry.delay(n, run_id="r", seq=0) for n in range(1, 6)], "same run, same schedule"
    bases = [1.0, 3.0, 9.0, 10.0, 10.0]
    for delay, base in zip(delays, bases):
        assert base * 0.5 <= delay <= base
    assert duro.Retry(max_attempts=5, initial_delay="100ms", jitter=0.0).delay(3) == pytest.approx(0.4)


@pytest.mark.parametrize(
    "how",
    ["NonRetryableError", "retryable attribute", "step retryable=False", "predicate", "policy non_retryable", "policy type name"],
)
def test_non_retryable_errors_fail_the_step_at_once(engine: duro.Engine, name: str, how: str) -> None:
    class Declined(Exception):
        pass

    retry = FAST
    exc: BaseException = ValueError("card declined")
    options: dict = {}
    if how == "NonRetryableError":
        exc = duro.NonRetryableError("card declined")
    elif how == "retryable attribute":
        exc = ValueError("card declined")
        exc.retryable = False  # type: ignore[attr-defined]
    elif how == "step retryable=False":
        options["retryable"] = False
    elif how == "predicate":
        options["retryable"] = lambda e: "declined" not in str(e)
    elif how == "policy non_retryable":
        exc = Declined("card declined")
        retry = duro.Retry(max_attempts=3, initial_delay="20ms", non_retryable=(Declined,))
    else:
        exc = Declined("card declined")
        retry = duro.Retry(max_attempts=3, initial_delay="20ms", non_retryable=("Declined",))
    step = failing(10, exc)
    result = duro.workflow(name, retry=retry).step("charge", step, **options).run(None, engine=engine).result(timeout=30)
    assert not result.ok and step.calls == [1]
    assert result.error is not None and result.error.message == "card declined"


def test_a_per_step_policy_overrides_the_workflow_default(engine: duro.Engine, name: str) -> None:
    step = failing(3, OSError("flaky"))
    flow = duro.workflow(name, retry=ONCE).step("flaky", step, retry=duro.Retry(max_attempts=5, initial_delay="10ms"))
    assert flow.run(None, engine=engine).result(timeout=30).ok
    assert step.calls == [1, 2, 3, 4]


def test_an_error_whose_str_raises_is_still_recorded(engine: duro.Engine, name: str) -> None:
    class Nasty(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    def step(_: Any) -> None:
        raise Nasty()

    result = duro.workflow(name, retry=ONCE).step("nasty", step).run(None, engine=engine).result(timeout=30)
    assert result.error is not None and result.error.error_type == "Nasty"
    assert "__str__ raised RuntimeError" in result.error.message


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 10**9}, "max_attempts"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 2.0}, "jitter"),
        ({"initial_delay": "10s", "max_delay": "1s"}, "max_delay"),
        ({"initial_delay": "soon"}, "initial_delay"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"non_retryable": (42,)}, "non_retryable"),
    ],
)
def test_invalid_policies_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(duro.InvalidArgument, match=field):
        duro.Retry(**kwargs)
