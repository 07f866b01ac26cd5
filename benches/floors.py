"""The floors: what the disk and plain SQLite/PostgreSQL commits cost on this machine.

Each runs in a fresh process (through worker.py) in the bench directory, so it
hits the same filesystem as duro's store and DBOS's SQLite file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any, Dict, List

from common import percentile


def _per_op(times: List[float], total: float) -> Dict[str, float]:
    us = [t * 1e6 for t in times]
    return {
        "op_p50_us": percentile(us, 50),
        "op_p99_us": percentile(us, 99),
        "ops_per_s": len(times) / total,
    }


def _timed_syncs(fd: int, n: int, write) -> Dict[str, float]:  # type: ignore[no-untyped-def]
    times = []
    t0 = time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        write(i)
        os.fdatasync(fd)
        times.append(time.perf_counter() - s)
    return _per_op(times, time.perf_counter() - t0)


def _prezeroed(path: str, size: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    chunk = b"\0" * (1 << 20)
    left = size
    while left > 0:
        left -= os.write(fd, chunk[: min(left, len(chunk))])
    os.fsync(fd)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    return fd


def fdatasync_append(p: Dict[str, Any]) -> Dict[str, Any]:
    """os.write of 64 B at the end of a growing file, then os.fdatasync, n times."""
    record = b"r" * 64
    fd = os.open(os.path.join(p["dir"], "append.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        m = _timed_syncs(fd, p["n"], lambda i: os.write(fd, record))
    finally:
        os.close(fd)
    return {"metrics": m, "how": "os.write(64 B, O_APPEND) + os.fdatasync per record"}


def fdatasync_prezeroed(p: Dict[str, Any]) -> Dict[str, Any]:
    """The same 64 B writes into a file already written with zeros and fsynced."""
    record = b"r" * 64
    n = p["n"]
    fd = _prezeroed(os.path.join(p["dir"], "zeroed.bin"), n * 64)
    try:
        m = _timed_syncs(fd, n, lambda i: os.pwrite(fd, record, i * 64))
    finally:
        os.close(fd)
    return {"metrics": m, "how": "os.pwrite(64 B) into a pre-zeroed, fsynced file + os.fdatasync per record"}


def fdatasync_batches(p: Dict[str, Any]) -> Dict[str, Any]:
    """100 B records, one fdatasync per batch, appended and pre-zeroed: records/s."""
    record = b"r" * 100
    out: Dict[str, float] = {}
    for batch in p["batches"]:
        syncs = max(20, p["records"] // batch)
        data = record * batch
        for mode in ("append", "zeroed"):
            path = os.path.join(p["dir"], f"batch-{mode}-{batch}.bin")
            if mode == "append":
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                write = lambda i: os.write(fd, data)  # noqa: E731
            else:
                fd = _prezeroed(path, syncs * len(data))
                write = lambda i: os.pwrite(fd, data, i * len(data))  # noqa: E731
            t0 = time.perf_counter()
            for i in range(syncs):
                write(i)
                os.fdatasync(fd)
            out[f"records_per_s_{mode}_{batch}"] = syncs * batch / (time.perf_counter() - t0)
            os.close(fd)
            os.unlink(path)
    return {"metrics": out, "how": "100 B records, one os.fdatasync per batch"}


def sqlite_commits(p: Dict[str, Any]) -> Dict[str, Any]:
    """Python sqlite3, one single-row INSERT per transaction, synchronous=FULL."""
    con = sqlite3.connect(os.path.join(p["dir"], "floor.sqlite"), isolation_level=None)
    mode = con.execute(f"PRAGMA journal_mode={p['journal']}").fetchone()[0]
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    row = b"v" * 64
    times = []
    t0 = time.perf_counter()
    for i in range(p["n"]):
        s = time.perf_counter()
        con.execute("INSERT INTO t (v) VALUES (?)", (row,))  # autocommit: one transaction each
        times.append(time.perf_counter() - s)
    m = _per_op(times, time.perf_counter() - t0)
    con.close()
    return {
        "metrics": m,
        "how": f"sqlite3 {sqlite3.sqlite_version}, journal_mode={mode}, synchronous=FULL, autocommit INSERT",
    }


def pg_commits(p: Dict[str, Any]) -> Dict[str, Any]:
    """psycopg, autocommit single-row INSERT into the fresh database (server defaults)."""
    import psycopg

    with psycopg.connect(p["url"], autocommit=True) as con:
        settings = {
            k: con.execute(f"SHOW {k}").fetchone()[0]
            for k in ("synchronous_commit", "fsync", "wal_sync_method", "full_page_writes")
        }
        con.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v BYTEA)")
        row = b"v" * 64
        times = []
        t0 = time.perf_counter()
        for i in range(p["n"]):
            s = time.perf_counter()
            con.execute("INSERT INTO t (v) VALUES (%s)", (row,))
            times.append(time.perf_counter() - s)
        m = _per_op(times, time.perf_counter() - t0)
    return {"metrics": m, "how": "psycopg autocommit 1-row INSERT over 127.0.0.1", "settings": settings}
