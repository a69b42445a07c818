"""The batch end to end: real notebooks, a real kernel, real HTML in a real browser."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat
import pytest

from qmsnb.batch import STAGING, plan, run_batch
from qmsnb.config import load_params
from qmsnb.exceptions import ExitCode, UsageError
from qmsnb.publish import external_references
from tests.browser import open_offline
from tests.conftest import copy_cached

pytestmark = pytest.mark.slow


def _tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_plan_covers_departments_and_organisation(params) -> None:
    pairs = plan(params, "2026-10")
    assert ("quality_objectives", "organisation") in pairs
    assert {scope for _, scope in pairs} == {"organisation", *params.departments}
    admin = plan(params, "2026-10", departments=["admin"])
    assert ("quality_objectives", "admin") in admin and {s for _, s in admin} == {"admin"}
    assert plan(params, "2026-10", departments=["admin"], notebooks=["quality_objectives"]) == [
        ("quality_objectives", "admin")
    ]
    with pytest.raises(UsageError):
        plan(params, "2026-10", departments=["sales"])
    with pytest.raises(UsageError):
        plan(params, "2026-10", notebooks=["nope"])


@pytest.fixture(scope="module")
def built(cached_demo: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real batch run for one department and the organisation."""
    root = tmp_path_factory.mktemp("built") / "project"
    copy_cached(cached_demo, root)
    params = load_params(root / "params")
    inputs_before = _tree_hashes(params.data_dir)
    result = run_batch(
        params,
        "2026-10",
        departments=["hotline_ops", "organisation"],
        notebooks=["quality_objectives"],
        jobs=2,
    )
    return root, params, result, inputs_before


def test_batch_builds_reports_manifest_and_portal(built) -> None:
    root, params, result, inputs_before = built
    assert result.exit_code == ExitCode.OK
    assert {(r["department"], r["status"]) for r in result.reports} == {
        ("hotline_ops", "ok"),
        ("organisation", "ok"),
    }
    folder = root / "outputs" / "2026-10"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["period"] == "2026-10"
    assert len(manifest["months"]) == 12
    calls = [i for i in manifest["inputs"] if i["dataset"] == "calls" and i["period"] == "2026-10"]
    assert (
        calls
        and calls[0]["sha256"] == hashlib.sha256(Path(calls[0]["path"]).read_bytes()).hexdigest()
    )
    assert manifest["versions"]["papermill"]
    # the executed notebook is kept, with the injected parameters
    nb = nbformat.read(folder / "hotline_ops" / "quality_objectives.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'department = "hotline_ops"' in injected[0].source
    # the report: no code, no CDN, one shared plotly.js
    html = (folder / "hotline_ops" / "quality_objectives.html").read_text(encoding="utf-8")
    assert "qmsnb.open_period" not in html and "import qmsnb" not in html
    assert external_references(html) == []
    assert "cdn.jsdelivr" not in html and "require.js" not in html
    assert '<script src="../assets/plotly.min.js">' in html
    assert (folder / "assets" / "plotly.min.js").is_file()
    assert len(html) < 1_500_000  # plotly.js is shared, not inlined
    # so is JupyterLab's style sheet: linked once, its 250 KB not in every page
    from qmsnb.publish import notebook_css

    assert re.search(r'<link [^>]*href="../assets/notebook.css"', html)
    assert (folder / "assets" / "notebook.css").read_text(encoding="utf-8") == notebook_css()
    assert "--jp-layout-color0" in notebook_css() and "--jp-layout-color0:" not in html
    # the story of the demo reaches the report
    assert "VIP用户日接通率(账期)" in html and "专项帮扶" in html
    assert (root / "outputs" / "index.html").is_file()
    assert _tree_hashes(params.data_dir) == inputs_before
    assert not any((root / "outputs" / STAGING).iterdir())


def test_the_page_is_what_nbconvert_makes_of_the_whole_notebook(built, tmp_path: Path) -> None:
    """The export leaves plotly's JSON out, validates once, not per preprocessor,
    and makes nbconvert's accessibility changes without its BeautifulSoup tree:
    the page is nbconvert's page of the unchanged notebook (the same document:
    parsed and written out by BeautifulSoup, as nbconvert writes its pages, it is
    the same text)."""
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter

    from qmsnb import publish

    root, _, _, _ = built
    ipynb = root / "outputs" / "2026-10" / "hotline_ops" / "quality_objectives.ipynb"
    nb = nbformat.read(ipynb, as_version=4)
    assert any(
        publish.PLOTLY_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])
    )
    page = publish.export_report(ipynb, tmp_path / "page.html", title="T", lang="en")
    reference = publish.make_exporter(HTMLExporter)  # nbconvert's own exporter
    reference.optimistic_validation = False
    nb.metadata["title"] = "T"
    body, _ = reference.from_notebook_node(
        nb,
        resources={
            "language_code": "en",
            "qmsnb": {
                "assets": "../assets",
                "portal": "../index.html",
                "back_label": "Back to the report portal",
                "title": "T",
                "footer": "",
            },
        },
    )
    ours = page.read_text(encoding="utf-8")
    assert ours.count('tabindex="0"') > 10
    assert str(BeautifulSoup(ours, "html.parser")) == body


@pytest.mark.browser
def test_portal_and_report_render_offline(built, browser, tmp_path: Path) -> None:
    root, _, _, _ = built
    folder = root / "outputs" / "2026-10"
    portal = open_offline(browser, folder / "index.html")
    assert portal.console_errors == [] and portal.page_errors == []
    assert portal.blocked_requests == []
    links = portal.page.locator("table.grid a").evaluate_all(
        "els => els.map(e => e.getAttribute('href'))"
    )
    assert "hotline_ops/quality_objectives.html" in links
    report = open_offline(
        browser,
        folder / "hotline_ops" / "quality_objectives.html",
        screenshot=tmp_path / "report.png",
    )
    assert report.console_errors == [] and report.page_errors == []
    assert report.blocked_requests == []
    # plotly drew its charts: an svg per figure with data traces
    plots = report.page.locator(".js-plotly-plot")
    assert plots.count() >= 2
    assert report.page.locator(".js-plotly-plot .scatterlayer .trace").count() > 10
    assert report.page.locator("table.qm-table").count() >= 3
    assert (tmp_path / "report.png").stat().st_size > 50_000
    # JupyterLab's shared style sheet was loaded and applies (its theme variables)
    colour = report.page.evaluate(
        "getComputedStyle(document.body).getPropertyValue('--jp-layout-color0')"
    )
    assert colour.strip()


def test_failing_notebook_is_kept_and_linked_and_others_still_build(
    cached_project: Path,
) -> None:
    project = cached_project
    params_dir = project / "params"
    broken = nbformat.v4.new_notebook()
    broken.cells = [
        nbformat.v4.new_code_cell(
            'period = ""\ndepartment = ""', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell('raise ValueError("export looked wrong")'),
    ]
    nbformat.write(broken, project / "notebooks" / "broken.ipynb")
    with (params_dir / "batch.yaml").open("a", encoding="utf-8") as fh:
        fh.write(
            "  - id: broken\n    path: notebooks/broken.ipynb\n"
            "    title: {zh: 坏报告, en: Broken report}\n    scope: [organisation]\n"
        )
    params = load_params(params_dir)
    result = run_batch(
        params,
        "2026-10",
        departments=["organisation"],
        notebooks=["quality_objectives", "broken"],
        jobs=2,
    )
    status = {r["notebook"]: r for r in result.reports}
    assert status["quality_objectives"]["status"] == "ok"
    assert status["broken"]["status"] == "failed"
    assert "ValueError: export looked wrong" in status["broken"]["error"]
    assert result.exit_code == ExitCode.REPORTS_FAILED
    folder = project / "outputs" / "2026-10"
    executed = nbformat.read(folder / "organisation" / "broken.ipynb", as_version=4)
    assert any("An Exception was encountered" in "".join(c.source) for c in executed.cells)
    portal = (folder / "index.html").read_text(encoding="utf-8")
    assert "organisation/broken.ipynb" in portal and "export looked wrong" in portal


def test_interrupted_run_leaves_previous_output_untouched(cached_project: Path) -> None:
    project = cached_project
    params = load_params(project / "params")
    first = run_batch(
        params, "2026-10", departments=["admin"], notebooks=["quality_objectives"], jobs=1
    )
    before = _tree_hashes(first.folder)

    def interrupt(staging: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(
            params,
            "2026-10",
            departments=["admin"],
            notebooks=["quality_objectives"],
            jobs=1,
            before_swap=interrupt,
        )
    assert _tree_hashes(first.folder) == before
    assert not any((project / "outputs" / STAGING).iterdir())


def test_second_run_archives_the_first_and_failed_report_keeps_previous_good(
    cached_project: Path,
) -> None:
    project = cached_project
    params = load_params(project / "params")
    first = run_batch(
        params, "2026-10", departments=["admin"], notebooks=["quality_objectives"], jobs=1
    )
    good_html = (first.folder / "admin" / "quality_objectives.html").read_bytes()
    # break the notebook, run again: the report fails, its previous good version is carried over
    source = project / "notebooks" / "quality_objectives.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("1 / 0"))
    nbformat.write(nb, source)
    second = run_batch(
        params, "2026-10", departments=["admin"], notebooks=["quality_objectives"], jobs=1
    )
    report = second.reports[0]
    assert (
        report["status"] == "failed"
        and report["previous"] == "admin/quality_objectives.previous.html"
    )
    assert (second.folder / report["previous"]).read_bytes() == good_html
    archived = project / "outputs" / ".archive" / "2026-10" / first.run_id
    assert (archived / "admin" / "quality_objectives.html").read_bytes() == good_html


def test_partial_run_keeps_the_other_reports(cached_project: Path) -> None:
    project = cached_project
    params = load_params(project / "params")
    run_batch(
        params,
        "2026-10",
        departments=["admin", "quality"],
        notebooks=["quality_objectives"],
        jobs=2,
    )
    folder = project / "outputs" / "2026-10"
    quality_html = (folder / "quality" / "quality_objectives.html").read_bytes()
    second = run_batch(
        params, "2026-10", departments=["admin"], notebooks=["quality_objectives"], jobs=1
    )
    assert [r["department"] for r in second.reports] == ["admin"]
    entries = {r["department"]: r for r in second.manifest["reports"]}
    assert set(entries) == {"admin", "quality"}
    assert entries["quality"]["built_in_run"] != second.run_id
    assert (folder / "quality" / "quality_objectives.html").read_bytes() == quality_html
    assert "quality/quality_objectives.html" in (folder / "index.html").read_text(encoding="utf-8")


def test_longest_first_orders_by_the_last_run_and_keeps_the_plan_otherwise() -> None:
    from qmsnb.batch import longest_first
    from qmsnb.engines import Job

    def job(dept: str, nb: str) -> Job:
        return Job(notebook=nb, department=dept, source="", output="", parameters={}, timeout=1)

    jobs = [job("a", "x"), job("b", "x"), job("organisation", "review"), job("c", "new")]
    assert longest_first(jobs, None) == jobs
    last = {
        "reports": [
            {"department": "a", "notebook": "x", "seconds": 0.4},
            {"department": "b", "notebook": "x", "seconds": 0.6},
            {"department": "organisation", "notebook": "review", "seconds": 1.1},
            {"department": "gone", "notebook": "x", "seconds": 9.0},
            {"department": "c", "notebook": "blocked", "seconds": None},
        ]
    }
    ordered = longest_first(jobs, last)
    # the new report counts as a typical one (the median, 0.6): after b, which ran first
    assert [(j.department, j.notebook) for j in ordered] == [
        ("organisation", "review"),
        ("b", "x"),
        ("c", "new"),
        ("a", "x"),
    ]


class _TimedRunner:
    """An engine that runs nothing: it records the order it was given and says each
    report took the seconds its department's name implies."""

    name = "recording"

    def __init__(self) -> None:
        self.order: list[str] = []

    def run(self, jobs, workers, on_done):
        from qmsnb.engines import JobResult

        results = []
        for job in jobs:
            self.order.append(job.department)
            result = JobResult(job, "ok", {"admin": 0.3, "quality": 0.9}.get(job.department, 0.5))
            on_done(result)
            results.append(result)
        return results


def test_the_longest_report_of_the_last_run_starts_first_and_the_manifest_keeps_the_plan(
    cached_project: Path,
) -> None:
    params = load_params(cached_project / "params")
    chosen = dict(departments=["admin", "hotline_ops", "quality"], notebooks=["root_cause"])
    first_runner = _TimedRunner()
    first = run_batch(params, "2026-10", runner=first_runner, **chosen)
    second_runner = _TimedRunner()
    second = run_batch(params, "2026-10", runner=second_runner, **chosen)
    assert second_runner.order == ["quality", "hotline_ops", "admin"]
    plan_order = [r["department"] for r in first.reports]
    assert first_runner.order == plan_order
    assert [r["department"] for r in second.reports] == plan_order
