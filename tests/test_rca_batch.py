"""The root-cause notebook executed through the batch runner, and its report in a browser."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from qmsnb.batch import run_batch
from qmsnb.config import load_params
from qmsnb.exceptions import ExitCode
from qmsnb.publish import external_references
from tests.browser import open_offline
from tests.conftest import copy_cached

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(cached_demo: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("rca-built") / "project"
    copy_cached(cached_demo, root)
    params = load_params(root / "params")
    result = run_batch(
        params,
        "2026-10",
        notebooks=["root_cause"],
        departments=["complaints", "organisation"],
        jobs=2,
    )
    return root, result


def test_root_cause_reports_build_with_the_demo_stories(built) -> None:
    root, result = built
    assert result.exit_code == ExitCode.OK, result.reports
    assert {(r["department"], r["status"]) for r in result.reports} == {
        ("complaints", "ok"),
        ("organisation", "ok"),
    }
    folder = root / "outputs" / "2026-10"
    dept = (folder / "complaints" / "root_cause.html").read_text(encoding="utf-8")
    assert external_references(dept) == []
    assert "qmsnb.rca" not in dept  # code hidden
    # the broadband surge: yellow alert, the batch of the 14th, its fishbone and chain
    assert "黄色预警" in dept and "宽带断网" in dept
    assert "批量投诉" in dept and "2026-10-14" in dept
    assert "接入设备没有预防性维护计划" in dept  # a fishbone cause
    assert "5W-001" in dept and "5W-002" not in dept  # only the department's chains
    org = (folder / "organisation" / "root_cause.html").read_text(encoding="utf-8")
    # the organisation sees every chain: the fix that held, the one that stops at a person
    assert "5W-002" in org and "有效" in org
    assert "5W-003" in org and "根因停留在个人" in org and "未见效" in org
    assert "第 2 个“为什么”是空的" in org  # the draft chain's gap, in words
    assert "增值业务扣费 → 多扣费" in org  # the association rule of the demo
    # the executed notebook was built from the batch's prepared tables (no forms)
    nb = nbformat.read(folder / "organisation" / "root_cause.ipynb", as_version=4)
    assert any("JupyterLab" in str(c.get("outputs")) for c in nb.cells)


@pytest.mark.browser
def test_root_cause_report_renders_offline(built, browser, tmp_path: Path) -> None:
    root, _ = built
    page = open_offline(
        browser,
        root / "outputs" / "2026-10" / "organisation" / "root_cause.html",
        screenshot=tmp_path / "rca.png",
    )
    assert page.console_errors == [] and page.page_errors == []
    assert page.blocked_requests == []
    # Pareto ×2, heat map, trend, two fishbones, fix chart
    assert page.page.locator(".js-plotly-plot").count() >= 7
    assert page.page.locator(".qm-chain").count() == 4
