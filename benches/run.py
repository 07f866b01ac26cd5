"""duro benchmark suite: duro against DBOS Transact and the disk floors, on this machine, in one go.

    .venv/bin/python benches/run.py            # full: spec sizes for everyone, 3 repeats
    .venv/bin/python benches/run.py --quick    # a few minutes: 1 repeat, smaller peer sizes

Writes benches/results/latest.{json,md} and prints the tables. See benches/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import execute  # noqa: E402
import plan  # noqa: E402
import report  # noqa: E402
import sysinfo  # noqa: E402

NOTES = [
    "Every measurement runs in a fresh process (DBOS holds global state); seq and conc first run one 10-step warm-up workflow in that process.",
    "Sequential steps/s = steps ÷ (time from the start call to the result); step latency = time between consecutive step starts, taken inside the step function with time.perf_counter.",
    "Concurrent, sync API: duro starts all runs with one flow.run_many call (one fsync), DBOS with DBOS.start_workflow in a loop; results are then awaited in start order, so a run's latency is start → the return of its result call. asyncio API: one task per run (start, then await the result), gathered.",
    "duro's result holds every step's output (decoded); the DBOS workflow returns its last step's output.",
    "Replay: the child is SIGKILLed while the last step waits on a file; µs per recorded step = (engine open → last step starts) ÷ the run's step count. For DBOS, engine open = DBOS(config) + DBOS.launch() (which recovers the run), and the recovered run's handle polls every 10 ms (DBOS's default is 1 s, which would add up to 1 s).",
    "Memory: duro's workflow is only .sleep('nap', '1h') (no Python step runs; started with run_many); DBOS's is an async workflow awaiting DBOS.sleep_async(3600), since a sleeping sync DBOS workflow holds a thread. 'Sleeping' = every sleep recorded (duro: engine.stats() timers; DBOS: its internal record_sleep returned, observed by a counting wrapper). RSS is read 1 s later, run handles dropped.",
]


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repeat and smaller peer sizes (a few minutes)")
    ap.add_argument("--repeats", type=int, help="fresh-process repeats per measurement (default 3, quick 1)")
    ap.add_argument(
        "--min-seconds",
        type=float,
        help="then repeat a measurement whose runs took less than this in all, up to --max-repeats "
        "(default 4 s; quick 0): a 0.2 s measurement gets enough samples for its median",
    )
    ap.add_argument("--max-repeats", type=int, default=11, help="repeats at most, with --min-seconds (default 11)")
    ap.add_argument("--systems", default=",".join(plan.SYSTEMS), help="comma list of " + ",".join(plan.SYSTEMS))
    ap.add_argument("--only", default=",".join(plan.WORKLOADS), help="comma list of " + ",".join(plan.WORKLOADS))
    ap.add_argument("--workdir", default=os.path.join(HERE, ".work"), help="where stores live (same filesystem for all)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="where latest.json / latest.md go")
    ap.add_argument("--name", default="latest", help="base name of the result files")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement process before it counts as hung")
    ap.add_argument("--with-rust", action="store_true", help="also run the Rust criterion benches (builds them: minutes)")
    return ap.parse_args()


def rust_benches(outdir: str) -> Dict[str, Any]:
    out_path = os.path.join(outdir, "rust_benches.txt")
    cmds = [["cargo", "bench", "-p", "duro-wal", "--bench", "wal"], ["cargo", "bench", "-p", "duro-core", "--bench", "replay"]]
    codes = []
    with open(out_path, "w") as f:
        for cmd in cmds:
            print("running", " ".join(cmd), "...", flush=True)
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            codes.append(subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode)
    return {"commands": [" ".join(c) for c in cmds], "exit_codes": codes, "output": os.path.relpath(out_path, REPO)}


def main() -> None:
    args = parse()
    repeats = args.repeats or (1 if args.quick else 3)
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if args.quick else 4.0)
    max_repeats = max(repeats, args.max_repeats)
    systems = [s for s in args.systems.split(",") if s]
    workloads = [w for w in args.only.split(",") if w]
    notes = list(NOTES)
    began = time.perf_counter()
    versions = sysinfo.ensure_dependencies()
    pg = None
    if "dbos-pg" in systems:
        why = sysinfo.pg_available()
        if why:
            systems.remove("dbos-pg")
            notes.append(f"DBOS PostgreSQL skipped: no server at {sysinfo.PG_BASE} ({why}).")
        else:
            pg = sysinfo.pg_settings()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = os.path.join(os.path.abspath(args.workdir), stamp)
    os.makedirs(workdir)
    machine = sysinfo.machine(workdir, REPO)
    if machine["disk"].get("fstype") in ("tmpfs", "ramfs"):
        notes.append("WARNING: the bench directory is on a RAM filesystem: fdatasync costs nothing there.")
    specs = plan.build(args.quick, systems, workloads)
    results: Dict[str, Dict[str, Any]] = {s["id"]: {"spec": s, "runs": []} for s in specs}
    def wanted(spec: Dict[str, Any], rep: int) -> bool:
        # Every measurement `repeats` times; then quick ones (a 1000 x 10-step duro run takes
        # 0.1 s, a disturbance of 20 ms moves it by a fifth) again until their runs took
        # `min_seconds` in all. Round by round, so every measurement spans the whole session.
        runs = results[spec["id"]]["runs"]
        if rep < repeats:
            return True
        return rep < max_repeats and float(sum(r["wall_s"] for r in runs)) < min_seconds

    done = 0
    for rep in range(max_repeats):
        todo = [spec for spec in specs if wanted(spec, rep)]
        if not todo:
            break
        for spec in todo:
            done += 1
            total = f"/{len(specs) * repeats}" if rep < repeats else ""
            print(f"[{done}{total}] {spec['id']} (repeat {rep + 1}) ...", end=" ", flush=True)
            out = execute.run_spec(spec, workdir, done, args.timeout)
            results[spec["id"]]["runs"].append(out)
            shown = {k: round(v, 2) for k, v in list(out.get("metrics", {}).items())[:3]}
            print(f"{out['wall_s']:.1f}s {shown}" + (" ERROR" if out.get("error") else ""), flush=True)
            if out.get("error"):
                print("   ", out["error"].strip().splitlines()[-1][:300], flush=True)
    for entry in results.values():
        entry["summary"] = report.summarize(entry["runs"])
    try:
        os.rmdir(workdir)
    except OSError:
        pass
    data: Dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "repeats": repeats,
        "min_seconds": min_seconds,
        "max_repeats": max_repeats,
        "machine": machine,
        "versions": versions,
        "postgres": pg,
        "systems": systems,
        "sizes": {s: plan.sizes(s, args.quick) for s in systems},
        "notes": notes,
        "results": results,
    }
    # Sampled before the criterion build, which would otherwise be the load it shows.
    data["load_at_end"] = os.getloadavg()
    if args.with_rust:
        data["rust_benches"] = rust_benches(args.out)
    data["duration_s"] = time.perf_counter() - began
    md = report.write(data, args.out, args.name)
    print(md)
    print(f"wrote {os.path.join(args.out, args.name)}.json and .md")


if __name__ == "__main__":
    main()
