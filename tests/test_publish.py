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


def _nbconvert_soup_pass(html: str) -> str:
    """What nbconvert 7's HTMLExporter does after rendering (its own code, inlined)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, features="html.parser")
    for elem in soup.select("img:not([alt])"):
        elem.attrs["alt"] = "No description has been provided for this image"
    for elem in soup.select(".jp-Notebook div.jp-Cell-inputWrapper"):
        elem.attrs["tabindex"] = "0"
    for elem in soup.select(".jp-Notebook div.jp-OutputArea-output"):
        elem.attrs["tabindex"] = "0"
    return str(soup)


TRICKY_PAGE = """<!DOCTYPE html>
<html><head><title>x</title>
<script>var s = '<div class="jp-OutputArea-output">not a tag</div><img src=x>';</script>
<style>div.jp-OutputArea-output::after { content: "<img>"; }</style>
</head>
<BODY class="jp-Notebook qm-report">
<div class="jp-OutputArea-output">outside the lab markup, still inside .jp-Notebook</div>
<!-- <div class="jp-OutputArea-output"> in a comment -->
<div class="jp-Cell-inputWrapper" tabindex="-1"><div class="x jp-OutputArea-output y"
  data-note='a "quoted" &amp; <b>value</b>'>multi-line tag</div></div>
<div class="jp-OutputArea-output" tabindex="0">already focusable</div>
<p><IMG SRC="a.png"><img src="b.png" alt=""><img src="c.png"/></p>
<div title="<div class='jp-OutputArea-output'>">an attribute is not a tag</div>
<div><div class="jp-OutputArea-output">nested</div></div>
</BODY>
<div class="jp-OutputArea-output">after the notebook element</div>
</html>"""


def test_accessible_makes_the_changes_nbconvert_makes_with_beautifulsoup() -> None:
    from bs4 import BeautifulSoup

    from qmsnb.publish import accessible

    ours = accessible(TRICKY_PAGE, "No description has been provided for this image")
    assert str(BeautifulSoup(ours, "html.parser")) == _nbconvert_soup_pass(TRICKY_PAGE)
    # only the tags themselves changed: the script, style, comment and attribute
    # text that looks like a tag is as it was
    assert "var s = '<div class=\"jp-OutputArea-output\">not a tag</div><img src=x>';" in ours
    assert '<!-- <div class="jp-OutputArea-output"> in a comment -->' in ours
    assert ours.count('tabindex="0"') == 5
    assert ours.count('alt="No description') == 2
    assert '<div class="jp-OutputArea-output">after the notebook element</div>' in ours


def test_an_image_without_a_description_gets_one_in_the_report_language(
    tmp_path: Path,
) -> None:
    import nbformat

    from qmsnb.publish import export_report

    nb = nbformat.v4.new_notebook()
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
        "AAAABJRU5ErkJggg=="
    )
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "show()",
            outputs=[nbformat.v4.new_output("display_data", data={"image/png": png})],
        )
    )
    ipynb = tmp_path / "r.ipynb"
    nbformat.write(nb, ipynb)
    zh = export_report(ipynb, tmp_path / "zh.html", title="T", lang="zh").read_text("utf-8")
    en = export_report(ipynb, tmp_path / "en.html", title="T", lang="en").read_text("utf-8")
    assert 'alt="此图像没有文字说明"' in zh
    assert 'alt="No description has been provided for this image"' in en
    assert "data:image/png;base64," + png in zh
