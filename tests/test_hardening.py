"""Report hardening: the post-export page check, department ids as paths, JSON-only parameters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from qmsnb import publish, safety
from qmsnb.config import load_params
from qmsnb.engines import Job, check_json_native
from qmsnb.exceptions import ConfigError, PublishError, UsageError

PLOTLY_ID = "7616d3a3-f553-4cdc-a6eb-fbea977c5230"


def plotly_script(args: str) -> str:
    return (
        "<script>                window.PLOTLYENV=window.PLOTLYENV || {};"
        f'                                if (document.getElementById("{PLOTLY_ID}")) {{'
        f'                    Plotly.newPlot(                        "{PLOTLY_ID}",'
        f"                        {args}                    )"
        "                };            </script>"
    )


SAFE_PLOT = plotly_script(
    '[{"x":["\\u003cscript\\u003e"],"y":[1],"type":"bar"}],{"title":{"text":"t"}},{"responsive":true}'
)


def page(body: str, head: str = '<script src="../assets/plotly.min.js"></script>') -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8">{head}</head><body>{body}</body></html>'
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<script>alert(1)</script>", "script"),
        ("<SCRIPT type='module'>import('x')</SCRIPT>", "script"),
        ("<img src=x onerror=alert(1)>", "handler"),
        ("<img/src/onerror=alert(1)>", "handler"),
        ("<svg onload=alert(1)>", "handler"),
        ("<details open ontoggle=alert(1)>", "handler"),
        ("<svg><script>alert(1)</script></svg>", "script"),
        ('<a href="javascript:alert(1)">x</a>', "script_url"),
        ('<a href=" jav&#x09;ascript:alert(1)">x</a>', "script_url"),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "script_url"),
        ('<svg><animate attributeName="href" values="javascript:alert(1)"/></svg>', "script_url"),
        ('<iframe src="other.html"></iframe>', "tag"),
        ('<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>', "tag"),
        ('<object data="x.svg"></object>', "tag"),
        ('<embed src="x.swf">', "tag"),
        ('<base href="https://evil.example/">', "tag"),
        ('<form action="x"><button>go</button></form>', "tag"),
        ('<meta http-equiv="refresh" content="0;url=javascript:alert(1)">', "refresh"),
        ('<div class="jp-Mermaid"><pre class="mermaid">graph TD; A-->B</pre></div>', "mermaid"),
        ('<script src="https://cdn.plot.ly/plotly-3.0.1.min.js"></script>', "script"),
        ('<script src="../assets/other.js"></script>', "script"),
        ('<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Noto">', "external"),
        ('<img src="https://tracker.example/p.gif">', "external"),
        ('<img srcset="a.png 1x, https://x.example/b.png 2x">', "external"),
        ('<div style="background:url(https://x.example/y.png)">x</div>', "external"),
        ("<style>@import url(https://x.example/y.css);</style>", "external"),
        ('<div style="width:expression(alert(1))">x</div>', "css"),
        (plotly_script('[{"x":[1]}], {}, {}); alert(1); (['), "script"),
        (
            plotly_script(
                '[{"x":[1]}], {"title": {"text": "<a href=\\"javascript:alert(1)\\">x</a>"}}, {}'
            ),
            "script",
        ),
    ],
)
def test_each_way_of_running_script_or_loading_from_outside_is_found(body: str, reason: str):
    problems = safety.check_page(page(body + SAFE_PLOT), "p.html")
    assert reason in {p.reason for p in problems}, problems


def test_our_own_markup_passes():
    body = (
        SAFE_PLOT
        + '<a href="https://example.com/policy">link (clicked, not loaded)</a>'
        + '<img src="data:image/png;base64,iVBORw0KGgo=">'
        + '<table class="qm-table"><tr><td>&lt;script&gt;alert(1)&lt;/script&gt;</td></tr></table>'
        + '<p title="x onclick=y">hover</p>'
    )
    assert safety.check_page(page(body)) == []


# ---------------------------------------------------------------------------
# The publish step fails when a page could run script
# ---------------------------------------------------------------------------
UNSAFE_NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "p1",
            "metadata": {"tags": ["parameters"]},
            "outputs": [],
            "source": [
                'period = "2026-10"\n',
                'department = "organisation"\n',
                'lang = "zh"\n',
                'params_dir = ""\n',
                'prepared_dir = ""',
            ],
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "c1",
            "metadata": {},
            "outputs": [],
            "source": [
                "from IPython.display import HTML\n",
                "HTML('<img src=x onerror=\"alert(document.domain)\">')",
            ],
        },
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.mark.slow
def test_a_report_that_could_run_script_fails_the_publish_step_and_keeps_the_previous_output(
    cached_project: Path,
):
    project = cached_project
    from qmsnb.batch import run_batch

    params = load_params(project / "params")
    first = run_batch(
        params, "2026-10", departments=["organisation"], notebooks=["quality_objectives"]
    )
    before = (first.folder / "manifest.json").read_text(encoding="utf-8")
    (project / "notebooks" / "unsafe.ipynb").write_text(
        json.dumps(UNSAFE_NOTEBOOK), encoding="utf-8"
    )
    batch_yaml = project / "params" / "batch.yaml"
    batch_yaml.write_text(
        batch_yaml.read_text(encoding="utf-8")
        + "  - id: unsafe\n    path: notebooks/unsafe.ipynb\n"
        "    title: {zh: 不安全, en: Unsafe}\n    scope: [organisation]\n",
        encoding="utf-8",
    )
    params = load_params(project / "params")
    with pytest.raises(PublishError) as caught:
        run_batch(params, "2026-10", departments=["organisation"], notebooks=["unsafe"])
    assert caught.value.facts["reason"] == "handler"
    assert "onerror" in caught.value.message("en")
    assert (first.folder / "manifest.json").read_text(encoding="utf-8") == before
    assert not list((project / "outputs" / ".staging").iterdir())


# ---------------------------------------------------------------------------
# Department ids never escape the output folder
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../x", "..", "a/b", "hotline_ops/../../etc", "x\n", "Hotline"])
def test_department_id_that_could_escape_is_refused_in_params(project: Path, bad: str):
    file = project / "params" / "organisation.yaml"
    text = file.read_text(encoding="utf-8").replace("id: outsourcing", f"id: {json.dumps(bad)}")
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_params(project / "params")
    assert caught.value.key == "error.config.department_id"
    message = caught.value.message("en")
    assert "is not valid" in message and "departments[7] (id: " in message


def test_department_id_like_dotdot_x_is_refused_everywhere_a_path_is_made(params, tmp_path: Path):
    from qmsnb.batch import plan
    from qmsnb.bundles import bundle_name
    from qmsnb.context import open_period

    for call in (
        lambda: plan(params, "2026-10", departments=["../x"]),
        lambda: publish.report_paths(tmp_path, "../x", "quality_objectives"),
        lambda: bundle_name("2026-10", "../x"),
        lambda: open_period("2026-10", "../x", params_dir=params.folder),
        lambda: params.department("../x"),
    ):
        with pytest.raises(UsageError) as caught:
            call()
        assert caught.value.key == "error.department_id_unsafe"
        assert "“../x”" in caught.value.message("en") and "folder name" in caught.value.message(
            "en"
        )
        assert "“../x”" in caught.value.message("zh")
    assert not (tmp_path.parent / "x").exists()


def test_cli_refuses_dotdot_department_with_exit_code_2(project: Path, capsys):
    from qmsnb.cli import main

    code = main(
        [
            "--params",
            str(project / "params"),
            "--lang",
            "en",
            "run",
            "--period",
            "2026-10",
            "--department",
            "../x",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Department id “../x” is not valid" in err and "Traceback" not in err


# ---------------------------------------------------------------------------
# Only JSON-native values reach a notebook
# ---------------------------------------------------------------------------
class _Evil(str):
    def __repr__(self) -> str:
        return "__import__('os').system('touch pwned')"


@pytest.mark.parametrize(
    "value",
    [
        ("a",),
        {"a"},
        b"x",
        _Evil("x"),
        float("nan"),
        float("inf"),
        [1, (2,)],
        {"k": {1, 2}},
        {1: "non-string key"},
        Path("/tmp"),
    ],
)
def test_non_json_parameters_are_refused(value):
    with pytest.raises(TypeError):
        check_json_native({"department": value})
    with pytest.raises(TypeError):
        Job("n", "d", "s.ipynb", "o.ipynb", {"x": value}, timeout=60)


def test_json_parameters_pass():
    check_json_native(
        {"a": "x\"'); import os #", "b": 1, "c": 2.5, "d": None, "e": [True, {"f": []}]}
    )


def test_numpy_and_enum_values_are_refused():
    import enum

    import numpy as np

    class Level(enum.IntEnum):
        A = 1

    for value in (np.float64(1.5), np.int64(3), Level.A, np.bool_(True)):
        with pytest.raises(TypeError):
            check_json_native({"x": value})


def test_distribution_params_are_strict(project: Path):
    folder = project / "params"
    good = (
        "smtp: {host: smtp.example.com, sender: 'Q <q@example.com>'}\n"
        "recipients: {organisation: [gm@example.com], hotline_ops: ['王磊 <w@example.com>']}\n"
    )
    (folder / "distribution.yaml").write_text(good, encoding="utf-8")
    dist = load_params(folder).distribution
    assert dist.smtp.port == 587 and dist.smtp.security == "starttls"
    assert dist.recipients["hotline_ops"] == ("王磊 <w@example.com>",)
    cases = {
        "recipients: {organisation: [gm@example.com], hotline: [w@example.com]}": (
            "error.config.unknown_department",
            "recipients.hotline",
        ),
        "recipients: {organisation: [not-an-address]}": ("error.config.bad_value", "recipients"),
        "recipients: {organisation: [gm@example.com]}\nsmtp_typo: 1": (
            "error.config.unknown_key",
            "smtp_typo",
        ),
        "recipients: {organisation: [gm@example.com]}\ndelivery: link": (
            "error.config.bad_value",
            "",
        ),
    }
    for tail, (key, where) in cases.items():
        (folder / "distribution.yaml").write_text(
            "smtp: {host: smtp.example.com, sender: q@example.com}\n" + tail, encoding="utf-8"
        )
        with pytest.raises(ConfigError) as caught:
            load_params(folder)
        assert caught.value.key == key, tail
        assert where in caught.value.facts.get("key", ""), tail
    (folder / "distribution.yaml").write_text(
        "smtp: {host: h, sender: q@example.com, password: hunter2}\n"
        "recipients: {organisation: [gm@example.com]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_params(folder)
    assert caught.value.key == "error.config.password_in_params"
    assert "hunter2" not in caught.value.message("en")
    shutil.rmtree(project / "outputs", ignore_errors=True)


# ---------------------------------------------------------------------------
# Data values that try to run script, all the way to a browser
# ---------------------------------------------------------------------------
COMPLAINT_XSS = (
    "<img src=x onerror=\"alert('xss-complaint')\">客户反映<script>alert('xss-2')</script>"
)
FINDING_XSS = "\"><svg onload=alert('xss-finding')><a href=\"javascript:alert('xss-3')\">记录</a>"


def _plant_payloads(project: Path) -> None:
    from qmsnb import io as qio

    params = load_params(project / "params")
    month = project / "data" / "2026-10"
    complaints = qio.read_dataset(month / "complaints.csv", "complaints", params).frame
    escalated = complaints.index[complaints["escalated"].fillna(False).astype(bool)][0]
    complaints.loc[escalated, "text"] = COMPLAINT_XSS
    qio.write_export(
        complaints, month / "complaints.csv", "complaints", headers="zh", encoding="gb18030"
    )
    registers = project / "data" / "registers"
    path = qio.find_dataset_file(registers, qio.DATASETS["findings"])
    findings = qio.read_dataset(path, "findings", params).frame
    latest = findings["found_on"].idxmax()
    findings.loc[latest, "statement"] = FINDING_XSS
    findings.loc[latest, "found_on"] = pd.Timestamp("2026-10-12")
    qio.write_export(findings, path, "findings", headers="zh")


@pytest.mark.slow
def test_script_in_a_complaint_text_and_a_finding_statement_is_shown_as_text(
    cached_project: Path, browser
):
    project = cached_project
    from qmsnb.batch import run_batch
    from tests.browser import open_offline

    _plant_payloads(project)
    params = load_params(project / "params")
    result = run_batch(
        params, "2026-10", notebooks=["management_review"], departments=["organisation"], lang="en"
    )
    (report,) = result.reports
    assert report["status"] == "ok", report.get("error")
    page = result.folder / report["html"]
    markup = page.read_text(encoding="utf-8")
    assert safety.check_page(markup) == []
    assert safety.check_folder(result.folder) == []  # the portal too
    assert publish.check_offline(result.folder) == []
    assert "&lt;img src=x onerror=" in markup and "<img src=x" not in markup
    assert "&lt;svg onload=alert(" in markup and "<svg onload" not in markup
    visit = open_offline(browser, page)
    text = visit.page.inner_text("body")
    assert COMPLAINT_XSS in text  # shown, as text
    assert FINDING_XSS in text
    assert visit.dialogs == [] and visit.page_errors == [] and visit.console_errors == []
    assert visit.page.evaluate("document.querySelectorAll('img[onerror], svg[onload]').length") == 0
    assert (
        visit.page.evaluate(
            "[...document.querySelectorAll('a')]"
            ".filter(a => a.href.startsWith('javascript')).length"
        )
        == 0
    )
    assert visit.blocked_requests == []
