"""Benchmark runner: runs every ``benchmarks/bench_*.py`` (or those named) and records results.

Each benchmark module has ``main(args: list[str]) -> dict`` returning a flat dict
of figures (seconds, MiB, ratios, notes). The runner prints them and writes
``benchmarks/results/<name>.json`` (with the machine and date); ``docs/benchmarks.md``
quotes the recorded results.

    .venv/bin/python benchmarks/run.py            # all
    .venv/bin/python benchmarks/run.py demo gate  # bench_demo.py, bench_gate.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")]
    extra = [a for a in argv if a.startswith("-")]
    files = sorted(HERE.glob("bench_*.py"))
    if names:
        files = [f for f in files if f.stem.removeprefix("bench_") in names]
    for path in files:
        name = path.stem.removeprefix("bench_")
        print(f"== {name}", flush=True)
        load_before = [round(x, 1) for x in os.getloadavg()]
        figures = _load(path).main(extra)
        record = {
            "benchmark": name,
            "date": datetime.now().isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                # 1/5/15-minute load averages: the machine may be shared
                "load_before": load_before,
                "load_after": [round(x, 1) for x in os.getloadavg()],
            },
            "figures": figures,
        }
        out = HERE / "results" / f"{name}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        for key, value in figures.items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
