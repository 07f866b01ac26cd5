"""Summaries, the comparison tables (Markdown, also printed), and the JSON/Markdown files."""

from __future__ import annotations

import json
import os
import statistics
from typing import Any, Callable, Dict, List, Optional, Tuple

from plan import PEERS

NAMES = {"duro": "duro", "dbos-sqlite": "DBOS SQLite (default)", "dbos-sqlite-wal": "DBOS SQLite WAL", "dbos-pg": "DBOS PostgreSQL"}
HIGHER, LOWER = True, False

#: workload -> (title, [(metric, label, higher_is_better)])
SECTIONS: List[Tuple[str, str, List[Tuple[str, str, Optional[bool]]]]] = [
    ("seq", "1. One run × {seq_steps} sequential steps", [
        ("steps_per_s", "steps/s", HIGHER),
        ("step_gap_p50_us", "step latency p50 (µs)", LOWER),
        ("step_gap_p99_us", "step latency p99 (µs)", LOWER),
    ]),
    ("conc", "2. {conc_runs} runs × {conc_steps} steps started at once", [
        ("steps_per_s", "steps/s", HIGHER),
        ("runs_per_s", "runs/s", HIGHER),
        ("run_latency_p99_ms", "run latency p99, start → result (ms)", LOWER),
    ]),
    ("replay", "3. Replay: a {replay_steps}-step run SIGKILLed in its last step, resumed by a fresh process", [
        ("us_per_recorded_step_marginal", "µs per recorded step: slope of (open → last step starts) from {replay_steps} to {replay_long_steps} steps (peers: to 4000; the store's open cost cancels out)", LOWER),
        ("us_per_recorded_step", "(open → last step starts) ÷ {replay_steps} steps, the store's open included", LOWER),
        ("open_to_result_ms", "engine open → result (ms)", LOWER),
        ("engine_open_ms", "of which the open call (ms; duro: Engine(), which already replays; DBOS: DBOS() + launch(), recovery goes on after)", None),
        ("restart_to_result_ms", "process spawn → result, imports included (ms)", LOWER),
    ]),
    ("memory", "5. Memory: {mem_runs} sleeping runs", [
        ("kib_per_sleeping_run", "KiB per sleeping run", LOWER),
        ("kib_per_run_peak", "peak KiB per run (VmHWM)", LOWER),
    ]),
]

Target = Tuple[str, Callable[[float], bool]]

#: Figures that grow with the number of runs started at once: no ratio when the sizes differ (--quick).
SIZE_DEPENDENT = {"run_latency_p99_ms", "run_latency_p50_ms"}


def _runs(res: "Results", workload: str, system: str) -> Any:
    return res.data["sizes"][system].get("conc_runs" if workload == "conc" else "mem_runs")


def target(workload: str, metric: str, api: str) -> Optional[Target]:
    if workload == "seq" and metric == "steps_per_s":
        return "≥ 8,000", lambda v: v >= 8000
    if workload == "conc" and metric == "steps_per_s":
        return ("≥ 100,000", lambda v: v >= 100_000) if api == "async" else ("≥ 50,000", lambda v: v >= 50_000)
    if workload == "replay" and metric == "us_per_recorded_step_marginal":
        return "≤ 2", lambda v: v <= 2
    if workload == "replay" and metric == "open_to_result_ms":
        return "≤ 50", lambda v: v <= 50
    if workload == "memory" and metric == "kib_per_sleeping_run":
        return "≤ 2", lambda v: v <= 2
    return None


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    ok = [r for r in runs if not r.get("error")]
    keys = sorted({k for r in ok for k in r.get("metrics", {})})
    out = {}
    for k in keys:
        vals = [r["metrics"][k] for r in ok if k in r["metrics"]]
        out[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}
    return out


def num(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell(s: Optional[Dict[str, float]]) -> str:
    if not s:
        return "—"
    text = num(s["median"])
    if s["n"] > 1:
        text += f" [{num(s['min'])}–{num(s['max'])}]"
    return text


def ratio(duro: float, peer: float, higher: bool) -> str:
    if not duro or not peer:
        return ""
    r = duro / peer if higher else peer / duro
    return f"{r:,.0f}×" if r >= 10 else f"{r:.2g}×" if r >= 1 else f"{r:.2f}×"


class Results:
    def __init__(self, data: Dict[str, Any]) -> None:
        self.data = data
        self.by_id: Dict[str, Dict[str, Any]] = data["results"]

    def find(self, workload: str, api: Optional[str], payload: Optional[str], system: str) -> Optional[Dict[str, Any]]:
        for entry in self.by_id.values():
            s = entry["spec"]
            if s["workload"] == workload and s["system"] == system and (api is None or s.get("api") == api) and (
                payload is None or s.get("payload") == payload
            ):
                return entry
        return None

    def stat(self, workload: str, api: Optional[str], payload: Optional[str], system: str, metric: str) -> Optional[Dict[str, float]]:
        if metric == "us_per_recorded_step_marginal":
            return self._marginal(api, payload, system)
        entry = self.find(workload, api, payload, system)
        return None if entry is None else entry["summary"].get(metric)

    def _marginal(self, api: Optional[str], payload: Optional[str], system: str) -> Optional[Dict[str, float]]:
        """Slope of (open → last step starts) between the two replay sizes, in µs per step."""
        short, long_ = self.find("replay", api, payload, system), self.find("replay_long", api, payload, system)
        if not short or not long_:
            return None
        a, b = short["summary"].get("us_per_recorded_step"), long_["summary"].get("us_per_recorded_step")
        if not a or not b:
            return None
        n1, n2 = short["spec"]["steps"], long_["spec"]["steps"]
        slope = (b["median"] * n2 - a["median"] * n1) / (n2 - n1)
        low = (b["min"] * n2 - a["max"] * n1) / (n2 - n1)
        high = (b["max"] * n2 - a["min"] * n1) / (n2 - n1)
        return {"median": slope, "min": low, "max": high, "n": min(a["n"], b["n"])}


def comparison_tables(res: Results) -> Tuple[str, List[Dict[str, Any]]]:
    """Markdown tables, and the list of target checks."""
    peers = [p for p in PEERS if p in res.data["systems"]]
    sizes = res.data["sizes"]["duro"]
    lines: List[str] = []
    checks: List[Dict[str, Any]] = []
    head = "| metric | API | payload | target | duro | met | " + " | ".join(f"{NAMES[p]} (duro ×)" for p in peers) + " |"
    sep = "|" + "---|" * (6 + len(peers))
    for workload, title, metrics in SECTIONS:
        if not any(e["spec"]["workload"] == workload for e in res.by_id.values()):
            continue
        lines += ["", f"### {title.format(**sizes)}", "", head, sep]
        combos = [(None, None)] if workload == "memory" else [(a, p) for a in ("sync", "async") for p in ("noop", "json")]
        for metric, label, higher in metrics:
            for api, payload in combos:
                d = res.stat(workload, api, payload, "duro", metric)
                api_shown = api or "duro: run_many; DBOS: async"
                tgt = target(workload, metric, api or "sync")
                met = ""
                if tgt and d:
                    ok = tgt[1](d["median"])
                    met = "met" if ok else "**not met**"
                    checks.append({"workload": workload, "metric": metric, "api": api, "payload": payload,
                                   "target": tgt[0], "duro": d["median"], "met": ok})
                row = [label.format(**sizes), api_shown, payload or "—", tgt[0] if tgt else "", cell(d), met]
                for p in peers:
                    s = res.stat(workload, api, payload, p, metric)
                    if s and d and higher is None:
                        row.append(cell(s))
                        continue
                    if s and d and metric in SIZE_DEPENDENT and _runs(res, workload, p) != _runs(res, workload, "duro"):
                        row.append(cell(s) + f" ({_runs(res, workload, p)} runs: not comparable)")
                        continue
                    row.append(cell(s) + (f" · {ratio(d['median'], s['median'], higher)}" if s and d else ""))
                lines.append("| " + " | ".join(row) + " |")
    lines += ["", "duro × = how many times better duro is than that peer on the line (higher is better for duro; "
              "below 1× the peer is better). Cells: median [min–max] over the repeats."]
    return "\n".join(lines), checks


def floors_table(res: Results) -> str:
    rows = [
        ("fdatasync_append", None, "64 B os.write + fdatasync (appending)"),
        ("fdatasync_prezeroed", None, "64 B os.pwrite + fdatasync into a pre-zeroed file"),
        ("sqlite_commits", "wal", "Python sqlite3, 1-row INSERT per commit, WAL + synchronous=FULL"),
        ("sqlite_commits", "delete", "Python sqlite3, 1-row INSERT per commit, rollback journal + FULL"),
        ("pg_commits", None, "PostgreSQL, psycopg autocommit 1-row INSERT"),
    ]
    if not any(e["spec"]["system"] == "floor" for e in res.by_id.values()):
        return ""
    n = next(e["spec"].get("n") for e in res.by_id.values() if e["spec"]["system"] == "floor")
    out = ["", f"### Floors (same filesystem, {n} operations each)", "", "| floor | per op p50 (µs) | p99 (µs) | ops/s |", "|---|---|---|---|"]
    for workload, api, label in rows:
        e = res.find(workload, api, None, "floor")
        if e is None or not e["summary"]:
            continue
        s = e["summary"]
        out.append(f"| {label} | {cell(s.get('op_p50_us'))} | {cell(s.get('op_p99_us'))} | {cell(s.get('ops_per_s'))} |")
    b = res.find("fdatasync_batches", None, None, "floor")
    if b and b["summary"]:
        batches = b["spec"]["batches"]
        for mode in ("append", "zeroed"):
            vals = " / ".join(num(b["summary"][f"records_per_s_{mode}_{n}"]["median"]) for n in batches)
            what = "appending" if mode == "append" else "pre-zeroed"
            out.append(f"| 100 B records, one fdatasync per batch of {' / '.join(map(str, batches))} ({what}): records/s | | | {vals} |")
    sync = res.find("fdatasync_append", None, None, "floor")
    zero = res.find("fdatasync_prezeroed", None, None, "floor")
    d = res.stat("seq", "sync", "noop", "duro", "steps_per_s")
    if d and sync and sync["summary"] and zero and zero["summary"]:
        per_step = 1e6 / d["median"]
        out += ["", f"duro sequential (sync, no-op): {per_step:,.0f} µs per step = "
                f"{per_step / sync['summary']['op_p50_us']['median']:.2f} × one appending fdatasync, "
                f"{per_step / zero['summary']['op_p50_us']['median']:.2f} × one pre-zeroed fdatasync "
                "(the target of 8,000 steps/s asks for ≤ 1.2 × one fdatasync per step)."]
    return "\n".join(out)


def durability(res: Results) -> str:
    info: Dict[str, Any] = {}
    for system in ("dbos-sqlite", "dbos-sqlite-wal"):
        e = res.find("seq", "sync", "noop", system)
        info[system] = (e or {}).get("runs", [{}])[0].get("store", {}) if e else {}
    sync_names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}

    def sq(system: str, default: str) -> str:
        i = info.get(system) or {}
        return f"journal_mode={i.get('journal_mode', default)}, synchronous={sync_names.get(i.get('synchronous'), 'FULL (default)')}"

    pg = res.data.get("postgres") or {}
    lines = [
        "### What each system does before it acknowledges a step",
        "",
        "- **duro**: `duro.Engine(dir)` (embedded store, default `fsync=True`): the step's checkpoint is in the "
        "write-ahead log and fdatasync'd (group commit: one fdatasync for whatever is waiting) before the next step starts.",
        f"- **DBOS SQLite (default)**: DBOS leaves SQLite as is: {sq('dbos-sqlite', 'delete')}: every commit syncs the journal and the database.",
        f"- **DBOS SQLite WAL**: `PRAGMA journal_mode=WAL` set on the file before DBOS opens it: {sq('dbos-sqlite-wal', 'wal')}: every commit fsyncs the WAL.",
    ]
    if pg:
        lines.append(
            f"- **DBOS PostgreSQL** {pg.get('version', '')} on 127.0.0.1, fresh database per measurement: synchronous_commit={pg.get('synchronous_commit')}, "
            f"fsync={pg.get('fsync')}, wal_sync_method={pg.get('wal_sync_method')}: the WAL is flushed before a commit returns."
        )
    return "\n".join(lines)


def header(data: Dict[str, Any]) -> str:
    m = data["machine"]
    disk = m["disk"]
    v = data["versions"]
    busy = m.get("busy_at_start") or []
    load = ", ".join(f"{x:.2f}" for x in m["load_at_start"])
    load_end = ", ".join(f"{x:.2f}" for x in data.get("load_at_end", []))
    if busy:
        quiet = "**under load** (other builds/tests were running: " + "; ".join(busy)[:200] + ")"
    elif m["load_at_start"][0] >= 0.5:
        quiet = "**not quiet**: 1-minute load average ≥ 0.5 at the start (no build or test process was running)"
    else:
        quiet = "quiet"
    return "\n".join([
        f"# duro benchmarks — {data['mode']} run",
        "",
        f"- date: {m['date']}; git commit: `{m['git_commit']}`",
        f"- command: `{m['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, kernel {m['kernel']}",
        f"- bench directory: `{disk.get('path')}` on {disk.get('source', '?')} ({disk.get('fstype', '?')}, {disk.get('options', '?')}"
        + (f", rotational={disk['rotational']}" if "rotational" in disk else "") + ")",
        f"- software: Python {v['python']}, duro {v['duro']}, dbos {v['dbos']} (SQLAlchemy {v['sqlalchemy']}, psycopg {v['psycopg']}), SQLite {v['sqlite']}",
        f"- load average at start: {load}; at end: {load_end} — {quiet}",
        f"- repeats: {repeats_note(data)}; duration {data.get('duration_s', 0):.0f} s",
    ])


def repeats_note(data: Dict[str, Any]) -> str:
    """How many fresh processes each measurement got (more for quick ones, see run.py)."""
    counts = [len(entry["runs"]) for entry in data["results"].values()]
    text = f"{data['repeats']} fresh process(es) per measurement"
    min_seconds = data.get("min_seconds") or 0
    if counts and max(counts) > data["repeats"]:
        text += (
            f", quick ones repeated until their runs took {min_seconds:g} s (at most {data.get('max_repeats')}):"
            f" {min(counts)}–{max(counts)} per measurement"
        )
    return text


def sizes_note(data: Dict[str, Any]) -> str:
    d = data["sizes"]["duro"]
    lines = ["", "### Sizes and method", ""]
    for system in data["systems"]:
        s = data["sizes"][system]
        if system != "duro" and s != d:
            diff = ", ".join(f"{k}={v}" for k, v in s.items() if d.get(k) != v and k != "floor_n")
            lines.append(f"- {NAMES[system]} ran smaller sizes than duro ({diff}); rates and per-run figures compare, totals (run latency) do not.")
    lines += [f"- {n}" for n in data.get("notes", [])]
    return "\n".join(lines)


def errors_section(data: Dict[str, Any]) -> str:
    errs = [(i, r["error"]) for i, e in data["results"].items() for r in e["runs"] if r.get("error")]
    if not errs:
        return ""
    out = ["", "### Failures", ""]
    for i, err in errs:
        out += [f"- `{i}`:", "", "```", err.strip()[-1500:], "```"]
    return "\n".join(out)


def render(data: Dict[str, Any]) -> Tuple[str, List[Dict[str, Any]]]:
    res = Results(data)
    tables, checks = comparison_tables(res)
    met = sum(c["met"] for c in checks)
    summary = f"\nTargets met: {met} of {len(checks)}."
    md = "\n".join([header(data), "", durability(res), tables, summary, floors_table(res), sizes_note(data), errors_section(data), ""])
    return md, checks


def write(data: Dict[str, Any], outdir: str, name: str = "latest") -> str:
    md, checks = render(data)
    data["target_checks"] = checks
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, f"{name}.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)
    with open(os.path.join(outdir, f"{name}.md"), "w") as f:
        f.write(md)
    return md
