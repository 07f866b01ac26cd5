"""Helpers shared by the test files (fixtures live in conftest.py)."""

from __future__ import annotations

import duro

#: Retries that finish fast in tests (no jitter, so delays are exact lower bounds).
FAST = duro.Retry(max_attempts=3, initial_delay="20ms", multiplier=2.0, jitter=0.0)
ONCE = duro.Retry(max_attempts=1)
