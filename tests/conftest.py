"""Shared fixtures. Workflow names are unique per test: the registry of
definitions is process-wide, like a real application's."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

import duro


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def engine(store_path: Path) -> Iterator[duro.Engine]:
    e = duro.Engine(str(store_path))
    yield e
    e.close()


@pytest.fixture
def memory_engine() -> Iterator[duro.Engine]:
    e = duro.Engine(":memory:")
    yield e
    e.close()


@pytest.fixture
def name() -> str:
    return f"wf-{uuid.uuid4().hex[:10]}"
