"""What `make demo` costs: building the demo data and the full monthly batch.

Runs in a temporary copy of the project so the working tree's data and outputs
are untouched. Figures: wall seconds and peak MiB (whole process tree, kernels
included) of `qmsnb demo` and `qmsnb run --period 2026-10`.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from _util import measure

REPO = Path(__file__).resolve().parents[1]


def main(args: list[str]) -> dict:
    qmsnb = str(Path(sys.executable).with_name("qmsnb"))
    with tempfile.TemporaryDirectory(prefix="qmsnb-bench-demo-") as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "params", root / "params")
        shutil.copytree(REPO / "notebooks", root / "notebooks")
        shutil.copytree(REPO / "expectations", root / "expectations")
        build = measure([qmsnb, "demo"], cwd=root)
        run = measure([qmsnb, "run", "--period", "2026-10"], cwd=root)
        if build.returncode or run.returncode not in (0, 1):
            raise SystemExit(f"demo failed: {build.stderr[-500:]} {run.stderr[-500:]}")
        manifest = json.loads((root / "outputs" / "2026-10" / "manifest.json").read_text())
        reports = sum(r["status"] == "ok" for r in manifest["reports"])
    return {
        "demo_data_seconds": round(build.seconds, 1),
        "demo_data_peak_mib": round(build.peak_mib),
        "batch_seconds": round(run.seconds, 1),
        "batch_peak_mib": round(run.peak_mib),
        "reports": reports,
    }
