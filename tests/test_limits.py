"""Both stores take the same payload sizes: a raised max_payload_bytes holds in memory and on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

import duro


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_a_raised_payload_limit_holds_in_both_stores(tmp_path: Path, name: str, where: str) -> None:
    path = ":memory:" if where == "memory" else str(tmp_path / "store")
    big = "x" * (5 << 20)  # over the stores' default append limit of 4 MiB
    with duro.Engine(path, max_payload_bytes=6 << 20) as engine:
        result = duro.workflow(name).step("a", lambda i: big).run(None, engine=engine).result(timeout=60)
        assert result.ok, result.error
        assert len(result.value["a"]) == len(big)
        with pytest.raises(duro.PayloadTooLarge):
            duro.workflow(f"{name}-over").step("a", lambda i: 1).run("y" * (7 << 20), engine=engine)
