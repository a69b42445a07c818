"""The portal: statuses, banners and escaping, rendered from a manifest."""

from __future__ import annotations

from pathlib import Path

from qmsnb.config import Params
from qmsnb.publish import render_portal


def _manifest(reports: list[dict]) -> dict:
    return {
        "run_id": "20261101T060000-abcd",
        "period": "2026-10",
        "finished": "2026-11-01T06:05:00",
        "versions": {"qmsnb": "0.1.0"},
        "reports": reports,
        "banners": [],
    }


def test_portal_flags_an_incomplete_review_and_a_failed_report(
    tmp_path: Path, params: Params
) -> None:
    reports = [
        {
            "notebook": "management_review",
            "department": "organisation",
            "status": "ok",
            "html": "organisation/management_review.html",
            "seconds": 3.0,
            "facts": {
                "review": {
                    "complete": False,
                    "missing": ["b_issues"],
                    "inputs": {"b_issues": {"clause": "9.3.2 b)"}},
                }
            },
        },
        {
            "notebook": "quality_objectives",
            "department": "admin",
            "status": "failed",
            "html": None,
            "ipynb": "admin/quality_objectives.ipynb",
            "seconds": 1.0,
            "error": "ValueError: <script>alert(1)</script>",
        },
    ]
    page = render_portal(tmp_path, _manifest(reports), params, "en").read_text(encoding="utf-8")
    assert "Management review pack incomplete: 1 input(s)" in page
    assert "9.3.2 b)" in page
    assert "1 report(s) failed" in page
    assert "admin/quality_objectives.ipynb" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_complete_review_raises_no_banner(tmp_path: Path, params: Params) -> None:
    reports = [
        {
            "notebook": "management_review",
            "department": "organisation",
            "status": "ok",
            "html": "organisation/management_review.html",
            "seconds": 3.0,
            "facts": {"review": {"complete": True, "missing": [], "inputs": {}}},
        },
    ]
    page = render_portal(tmp_path, _manifest(reports), params, "zh").read_text(encoding="utf-8")
    assert "管理评审输入不完整" not in page
    assert "管理评审输入" in page  # the report's column is there
