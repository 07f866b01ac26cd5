"""What machine, software and disk the numbers come from; dependency install; PostgreSQL databases."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
from typing import Any, Dict, List, Optional

DBOS_VERSION = "3.4.0"
PG_BASE = "postgresql://postgres@127.0.0.1:5432"
BUSY_NAMES = ("cargo", "rustc", "pytest", "maturin", "cc1", "ld")


def _run(cmd: List[str], cwd: Optional[str] = None) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def ensure_dependencies() -> Dict[str, str]:
    """Installs the peers into this interpreter's environment when missing; returns versions."""
    try:
        have = importlib.metadata.version("dbos")
    except importlib.metadata.PackageNotFoundError:
        have = None
    if have != DBOS_VERSION:
        print(f"installing dbos=={DBOS_VERSION} into {sys.prefix} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"dbos=={DBOS_VERSION}"], check=True)
    try:
        import duro  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"duro is not importable from {sys.executable} ({exc}); build it first: "
            ".venv/bin/maturin develop --release (or .venv/bin/pip install .)"
        ) from exc
    versions = {}
    for name in ("duro", "dbos", "sqlalchemy", "psycopg"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    versions["python"] = platform.python_version()
    versions["sqlite"] = sqlite3.sqlite_version
    return versions


def _meminfo_kib(field: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def disk_of(path: str) -> Dict[str, str]:
    out = _run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", path])
    parts = out.split(None, 2) if out else []
    info = {"path": os.path.abspath(path)}
    if len(parts) == 3:
        info.update(source=parts[0], fstype=parts[1], options=parts[2])
        dev = os.path.basename(parts[0])
        base = dev.rstrip("0123456789") if not dev.startswith("nvme") else dev.split("p")[0]
        for key, rel in (("rotational", "queue/rotational"), ("model", "device/model")):
            try:
                with open(f"/sys/block/{base}/{rel}") as f:
                    info[key] = f.read().strip()
            except OSError:
                pass
    return info


def busy_processes() -> List[str]:
    lines = _run(["ps", "-eo", "pid,pcpu,comm"]).splitlines()[1:]
    busy = []
    for line in lines:
        fields = line.split(None, 2)
        if len(fields) == 3 and any(fields[2].startswith(n) for n in BUSY_NAMES):
            busy.append(line.strip())
    return busy


def machine(workdir: str, repo: str) -> Dict[str, Any]:
    commit = _run(["git", "rev-parse", "HEAD"], cwd=repo)
    dirty = bool(_run(["git", "status", "--porcelain", "--", "python", "rust", "Cargo.toml", "Cargo.lock"], cwd=repo))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(_meminfo_kib("MemTotal") / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "disk": disk_of(workdir),
        "git_commit": commit + ("-dirty" if dirty else ""),
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, repo)] + sys.argv),
        "load_at_start": os.getloadavg(),
        "busy_at_start": busy_processes(),
    }


# -- PostgreSQL -----------------------------------------------------------------------------------


def pg_available(base: str = PG_BASE) -> Optional[str]:
    """None when the server answers; else why not."""
    try:
        import psycopg

        with psycopg.connect(base + "/postgres", autocommit=True, connect_timeout=3) as con:
            con.execute("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}".strip()


def pg_settings(base: str = PG_BASE) -> Dict[str, str]:
    import psycopg

    with psycopg.connect(base + "/postgres", autocommit=True) as con:
        out = {"version": con.execute("SHOW server_version").fetchone()[0]}
        for k in ("synchronous_commit", "fsync", "wal_sync_method", "full_page_writes"):
            out[k] = con.execute(f"SHOW {k}").fetchone()[0]
    return out


def pg_create(name: str, base: str = PG_BASE) -> str:
    import psycopg

    with psycopg.connect(base + "/postgres", autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def pg_drop(name: str, base: str = PG_BASE) -> None:
    import psycopg

    try:
        with psycopg.connect(base + "/postgres", autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:  # noqa: BLE001
        print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)
