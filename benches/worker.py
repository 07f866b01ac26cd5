"""One measurement in a fresh process: ``python benches/worker.py '<json spec>'``.

Prints the measurement as the last line (``RESULT {...}``); see common.emit.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit  # noqa: E402

#: (system family, what) -> (module, function)
ENTRIES = {
    ("duro", "seq"): ("workloads.duro_bench", "seq"),
    ("duro", "conc"): ("workloads.duro_bench", "conc"),
    ("duro", "memory"): ("workloads.duro_bench", "memory"),
    ("duro", "replay_child"): ("workloads.duro_replay", "child"),
    ("duro", "replay"): ("workloads.duro_replay", "resume"),
    ("dbos", "seq"): ("workloads.dbos_bench", "seq"),
    ("dbos", "conc"): ("workloads.dbos_bench", "conc"),
    ("dbos", "memory"): ("workloads.dbos_bench", "memory"),
    ("dbos", "replay_child"): ("workloads.dbos_replay", "child"),
    ("dbos", "replay"): ("workloads.dbos_replay", "resume"),
    ("floor", "fdatasync_append"): ("floors", "fdatasync_append"),
    ("floor", "fdatasync_prezeroed"): ("floors", "fdatasync_prezeroed"),
    ("floor", "fdatasync_batches"): ("floors", "fdatasync_batches"),
    ("floor", "sqlite_commits"): ("floors", "sqlite_commits"),
    ("floor", "pg_commits"): ("floors", "pg_commits"),
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    family = "dbos" if spec["system"].startswith("dbos") else spec["system"]
    try:
        module, name = ENTRIES[(family, spec["workload"])]
        out = getattr(importlib.import_module(module), name)(spec)
    except BaseException:  # noqa: BLE001 - report any failure to the orchestrator
        out = {"metrics": {}, "error": traceback.format_exc()}
    emit(out)
    if out.get("exit_without_destroy"):
        os._exit(0)


if __name__ == "__main__":
    main()
