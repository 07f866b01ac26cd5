"""DBOS Transact definitions used by the measurements, and how it is opened.

Usage follows the peers' section of BENCHMARKS.md: ``DBOSConfig(name=...,
system_database_url=URL)``, steps ``@DBOS.step() def noop(i): return i``,
workflows started with ``DBOS.start_workflow`` and awaited with
``.get_result()`` (``start_workflow_async`` / ``await handle.get_result()``
for the asyncio variant, with ``async def`` steps and workflows).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from typing import Any, Dict, List, Optional

from dbos import DBOS, DBOSConfig

STARTS: List[float] = []
GATE: Dict[str, Optional[str]] = {"release": None, "reached": None}
LAST: Dict[str, Optional[float]] = {"started": None}
SLEEPS = {"entered": 0, "recorded": 0}


def open_dbos(p: Dict[str, Any]) -> None:
    """Constructs DBOS on the backend named in ``p`` and launches it (recovering pending runs)."""
    url = p["url"]
    if p["backend"] == "sqlite-wal":
        # WAL is a property of the file: set it before DBOS opens it.
        con = sqlite3.connect(url[len("sqlite:///"):])
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        con.close()
        assert mode == "wal", mode
    DBOS(
        config=DBOSConfig(
            name="duro-bench",
            system_database_url=url,
            application_version="duro-bench-1",
            log_level="WARNING",
        )
    )
    DBOS.launch()


def describe_sqlite(url: str) -> Dict[str, Any]:
    """journal_mode and synchronous as a new connection to DBOS's file sees them."""
    con = sqlite3.connect(url[len("sqlite:///"):])
    try:
        return {
            "journal_mode": con.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": con.execute("PRAGMA synchronous").fetchone()[0],
        }
    finally:
        con.close()


# -- steps -----------------------------------------------------------------------------------


@DBOS.step()
def noop(x: Any) -> Any:
    STARTS.append(time.perf_counter())
    return x


@DBOS.step()
async def anoop(x: Any) -> Any:
    STARTS.append(time.perf_counter())
    return x


def _reached() -> bool:
    LAST["started"] = time.perf_counter()
    release, reached = GATE["release"], GATE["reached"]
    if release is None or os.path.exists(release):
        return True
    if reached is not None:
        with open(reached, "w") as f:
            f.write(str(os.getpid()))
    return False


@DBOS.step()
def last(x: Any) -> Any:
    if not _reached():
        while not os.path.exists(GATE["release"] or ""):
            time.sleep(0.01)
    return x


@DBOS.step()
async def alast(x: Any) -> Any:
    if not _reached():
        while not os.path.exists(GATE["release"] or ""):
            await asyncio.sleep(0.01)
    return x


# -- workflows -------------------------------------------------------------------------------


@DBOS.workflow()
def chain(n: int, x: Any) -> Any:
    y = None
    for _ in range(n):
        y = noop(x)
    return y


@DBOS.workflow()
async def achain(n: int, x: Any) -> Any:
    y = None
    for _ in range(n):
        y = await anoop(x)
    return y


@DBOS.workflow()
def chain_last(n: int, x: Any) -> Any:
    for _ in range(n - 1):
        noop(x)
    return last(x)


@DBOS.workflow()
async def achain_last(n: int, x: Any) -> Any:
    for _ in range(n - 1):
        await anoop(x)
    return await alast(x)


@DBOS.workflow()
async def anap(i: int) -> int:
    SLEEPS["entered"] += 1
    await DBOS.sleep_async(3600)
    return i


def count_recorded_sleeps() -> None:
    """Counts sleeps once DBOS has recorded them (wraps its internal record_sleep; observation only)."""
    import dbos._dbos as internals

    original = getattr(internals, "record_sleep", None)
    if original is None:
        return

    def counted(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        SLEEPS["recorded"] += 1
        return out

    internals.record_sleep = counted
