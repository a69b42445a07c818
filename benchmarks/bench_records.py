"""What the records store costs: saves, imports, reads, two writers at once.

Runs in a temporary copy of the project with a small demo (3 months). Figures:
median seconds of one validated insert (a finding) and one update, the import of
the demo registers (records per second), `frame()` of the findings after 1,000
more, and two processes inserting 200 findings each at the same moment (wall
seconds, records kept).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from qmsnb.config import load_params
    from qmsnb.records import open_store
    params_dir, go, name, count = sys.argv[1:5]
    store = open_store(load_params(params_dir))
    audit = store.frame("audit_programme").iloc[0]["audit_id"]
    while not Path(go).exists():
        time.sleep(0.005)
    for i in range(int(count)):
        store.insert("findings", {"audit_id": audit, "grade": "ofi", "clause": "8.5.1",
                     "process_id": "C3", "department": "hotline_ops", "statement": f"{name} {i}",
                     "auditor": name, "found_on": "2026-10-12"}, name)
    """
)


def main(args: list[str]) -> dict:
    from qmsnb import demo
    from qmsnb.config import load_params
    from qmsnb.records import open_store

    with tempfile.TemporaryDirectory(prefix="qmsnb-bench-records-") as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "params", root / "params")
        shutil.copytree(REPO / "notebooks", root / "notebooks")
        params = load_params(root / "params")
        demo.build(params, params.data_dir, demo.DemoSpec(months=3, calls_per_month=500))
        started = time.perf_counter()
        counts = demo.seed_store(params, params.registers_dir)
        import_seconds = time.perf_counter() - started
        store = open_store(params)
        audit = store.frame("audit_programme").iloc[0]["audit_id"]
        record = {
            "audit_id": audit,
            "grade": "minor",
            "clause": "8.5.1",
            "process_id": "C3",
            "department": "热线运营部",
            "statement": "x",
            "evidence": "y",
            "auditor": "赵敏",
            "found_on": "2026-10-12",
        }
        inserts, updates = [], []
        for _ in range(50):
            started = time.perf_counter()
            new_id = store.insert("findings", record, "bench")
            inserts.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.update("findings", new_id, {"statement": "y"}, "bench", expected_version=1)
            updates.append(time.perf_counter() - started)
        for _ in range(950):
            store.insert("findings", record, "bench")
        started = time.perf_counter()
        frame = store.frame("findings")
        frame_seconds = time.perf_counter() - started
        before = len(frame)
        script, go = root / "writer.py", root / "go"
        script.write_text(_WRITER, encoding="utf-8")
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), str(params.folder), str(go), name, "200"]
            )
            for name in ("甲", "乙")
        ]
        time.sleep(3)
        started = time.perf_counter()
        go.write_text("go")
        codes = [p.wait() for p in procs]
        both_seconds = time.perf_counter() - started
        kept = len(store.frame("findings")) - before
        store.close()
    return {
        "insert_median_ms": round(1000 * statistics.median(inserts), 1),
        "update_median_ms": round(1000 * statistics.median(updates), 1),
        "demo_import_records": sum(counts.values()),
        "demo_import_records_per_s": round(sum(counts.values()) / import_seconds),
        "frame_rows": before,
        "frame_seconds": round(frame_seconds, 3),
        "two_writers_inserts": 400,
        "two_writers_kept": kept,
        "two_writers_seconds": round(both_seconds, 1),
        "writers_exit_codes": codes,
    }
