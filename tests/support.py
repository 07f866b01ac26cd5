"""Helpers shared by the test files (fixtures live in conftest.py)."""

from __future__ import annotations

import os

import duro

#: Retries that finish fast in tests (no jitter, so delays are exact lower bounds).
FAST = duro.Retry(max_attempts=3, initial_delay="20ms", multiplier=2.0, jitter=0.0)
ONCE = duro.Retry(max_attempts=1)


def report_campaign(line: str) -> None:
    """Prints a reliability campaign's summary line and appends it to the file named by
    ``DURO_CAMPAIGN_REPORT`` (scripts/test.sh sets it and prints the file at the end,
    under "Reliability campaigns": pytest swallows what passing tests print).

    The line starts with the campaign's kind ("kills", "bad input", ...) and ends with
    ``violations <n>``."""
    print(line)
    path = os.environ.get("DURO_CAMPAIGN_REPORT")
    if not path:
        return
    # One write of a whole line on an O_APPEND descriptor.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
    finally:
        os.close(fd)
