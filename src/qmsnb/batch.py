"""The monthly batch: plan, prepare, execute, publish, and swap in.

``run_batch`` is what ``qmsnb run`` calls:

1. check the arguments and that the period has exports;
2. run the data-quality gate (:mod:`qmsnb.gate`) once for the period: it writes
   ``gate.json`` and ``data_quality.html``; a report that needs a dataset the gate
   rejected is not built (status ``blocked``, its previous good version carried
   forward, a red banner on the portal), the others are built as usual;
3. prepare the period's small tables once (:mod:`qmsnb.prepare`);
4. execute every planned notebook × scope with the configured engine, in parallel;
5. export every executed notebook to HTML, write the manifest and the portal;
6. swap the staging folder in for ``outputs/<period>``: the previous output is
   moved, whole, to ``outputs/.archive/<period>/<run id>/`` and never deleted.

Everything before the swap happens in ``outputs/.staging/<run id>/``; an
interrupted or crashed run removes its staging folder and leaves
``outputs/<period>`` exactly as it was. A report that fails keeps its executed
notebook (with papermill's error marker) and, if the previous run had built it,
a copy of that previous good report, linked from the portal.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from qmsnb import io, publish
from qmsnb.config import ORGANISATION, Params
from qmsnb.engines import Engine, Job, JobResult, get_engine
from qmsnb.exceptions import ExitCode, UsageError
from qmsnb.i18n import check_lang, period_label, t
from qmsnb.periods import Period

STAGING = ".staging"
ARCHIVE = ".archive"
PREPARED = "prepared"


@dataclass
class BatchResult:
    """What a batch run produced."""

    period: str
    run_id: str
    folder: Path
    portal: Path
    reports: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        statuses = {r["status"] for r in self.reports}
        if statuses & {"failed", "timeout", "crashed"}:
            return ExitCode.REPORTS_FAILED
        if "blocked" in statuses:
            return ExitCode.GATE_FAILED
        return ExitCode.OK


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)


def plan(
    params: Params,
    period: str,
    *,
    departments: Sequence[str] | None = None,
    notebooks: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """The (notebook, scope) pairs to run, in portal order.

    ``departments`` may include ``organisation``; without it every department and
    the organisation-wide run are planned as ``batch.yaml`` says.

    Raises:
        UsageError: an unknown department or notebook.
    """
    for dept in departments or ():
        if dept != ORGANISATION:
            params.department(dept)
    for nb in notebooks or ():
        if nb not in params.notebooks:
            raise UsageError("error.unknown_notebook", value=nb, known=", ".join(params.notebooks))
    pairs = []
    for nb in params.batch.notebooks:
        if notebooks and nb.id not in notebooks:
            continue
        scopes: list[str] = []
        if "organisation" in nb.scope:
            scopes.append(ORGANISATION)
        if "department" in nb.scope:
            scopes.extend(nb.departments or params.departments)
        for scope in scopes:
            if departments and scope not in departments:
                continue
            pairs.append((nb.id, scope))
    return pairs


def _jobs(
    params: Params, period: str, lang: str, pairs: Sequence[tuple[str, str]], staging: Path
) -> list[Job]:
    jobs = []
    for notebook, scope in pairs:
        spec = params.notebooks[notebook]
        ipynb, _ = publish.report_paths(staging, scope, notebook)
        io.ensure_dir(ipynb.parent)
        jobs.append(
            Job(
                notebook=notebook,
                department=scope,
                source=str(params.path(spec.path)),
                output=str(ipynb),
                parameters={
                    "period": period,
                    "department": scope,
                    "lang": lang,
                    "params_dir": str(params.folder),
                    "prepared_dir": f"../{PREPARED}",
                },
                timeout=spec.timeout_seconds or params.batch.timeout_seconds,
                kernel_name=params.batch.kernel_name,
                cwd=str(ipynb.parent),
            )
        )
    return jobs


def longest_first(jobs: Sequence[Job], previous: Mapping[str, Any] | None) -> list[Job]:
    """The jobs, those that took longest in the period's last run first.

    A long report started last keeps one worker busy while the others have
    nothing left (the demo's management review, 1.1 s, came last in the plan).
    A report the last run did not time counts as a typical one (the median of
    this plan's reports it did time); without a last run, the plan's order.
    """
    took = {
        (r.get("department"), r.get("notebook")): float(r["seconds"])
        for r in (previous or {}).get("reports", [])
        if isinstance(r.get("seconds"), int | float)
    }
    known = [took[key] for key in ((job.department, job.notebook) for job in jobs) if key in took]
    if not known:
        return list(jobs)
    typical = statistics.median(known)
    return sorted(jobs, key=lambda job: -took.get((job.department, job.notebook), typical))


def _progress(total: int, lang: str) -> tuple[Callable[[JobResult], None], Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        unit="report",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        desc=t("run.progress", lang),
    )

    def done(result: JobResult) -> None:
        bar.update(1)
        if bar.disable:
            print(
                t(
                    "run.job_done",
                    lang,
                    scope=result.job.department,
                    report=result.job.notebook,
                    status=t(f"portal.status.{result.status}", lang),
                    seconds=f"{result.seconds:.1f}",
                ),
                file=sys.stderr,
            )

    return done, bar.close


def _previous_manifest(target: Path) -> dict[str, Any] | None:
    manifest = target / "manifest.json"
    return io.read_json(manifest) if manifest.is_file() else None


def _carry_forward(
    report: dict[str, Any], previous: dict[str, Any] | None, target: Path, staging: Path
) -> None:
    """Copy the previous good HTML of a report that did not build this time."""
    if previous is None:
        return
    for old in previous.get("reports", []):
        same = old["department"] == report["department"] and old["notebook"] == report["notebook"]
        if not same:
            continue
        source = old.get("html") if old["status"] == "ok" else old.get("previous")
        if source and (target / source).is_file():
            dest = staging / report["department"] / f"{report['notebook']}.previous.html"
            io.copy_file(target / source, dest)
            report["previous"] = publish.relative(dest, staging)
            report["previous_run"] = old.get("previous_run") or previous.get("run_id")
        return


def _keep_unplanned(
    previous: dict[str, Any] | None,
    planned: set[tuple[str, str]],
    target: Path,
    staging: Path,
) -> list[dict[str, Any]]:
    """Reports of the current output that this (partial) run did not plan.

    ``qmsnb run --department X`` or ``--notebook Y`` rebuilds only those reports;
    the period's other reports stay in the new output as they were (files copied,
    manifest entries kept with the run that built them), so a partial re-run never
    makes the portal or a later distribution lose a report.
    """
    if previous is None:
        return []
    kept = []
    for old in previous.get("reports", []):
        if (old["notebook"], old["department"]) in planned:
            continue
        entry = dict(old)
        entry.setdefault("built_in_run", previous.get("run_id"))
        for key in ("html", "ipynb", "previous"):
            if entry.get(key) and (target / entry[key]).is_file():
                io.copy_file(target / entry[key], staging / entry[key])
        kept.append(entry)
    return kept


def _kpi_summary(prepared: Path, period: str) -> dict[str, dict[str, int]]:
    """Per scope: how many indicators are red / yellow / green and how many alerts."""
    kpi = io.read_parquet(prepared / "kpi.parquet")
    if kpi.empty:
        return {}
    now = kpi[kpi["period"] == period]
    summary: dict[str, dict[str, int]] = {}
    for scope, rows in now.groupby("department"):
        counts = rows["status"].value_counts()
        summary[str(scope)] = {
            "red": int(counts.get("red", 0)),
            "yellow": int(counts.get("yellow", 0)),
            "green": int(counts.get("green", 0)),
            "alerts": int((rows["alert"] != "").sum()),
        }
    return summary


def _run_gate(params: Params, period: str, staging: Path, lang: str) -> Any:
    """The data-quality gate, once for the period, before prepare and any notebook."""
    from qmsnb import gate

    checked = gate.run_gate(params, period)
    gate.write_outputs(checked, staging, params, lang)
    return checked


def _needs_blocked(params: Params, notebook: str, blocked: set[str]) -> list[str]:
    return sorted(set(params.notebooks[notebook].needs) & blocked)


def _blocked_report(
    params: Params,
    notebook: str,
    scope: str,
    datasets: list[str],
    lang: str,
    previous: dict[str, Any] | None,
    target: Path,
    staging: Path,
) -> dict[str, Any]:
    """A report the gate stopped: not built, the previous good one carried forward."""
    from qmsnb.gate import dataset_name

    report: dict[str, Any] = {
        "notebook": notebook,
        "department": scope,
        "status": "blocked",
        "seconds": None,
        "error": None,
        "reason": t(
            "gate.blocked_reason", lang, datasets=", ".join(dataset_name(d, lang) for d in datasets)
        ),
        "blocked_by": datasets,
        "cell": None,
        "ipynb": None,
        "html": None,
    }
    _carry_forward(report, previous, target, staging)
    return report


def _gate_banners(
    params: Params, checked: Any, reports: list[dict[str, Any]], lang: str
) -> list[dict[str, Any]]:
    """Red banner for what the gate stopped, yellow for warnings, a note on trend gaps."""
    from qmsnb.gate import dataset_name, summary_lines

    banners: list[dict[str, Any]] = []
    blocked = [r for r in reports if r["status"] == "blocked"]
    if blocked:
        names = dict.fromkeys(params.notebooks[r["notebook"]].title(lang) for r in blocked)
        banners.append(
            {
                "kind": "red",
                "title": t("gate.banner.blocked", lang, count=len(blocked)),
                "lines": [
                    *summary_lines(checked, lang, blocking=True),
                    t("gate.banner.blocked_reports", lang, reports=", ".join(names)),
                    *(
                        [t("gate.banner.previous", lang)]
                        if any(r.get("previous") for r in blocked)
                        else []
                    ),
                ],
            }
        )
    warnings = summary_lines(checked, lang, blocking=False)
    if warnings:
        count = sum(len(v) for v in checked.warnings().values())
        banners.append(
            {"kind": "yellow", "title": t("gate.banner.warn", lang, count=count), "lines": warnings}
        )
    earlier = {m: d for m, d in checked.left_out().items() if m != checked.period}
    if earlier:
        items = "; ".join(
            f"{period_label(m, lang)} " + ", ".join(dataset_name(d, lang) for d in names)
            for m, names in sorted(earlier.items())
        )
        banners.append(
            {"kind": "info", "title": t("gate.banner.left_out", lang, items=items), "lines": []}
        )
    return banners


def swap_in(staging: Path, target: Path, archive_root: Path) -> Path | None:
    """Move the current output (if any) to the archive, then staging to its place."""
    archived = None
    if target.exists():
        old = _previous_manifest(target)
        old_id = old.get("run_id") if old else f"unknown-{int(target.stat().st_mtime)}"
        archived = archive_root / target.name / str(old_id)
        if archived.exists():
            archived = archived.with_name(f"{archived.name}-{secrets.token_hex(2)}")
        io.move(target, archived)
    io.move(staging, target)
    return archived


def run_batch(
    params: Params,
    period: str,
    *,
    departments: Sequence[str] | None = None,
    notebooks: Sequence[str] | None = None,
    jobs: int | None = None,
    lang: str | None = None,
    engine: str | None = None,
    before_swap: Callable[[Path], None] | None = None,
    runner: Engine | None = None,
) -> BatchResult:
    """Run the batch for one period (see the module docstring).

    Args:
        before_swap: called with the staging folder just before it is swapped in
            (tests use it to simulate an interruption).
        runner: an engine the caller made (and may have started) already;
            ``engine`` names one otherwise. It is closed when the batch ends.

    Raises:
        UsageError: bad arguments or no exports for the period.
        DataError: an export or register cannot be read.
    """
    from qmsnb import prepare
    from qmsnb.records import snapshots_reused

    period = str(Period.parse(period))
    language = check_lang(lang or params.organisation.report_language)
    pairs = plan(params, period, departments=departments, notebooks=notebooks)
    prepare.check_period_exists(params, period)
    runner = runner if runner is not None else get_engine(engine or params.batch.engine)
    out_root = params.output_dir
    run_id = new_run_id()
    staging = out_root / STAGING / run_id
    target = out_root / period
    started, started_at = time.monotonic(), datetime.now()
    io.ensure_dir(staging)
    warm_up = getattr(runner, "start", None)
    if warm_up is not None:  # e.g. the warm engine's template and workers import meanwhile
        warm_up(min(jobs or params.batch.jobs, len(pairs)))
    try:
        with snapshots_reused():  # prepare uses the records the gate checked
            checked = _run_gate(params, period, staging, language)
            io.release_memory()  # what the gate read is not needed again
            meta = prepare.prepare(params, period, staging / PREPARED, checked.left_out())
        stopped = {
            pair: needs
            for pair in pairs
            if (needs := _needs_blocked(params, pair[0], checked.blocked()))
        }
        io.release_memory()  # nor what prepare read: the reports read the prepared tables
        publish.write_assets(staging / publish.ASSETS)
        runnable = [pair for pair in pairs if pair not in stopped]
        job_list = _jobs(params, period, language, runnable, staging)
        previous = _previous_manifest(target)
        footer = t(
            "report.generated",
            language,
            time=datetime.now().strftime("%Y-%m-%d %H:%M"),
            version=publish.versions().get("qmsnb", ""),
        )
        published: dict[int, dict[str, Any]] = {}
        failures: list[BaseException] = []

        def publish_one(result: JobResult) -> dict[str, Any]:
            job = result.job
            ipynb, html = publish.report_paths(staging, job.department, job.notebook)
            spec = params.notebooks[job.notebook]
            report: dict[str, Any] = {
                "notebook": job.notebook,
                "department": job.department,
                "status": result.status,
                "seconds": round(result.seconds, 2),
                "error": result.error,
                "cell": result.cell,
                "ipynb": publish.relative(ipynb, staging) if ipynb.is_file() else None,
                "html": None,
            }
            if ipynb.is_file():
                facts = publish.report_facts(ipynb)
                if facts:  # e.g. the management review's missing inputs
                    report["facts"] = facts
                title = " · ".join(
                    (
                        spec.title(language),
                        params.department_name(job.department, language),
                        period_label(period, language),
                    )
                )
                publish.export_report(ipynb, html, title=title, lang=language, footer=footer)
                report["html"] = publish.relative(html, staging)
            if result.status != "ok":
                _carry_forward(report, previous, target, staging)
            return report

        progress, close = _progress(len(job_list), language)

        def export(result: JobResult) -> None:
            try:
                published[id(result.job)] = publish_one(result)
            except Exception as exc:  # raised below, after the engine has stopped
                failures.append(exc)
            progress(result)

        # export each report while the others still run, in one thread of its
        # own: the engine hands its worker the next report at once instead of
        # waiting for the export (~0.05 s a report that a worker sat idle)
        exporter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qmsnb-export")
        try:
            results = runner.run(
                longest_first(job_list, previous),
                jobs or params.batch.jobs,
                lambda r: exporter.submit(export, r),
            )
        except BaseException:  # interrupted: exports not begun are not needed
            exporter.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            exporter.shutdown(wait=True)
            close()
        if failures:
            raise failures[0]
        by_job = {id(result.job): result for result in results}
        reports = [  # in the plan's order, whatever order they ran in
            published.get(id(job)) or publish_one(by_job[id(job)]) for job in job_list
        ]
        reports.extend(
            _blocked_report(params, nb, scope, needs, language, previous, target, staging)
            for (nb, scope), needs in stopped.items()
        )
        kept = _keep_unplanned(previous, set(pairs), target, staging)
        finished = datetime.now()
        manifest = {
            "run_id": run_id,
            "period": period,
            "lang": language,
            "engine": runner.name,
            "workers": jobs or params.batch.jobs,
            "started": started_at.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - started, 2),
            "params": {
                "folder": str(params.folder),
                "files": {f.name: io.sha256_file(f) for f in sorted(params.folder.glob("*.yaml"))},
            },
            "inputs": meta["inputs"],
            "months": meta["months"],
            "versions": publish.versions(),
            "reports": reports + kept,
            "kpi_summary": _kpi_summary(staging / PREPARED, period),
            "banners": _gate_banners(params, checked, reports, language),
            "gate": {
                "status": checked.status,
                "rejected": checked.rejected(),
                "left_out": checked.left_out(),
            },
            "previous_run": previous.get("run_id") if previous else None,
        }
        io.write_json(staging / "manifest.json", manifest)
        portal = publish.render_portal(staging, manifest, params, language)
        publish.check_pages(staging)  # offline, and no script that is not plotly's
        if before_swap is not None:
            before_swap(staging)
        swap_in(staging, target, out_root / ARCHIVE)
    except BaseException:
        io.remove_tree(staging)
        raise
    finally:
        stop = getattr(runner, "close", None)
        if stop is not None:
            stop()
    publish.render_periods_index(out_root, params, language)
    return BatchResult(
        period=period,
        run_id=run_id,
        folder=target,
        portal=target / portal.relative_to(staging),
        reports=reports,
        manifest=manifest,
    )


def staging_leftovers(params: Params) -> list[Path]:
    """Staging folders of runs that were killed hard (a later run may clean them)."""
    root = params.output_dir / STAGING
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and os.access(p, os.W_OK)]
