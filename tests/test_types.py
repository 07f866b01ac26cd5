"""The hand-written stub of the native module matches it, and the package type-checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_core_stub_matches_the_native_module() -> None:
    pytest.importorskip("mypy")
    done = _run("mypy.stubtest", "duro._core")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_type_checks_strictly() -> None:
    pytest.importorskip("mypy")
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
