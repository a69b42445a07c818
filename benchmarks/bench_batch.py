"""The monthly batch with plain sequential papermill and with the warm engine, same run.

In a temporary copy of the project with the demo data (8 departments, 12 months,
20,000 calls a month): the plan of ``params/batch.yaml`` as it is, and a
synthetic plan of 40 reports (the plan's department notebooks repeated under new
ids until there are 5 per department) while the plan has fewer. After one run
that fills the prepare caches (so both engines see the same prepare), each plan
runs ``qmsnb run --engine papermill --jobs 1`` once and ``qmsnb run --engine
warm`` (workers from batch.yaml) three times, unobserved, then each engine once
more with the memory sampler. Figures: wall seconds (warm: the median of three,
all three listed), the ratio, peak memory of the whole process tree (RSS sum and
PSS sum) from the sampled runs, and whether every report's HTML is the same
apart from figure ids and clock times.

    .venv/bin/python benchmarks/run.py batch
"""

from __future__ import annotations

import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from _util import measure, timed

REPO = Path(__file__).resolve().parents[1]
PERIOD = "2026-10"
#: The synthetic plan's size: 5 notebooks × 8 departments.
SYNTHETIC_REPORTS = 40
#: Timed warm-engine runs per plan (the median is reported, hyperfine-style; one
#: papermill run already spans 2-3 minutes of the machine's drift).
WARM_RUNS = 3
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")


def qmsnb() -> str:
    return str(Path(sys.executable).with_name("qmsnb"))


def normalised(page: Path) -> str:
    return _TIME.sub("<time>", _UUID.sub("<uuid>", page.read_text(encoding="utf-8")))


def reports(folder: Path) -> dict[str, str]:
    """Every report page of a period folder (the portal differs by run id and timings)."""
    return {str(p.relative_to(folder)): normalised(p) for p in sorted(folder.glob("*/*.html"))}


def synthetic_plan(batch_file: Path, departments: int) -> int:
    """Rewrite batch.yaml: the department notebooks cycled to 40 reports. Returns the count."""
    plan = yaml.safe_load(batch_file.read_text(encoding="utf-8"))
    real = [nb for nb in plan["notebooks"] if "department" in nb["scope"]]
    per_department = SYNTHETIC_REPORTS // departments
    entries = []
    for i in range(per_department):
        base = dict(real[i % len(real)])
        copy = i // len(real)
        if copy:
            base["id"] = f"{base['id']}_{copy + 1}"
            base["title"] = {k: f"{v} ({copy + 1})" for k, v in base["title"].items()}
        base["scope"] = ["department"]
        base.pop("departments", None)
        entries.append(base)
    plan["notebooks"] = entries
    batch_file.write_text(
        yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return len(entries) * departments


def run_both(root: Path, label: str) -> dict:
    """Warm the caches, then time papermill (1 worker) once and the warm engine
    (batch.yaml's workers) :data:`WARM_RUNS` times, unobserved; then one run of
    each with the memory sampler for the peaks (see ``_util.timed``)."""
    run = [qmsnb(), "run", "--period", PERIOD]
    papermill = [*run, "--engine", "papermill", "--jobs", "1"]
    warm = [*run, "--engine", "warm"]
    first = timed(run, cwd=root)
    if first.returncode not in (0, 1):
        raise SystemExit(f"{label}: warm-up run failed: {first.stderr[-800:]}")
    plain = timed(papermill, cwd=root)
    plain_pages = reports(root / "outputs" / PERIOD)
    warm_runs = [timed(warm, cwd=root) for _ in range(WARM_RUNS)]
    warm_pages = reports(root / "outputs" / PERIOD)
    plain_memory = measure(papermill, cwd=root, pss=True)
    warm_memory = measure(warm, cwd=root, pss=True)
    for name, m in (("papermill", plain), ("warm", warm_runs[-1])):
        if m.returncode not in (0, 1):
            raise SystemExit(f"{label} {name} failed: {m.stderr[-800:]}")
    different = [k for k in plain_pages if warm_pages.get(k) != plain_pages[k]]
    warm_seconds = statistics.median(m.seconds for m in warm_runs)
    return {
        f"{label}_reports": len(warm_pages),
        f"{label}_papermill_seconds": round(plain.seconds, 1),
        f"{label}_warm_seconds": round(warm_seconds, 1),
        f"{label}_warm_runs": [round(m.seconds, 1) for m in warm_runs],
        f"{label}_ratio": round(plain.seconds / warm_seconds, 1),
        f"{label}_papermill_peak_rss_mib": round(plain_memory.peak_mib),
        f"{label}_papermill_peak_pss_mib": round(plain_memory.peak_pss_mib),
        f"{label}_warm_peak_rss_mib": round(warm_memory.peak_mib),
        f"{label}_warm_peak_pss_mib": round(warm_memory.peak_pss_mib),
        f"{label}_observed_seconds": {
            "papermill": round(plain_memory.seconds, 1),
            "warm": round(warm_memory.seconds, 1),
        },
        f"{label}_identical_reports": not different and set(plain_pages) == set(warm_pages),
        f"{label}_different": different[:5],
    }


def main(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="qmsnb-bench-batch-") as tmp:
        root = Path(tmp)
        for folder in ("params", "notebooks", "expectations"):  # the run gates the exports
            shutil.copytree(REPO / folder, root / folder)
        build = measure([qmsnb(), "demo"], cwd=root)
        if build.returncode:
            raise SystemExit(f"demo failed: {build.stderr[-800:]}")
        departments = len(
            yaml.safe_load((root / "params" / "organisation.yaml").read_text(encoding="utf-8"))[
                "departments"
            ]
        )
        figures: dict = {"departments": departments}
        if "--synthetic-only" not in args:
            figures.update(run_both(root, "plan"))
        if figures.get("plan_reports", 0) < SYNTHETIC_REPORTS or "--synthetic-only" in args:
            figures["synthetic_plan"] = synthetic_plan(root / "params" / "batch.yaml", departments)
            # a fresh output folder: a run keeps the period's reports it did not plan
            shutil.rmtree(root / "outputs", ignore_errors=True)
            figures.update(run_both(root, "synthetic"))
    return figures
