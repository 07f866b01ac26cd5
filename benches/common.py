"""Helpers shared by the orchestrator and the measurement processes (stdlib only)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Dict, Iterable, List, Sequence

RESULT_PREFIX = "RESULT "


def make_payload(i: int) -> Dict[str, Any]:
    """A small JSON object, ~200 bytes encoded (the "json" payload variant)."""
    return {
        "order_id": f"order-{i:08d}",
        "customer": "customer-0000042",
        "items": [{"sku": f"sku-{k:04d}", "qty": k + 1, "price_cents": 1999} for k in range(2)],
        "currency": "EUR",
        "note": "x" * 40,
    }


def step_input(payload: str, i: int) -> Any:
    return make_payload(i) if payload == "json" else i


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def gaps_us(starts: Iterable[float]) -> List[float]:
    """Microseconds between consecutive step starts."""
    s = list(starts)
    return [(b - a) * 1e6 for a, b in zip(s, s[1:])]


def proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_kib() -> int:
    return proc_status_kib("VmRSS")


def hwm_kib() -> int:
    return proc_status_kib("VmHWM")


def emit(result: Dict[str, Any]) -> None:
    """The last line a measurement process prints: what the orchestrator parses."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def now() -> float:
    return time.perf_counter()


def wait_for_file(path: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
