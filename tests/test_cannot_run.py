"""A run this process cannot run (its input does not decode with this engine's
codec, or duro itself fails around a step) is blocked, unchanged, with the reason
its waiters get as duro.RunBlocked; the worker goes on with other runs, and the
run resumes once a process that can run it opens the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import duro


class RefusesPoison(duro.JsonCodec):
    """Writes like the JSON codec; cannot read the value "poison" back."""

    def decode(self, data: bytes) -> Any:
        value = super().decode(data)
        if value == "poison":
            raise ValueError("this codec cannot read poison")
        return value


def _define(name: str, api: str, calls: list) -> duro.Workflow:
    if api == "sync":

        def step(x: Any) -> Any:
            calls.append(x)
            return f"done {x}"

    else:

        async def step(x: Any) -> Any:  # type: ignore[misc]
            calls.append(x)
            return f"done {x}"

    return duro.workflow(name).step("only", step)


@pytest.mark.parametrize("api", ["sync", "async"])
def test_an_input_the_codec_cannot_decode_blocks_the_run_and_the_worker_goes_on(
    store_path: Path, name: str, api: str
) -> None:
    calls: list = []
    wf = _define(name, api, calls)
    engine = duro.Engine(str(store_path), codec=RefusesPoison(), workers=1)
    try:
        poisoned = wf.run("poison", engine=engine)
        with pytest.raises(duro.RunBlocked) as raised:
            poisoned.result(timeout=10)
        message = str(raised.value)
        assert poisoned.run_id in message
        assert "codec" in message and "this codec cannot read poison" in message, message
        assert "open the store with the codec that wrote it" in message
        # Nothing was recorded for the step and no retry was spent: the journal
        # holds what it held when the step was handed out.
        journal = poisoned.journal()
        assert [(e.name, e.status) for e in journal] == [("only", "running")], journal
        assert poisoned.meta().blocked == message
        assert calls == []
        # The only worker (or the loop) survived: another run of the same workflow finishes.
        fine = wf.run("fine", engine=engine)
        assert fine.result(timeout=10).value == {"only": "done fine"}
        assert calls == ["fine"]
        with pytest.raises(duro.RunBlocked):
            poisoned.result(timeout=0)
    finally:
        engine.close()

    # A process that can decode it (the codec that wrote it) runs it, once.
    engine = duro.Engine(str(store_path))
    try:
        again = engine.handle(poisoned.run_id)
        assert again.result(timeout=10).value == {"only": "done poison"}
        assert calls == ["fine", "poison"]
    finally:
        engine.close()


def test_result_async_raises_run_blocked(store_path: Path, name: str) -> None:
    calls: list = []
    wf = _define(name, "async", calls)

    async def main() -> None:
        async with duro.Engine(str(store_path), codec=RefusesPoison()) as engine:
            handle = await wf.run_async("poison", engine=engine)
            with pytest.raises(duro.RunBlocked, match="cannot read poison"):
                await handle.result_async(timeout=10)

    asyncio.run(main())
    assert calls == []


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_failure_of_duro_around_a_step_blocks_the_run_instead_of_killing_the_worker(
    store_path: Path, name: str, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list = []

    # Three arguments: both lanes report through Runner.commit (the general path).
    if api == "sync":

        def step(x: Any, prev: Any, ctx: duro.StepContext) -> Any:
            calls.append(x)
            return x

    else:

        async def step(x: Any, prev: Any, ctx: duro.StepContext) -> Any:  # type: ignore[misc]
            calls.append(x)
            return x

    wf = duro.workflow(name).step("only", step)
    engine = duro.Engine(str(store_path), workers=1)
    try:
        real_commit = engine._runner.commit

        def broken_commit(work: Any, ctx: Any, call: Any, raw: bytes, *rest: Any) -> Any:
            if ctx.input == "trips":
                raise RuntimeError("a bug in duro")
            return real_commit(work, ctx, call, raw, *rest)

        monkeypatch.setattr(engine._runner, "commit", broken_commit)
        tripped = wf.run("trips", engine=engine)
        with pytest.raises(duro.RunBlocked, match=r"duro failed while running its step #\d+ \(RuntimeError: a bug in duro\)"):
            tripped.result(timeout=10)
        assert wf.run("fine", engine=engine).result(timeout=10).value == {"only": "fine"}
    finally:
        engine.close()
    # Reopened (the bug gone), the interrupted attempt runs again and the run ends.
    engine = duro.Engine(str(store_path))
    try:
        assert engine.handle(tripped.run_id).result(timeout=10).value == {"only": "trips"}
        assert calls == ["trips", "fine", "trips"]
    finally:
        engine.close()
