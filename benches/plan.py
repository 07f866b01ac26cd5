"""Which measurements a run makes, and at what sizes."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

SYSTEMS = ("duro", "dbos-sqlite", "dbos-sqlite-wal", "dbos-pg")
PEERS = SYSTEMS[1:]
APIS = ("sync", "async")
PAYLOADS = ("noop", "json")
WORKLOADS = ("seq", "conc", "replay", "memory", "floors")

#: Sizes from the issue; duro always runs them. Peers run them in full mode.
FULL = {"seq_steps": 1000, "conc_runs": 1000, "conc_steps": 10, "replay_steps": 1000, "replay_long_steps": 4000,
        "mem_runs": 10_000, "floor_n": 2000}
#: duro's long replay run. Its slope against the 1000-step run is the cost per recorded
#: step; duro replays a step in a few µs, so between 1000 and 4000 steps the difference
#: (~10 ms) is of the order of the noise of two ~30 ms opens, and the slope's spread over
#: repeats was wider than the target itself. 16,000 steps puts ~50 ms between the two.
#: (A peer at 4000 steps already takes seconds; its slope is not noise-bound.)
DURO_SIZES = {"replay_long_steps": 16_000}
#: Full mode, peers: 10,000 sleeping DBOS runs take ~6 minutes to start per backend; the per-run figure is what compares.
FULL_PEERS = {"mem_runs": 2000}
#: --quick: peers (DBOS runs ~0.5-3k steps/s) get smaller concurrent and memory workloads; rates are per step/run.
QUICK_PEERS = {"conc_runs": 100, "mem_runs": 1000, "floor_n": 500}


def sizes(system: str, quick: bool) -> Dict[str, int]:
    out = dict(FULL)
    if system == "duro":
        out.update(DURO_SIZES)
    else:
        out.update(QUICK_PEERS if quick else FULL_PEERS)
    return out


def build(quick: bool, systems: Sequence[str], workloads: Sequence[str]) -> List[Dict[str, Any]]:
    specs: List[Dict[str, Any]] = []

    def add(**spec: Any) -> None:
        spec["id"] = "/".join(str(spec[k]) for k in ("workload", "api", "payload", "system") if k in spec)
        specs.append(spec)

    if "floors" in workloads:
        n = sizes("floor", quick)["floor_n"]
        add(workload="fdatasync_append", system="floor", n=n)
        add(workload="fdatasync_prezeroed", system="floor", n=n)
        add(workload="fdatasync_batches", system="floor", batches=[8, 64, 512, 4096], records=(20_000 if quick else 100_000))
        add(workload="sqlite_commits", system="floor", api="wal", journal="WAL", n=n)
        add(workload="sqlite_commits", system="floor", api="delete", journal="DELETE", n=n)
        if "dbos-pg" in systems:
            add(workload="pg_commits", system="floor", n=n, backend="pg")
    for system in systems:
        sz = sizes(system, quick)
        backend = {"duro": None, "dbos-sqlite": "sqlite", "dbos-sqlite-wal": "sqlite-wal", "dbos-pg": "pg"}[system]
        for api in APIS:
            for payload in PAYLOADS:
                if "seq" in workloads:
                    add(workload="seq", api=api, payload=payload, system=system, backend=backend, steps=sz["seq_steps"])
                if "conc" in workloads:
                    add(workload="conc", api=api, payload=payload, system=system, backend=backend,
                        runs=sz["conc_runs"], steps=sz["conc_steps"])
                if "replay" in workloads:
                    add(workload="replay", api=api, payload=payload, system=system, backend=backend,
                        steps=sz["replay_steps"])
                    # A second size: the slope between the two is the cost per recorded step
                    # without the fixed cost of opening the store.
                    add(workload="replay_long", api=api, payload=payload, system=system, backend=backend,
                        steps=sz["replay_long_steps"])
        if "memory" in workloads:
            # duro: the workflow has no Python step, so the API only changes how runs start: run_many.
            # DBOS: async workflows (a sleeping sync DBOS workflow holds a thread).
            api = "sync" if system == "duro" else "async"
            add(workload="memory", api=api, payload="noop", system=system, backend=backend, runs=sz["mem_runs"])
    return specs
