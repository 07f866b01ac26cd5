#!/usr/bin/env bash
# Sets up what the tests need from this repository's own files, then runs
# every test: the Rust workspace and the Python suites (through the real
# native module). Works on a fresh machine with Rust, Python 3 and network
# access to crates.io and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# Builds duro._core with maturin (declared in pyproject.toml) and installs the test tools.
.venv/bin/python -m pip install --quiet ".[test]"

# duro-py is a Python extension (linked by the interpreter that loads it); it is tested through pytest.
cargo test --workspace --exclude duro-py --locked

.venv/bin/python -m pytest "$@"
