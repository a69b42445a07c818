"""The management-review pack: pure computations on hand-built frames, the registry of
inputs, the completeness check, the decisions form against a real store, the report
through the runner (zh and en), and data values that try to run script."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from qmsnb import io
from qmsnb.analysis import review
from qmsnb.config import ORGANISATION, load_params
from qmsnb.context import open_period
from qmsnb.exceptions import RecordsError, UsageError
from qmsnb.records import open_store
from tests.conftest import copy_cached


@pytest.fixture
def project(cached_project: Path) -> Path:
    """A private copy of the demo project with its caches filled: this module's
    tests prepare periods, and none of them is about the caches."""
    return cached_project


# ---------------------------------------------------------------------------
# Pure computations
# ---------------------------------------------------------------------------
def test_month_end_states_counts_open_and_overdue_items_at_each_month_end():
    rows = pd.DataFrame(
        {
            "raised_on": pd.to_datetime(["2026-07-10", "2026-08-05", "2026-08-20", "2026-09-30"]),
            "due_date": pd.to_datetime(["2026-08-10", "2026-09-30", "2026-08-25", "2026-11-30"]),
            "closed_on": pd.to_datetime(["2026-09-02", None, "2026-08-24", None]),
        }
    )
    states = review.month_end_states(
        rows, ["2026-07", "2026-08", "2026-09", "2026-10"], "raised_on", "due_date", "closed_on"
    )
    # July end: #1 open (due Aug). Aug end: #1 open and overdue, #2 open, #3 closed.
    # Sep end: #1 closed, #2 open (due Sep 30 < Oct 1: overdue), #4 open.
    # Oct end: #2 open, overdue; #4 open.
    assert states.to_dict("records") == [
        {"period": "2026-07", "open": 1, "overdue": 0},
        {"period": "2026-08", "open": 2, "overdue": 1},
        {"period": "2026-09", "open": 2, "overdue": 1},
        {"period": "2026-10", "open": 2, "overdue": 1},
    ]


def _kpi_rows(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["period", "department", "kpi", "status", "value", "met"])


def test_status_trend_and_changes():
    kpi = _kpi_rows(
        [
            ("2026-09", ORGANISATION, "a", "green", 90.0, True),
            ("2026-09", ORGANISATION, "b", "red", 70.0, False),
            ("2026-09", ORGANISATION, "c", "yellow", 81.0, True),
            ("2026-10", ORGANISATION, "a", "red", 60.0, False),
            ("2026-10", ORGANISATION, "b", "green", 95.0, True),
            ("2026-10", ORGANISATION, "c", "yellow", 80.5, True),
            ("2026-10", "x", "a", "red", 10.0, False),
        ]
    )
    trend = review.status_trend(kpi, ["2026-08", "2026-09", "2026-10"], ORGANISATION)
    assert trend.to_dict("index") == {
        "2026-08": {"red": 0, "yellow": 0, "green": 0},
        "2026-09": {"red": 1, "yellow": 1, "green": 1},
        "2026-10": {"red": 1, "yellow": 1, "green": 1},
    }
    changes = review.status_changes(kpi, "2026-10", ORGANISATION)
    assert dict(zip(changes["kpi"], changes["change"], strict=True)) == {
        "a": "turned_red",
        "b": "recovered",
    }


def test_process_performance_counts_met_indicators_per_process(params):
    kpis = list(params.kpis)
    # first KPI (answer rate normal billing: processes C3, C4) met, IVR (C3, C4, M3) missed
    kpi = _kpi_rows(
        [
            ("2026-10", ORGANISATION, kpis[0], "green", 80.0, True),
            ("2026-10", ORGANISATION, "ivr_satisfaction", "red", 90.0, False),
            ("2026-10", ORGANISATION, "training_pass_rate", "no_data", None, False),
        ]
    )
    perf = review.process_performance(kpi, params, ["2026-10"])
    got = {r.process: (r.assessed, r.met) for r in perf.itertuples()}
    assert got == {"C3": (2, 1), "C4": (2, 1), "M3": (1, 0)}


def test_top_issues_ranks_by_score_and_counts_a_fact_once():
    issues = [
        review.Issue("c1", 60, "complaints up"),
        review.Issue("c2", 94, "VIP support"),
        review.Issue("c7", 93, "supplier support"),
        review.Issue("c2", 93, "supplier support"),
        review.Issue("c4", 75, "actions late"),
        review.Issue("a", 80, "decision late"),
        review.Issue("e", 61, "risk"),
    ]
    assert [i.text for i in review.top_issues(issues)] == [
        "VIP support",
        "supplier support",
        "decision late",
        "actions late",
        "risk",
    ]
    assert review.top_issues(issues)[1].input == "c7"  # the first one reached wins


def test_complaint_volume_and_rise():
    summary = pd.DataFrame(
        {
            "period": ["2026-09", "2026-09", "2026-10", "2026-10"],
            "category": ["billing", "network", "network", "network"],
            "tickets": [30, 20, 25, 35],
        }
    )
    volume = review.complaint_volume(summary, ["2026-08", "2026-09", "2026-10"])
    assert volume.to_dict("index") == {
        "2026-08": {"billing": 0, "network": 0},
        "2026-09": {"billing": 30, "network": 20},
        "2026-10": {"billing": 0, "network": 60},
    }
    assert review.rise(60, 50) == pytest.approx(0.2)
    assert review.rise(5, 0) is None


# ---------------------------------------------------------------------------
# The registry of inputs
# ---------------------------------------------------------------------------
def test_registry_covers_every_input_of_9_3_2_and_the_gate():
    assert [(i.id, i.clause) for i in review.inputs()] == [
        ("a_previous_actions", "9.3.2 a)"),
        ("b_issues", "9.3.2 b)"),
        ("c1_customer", "9.3.2 c) 1)"),
        ("c2_objectives", "9.3.2 c) 2)"),
        ("c3_processes", "9.3.2 c) 3)"),
        ("c4_nonconformities", "9.3.2 c) 4)"),
        ("c5_monitoring", "9.3.2 c) 5)"),
        ("c6_audits", "9.3.2 c) 6)"),
        ("c7_providers", "9.3.2 c) 7)"),
        ("d_resources", "9.3.2 d)"),
        ("e_risks", "9.3.2 e)"),
        ("f_improvement", "9.3.2 f)"),
        ("gate", "9.1.3"),
    ]
    assert all(i.needs_trend for i in review.inputs() if i.id.startswith("c"))


@pytest.fixture(scope="module")
def contexts(cached_demo: Path, tmp_path_factory: pytest.TempPathFactory):
    """Organisation contexts of 2026-09 and 2026-10 in zh, prepared once."""
    from qmsnb import prepare

    root = tmp_path_factory.mktemp("review") / "project"
    copy_cached(cached_demo, root, ignore=("records",))
    params = load_params(root / "params")
    out = {}
    for period in ("2026-09", "2026-10"):
        folder = root / "prepared" / period
        prepare.prepare(params, period, folder)
        out[period] = open_period(
            period, ORGANISATION, lang="zh", params_dir=root / "params", prepared_dir=folder
        )
    return out


def test_a_domain_plugs_in_its_own_provider(contexts, monkeypatch):
    ctx = contexts["2026-10"]
    monkeypatch.setattr(review, "INPUTS", dict(review.INPUTS))

    @review.register_input("c6_audits", "9.3.2 c) 6)", 36, replace=True)
    def audits_from_the_audit_module(ctx):
        return review.Evidence(has_data=True, headline="from the audit module", status="green")

    with pytest.raises(ValueError):
        review.register_input("c6_audits", "9.3.2 c) 6)", 36)(audits_from_the_audit_module)
    pack = review.assemble(ctx)
    assert pack.states["c6_audits"].evidence.headline == "from the audit module"


def test_a_provider_that_breaks_marks_its_input_missing_not_the_pack(contexts, monkeypatch):
    monkeypatch.setattr(review, "INPUTS", dict(review.INPUTS))

    @review.register_input("c7_providers", "9.3.2 c) 7)", 37, replace=True)
    def broken(ctx):
        raise KeyError("supplier_first_pass")

    pack = review.assemble(contexts["2026-10"])
    state = pack.states["c7_providers"]
    assert state.missing and state.error == "KeyError: 'supplier_first_pass'"
    assert "KeyError" in review.section(pack, "c7_providers").text
    assert pack.states["c6_audits"].completeness == "data"


# ---------------------------------------------------------------------------
# Completeness
# ---------------------------------------------------------------------------
def test_completeness_on_a_month_with_a_missing_input(contexts):
    # 2026-09: no statement on external/internal issues and no gate result
    pack = review.assemble(contexts["2026-09"])
    assert [s.input.id for s in pack.missing] == ["b_issues", "gate"]
    summary = review.summary(pack)
    red = summary.items[1]
    assert "qm-banner-red" in red.markup and "2 项输入既无数据也无书面说明" in red.markup
    assert "9.3.2 b) 与质量管理体系相关的内外部因素的变化" in red.markup
    facts = review.facts(pack)["review"]
    assert facts["complete"] is False and facts["missing"] == ["b_issues", "gate"]
    assert facts["inputs"]["c1_customer"]["completeness"] == "data"
    assert facts["inputs"]["c1_customer"]["trend_periods"] == 11  # Nov 2025 … Sep 2026
    assert json.loads(json.dumps(facts)) == facts  # JSON-native, for the manifest


def test_a_recorded_statement_and_a_gate_result_complete_the_month(contexts):
    ctx = contexts["2026-10"]
    pack = review.assemble(ctx)
    assert [s.input.id for s in pack.missing] == ["gate"]
    state = pack.states["b_issues"]
    assert (
        state.completeness == "statement"
        and "工信部发布新版电信服务投诉处理时限要求" in state.statements[0]
    )
    gated = review.assemble(
        replace(
            ctx,
            gate={
                "status": "pass",
                "datasets": {
                    "calls": {"status": "pass"},
                    "complaints": {"status": "warn", "failures": [{}]},
                },
            },
        )
    )
    assert gated.missing == []
    assert gated.states["gate"].evidence.status == "yellow"
    assert "qm-banner-info" in review.summary(gated).items[1].markup


def test_every_input_of_c_shows_a_trend_over_at_least_three_months(contexts):
    pack = review.assemble(contexts["2026-10"])
    for input_id, state in pack.states.items():
        if not input_id.startswith("c"):
            continue
        assert state.completeness == "data", input_id
        assert state.evidence.trend_periods >= review.MIN_TREND_PERIODS, input_id
        section = review.section(pack, input_id)
        figures = section.figures
        assert figures, f"{input_id} shows no trend chart"
        months = {x for fig in figures for trace in fig.data for x in (trace.x or ())}
        assert len(months) >= review.MIN_TREND_PERIODS, input_id
    volume = review.section(pack, "c1_customer").figures[0]
    assert sum(sum(t.y) for t in volume.data) == int(
        contexts["2026-10"].table("complaint_summary")["tickets"].sum()
    )


def test_the_pack_refuses_a_department(params):
    ctx = review.PeriodContext(
        params=params, period="2026-10", department="hotline_ops", lang="en", kpi=pd.DataFrame()
    )
    with pytest.raises(UsageError) as caught:
        review.assemble(ctx)
    assert caught.value.key == "error.review.organisation_only"


def test_summary_numbers_are_the_months_own(contexts):
    ctx = contexts["2026-10"]
    pack = review.assemble(ctx)
    org = ctx.kpi[(ctx.kpi["period"] == "2026-10") & (ctx.kpi["department"] == ORGANISATION)]
    counts = org["status"].value_counts()
    chips = review.summary(pack).items[3].markup
    assert f"未达标 {counts['red']}<" in chips and f"达标 {counts['green']}<" in chips
    # decisions of earlier reviews: 6 in the demo, 2 done; MR-002, MR-004 and MR-006 overdue
    a = pack.states["a_previous_actions"].evidence
    assert a.facts == {"decisions": 6, "open": 4, "overdue": 3}
    # the VIP billing-period answer rate story: special support, first of the issues
    assert "VIP用户日接通率(账期)" in pack.issues[0].text and "专项帮扶" in pack.issues[0].text
    c4 = pack.states["c4_nonconformities"].evidence
    actions = ctx.register("actions")
    end = pd.Timestamp("2026-11-01")
    late = actions[
        (actions["closed_on"].isna() | (actions["closed_on"] >= end)) & (actions["due_date"] < end)
    ]
    assert c4.facts["actions_overdue"] == len(late) > 0


# ---------------------------------------------------------------------------
# The decisions form (9.3.3) against a real records store
# ---------------------------------------------------------------------------
def test_decisions_are_saved_refused_followed_up_and_carried_into_next_month(project: Path):
    from qmsnb import prepare
    from qmsnb.review_widgets import ReviewForm

    params = load_params(project / "params")
    ctx9 = open_period("2026-09", ORGANISATION, lang="en", params_dir=project / "params")
    with open_store(params) as store:
        form = ReviewForm(ctx9, store=store, who="Zhao Min", missing=["b_issues"])
        assert form.statement_input.value == "b_issues"
        # refused: no decision text; nothing saved
        form.kind.value, form.input.value = "resources", "d_resources"
        form.owner.value, form.department.value = "Sun Li", "admin"
        form.save_decision.click()
        assert "Not saved" in form.message.value and "Decision and action" in form.message.value
        assert form.last_saved is None
        # saved
        form.decision.value = "Two more trainers for <b>new staff</b>"
        form.due.value = date(2026, 12, 15)
        form.save_decision.click()
        assert form.last_saved == "MR-007", form.message.value
        saved = store.get("review_decisions", "MR-007")
        assert (saved["review_period"], saved["status"], saved["due"]) == (
            "2026-09",
            "open",
            "2026-12-15",
        )
        assert "&lt;b&gt;new staff&lt;/b&gt;" in form.decisions_view.value
        # a statement for the missing input
        form.statement.value = "No change in external issues this month."
        form.save_statement.click()
        statements = store.frame("review_statements")
        row = statements[statements["period"] == "2026-09"]
        assert row["statement"].tolist() == ["No change in external issues this month."]
        assert row["input"].tolist() == ["b_issues"] and row["recorded_by"].tolist() == ["Zhao Min"]
        # a store rule: done needs its date
        form.pick.value = "MR-004"
        form.status.value = "done"
        form.closed_on.value = None
        form.save_followup.click()
        assert "needs its “Closed on” date" in form.message.value
        form.closed_on.value = date(2026, 10, 20)
        form.result.value = "Flexible shifts in place"
        form.save_followup.click()
        assert store.get("review_decisions", "MR-004")["status"] == "done"
        assert store.history("review_decisions", "MR-004")["who"].tolist()[-1] == "Zhao Min"
        # unknown input id refused by the store
        with pytest.raises(RecordsError) as caught:
            store.insert(
                "review_statements",
                {
                    "period": "2026-09",
                    "input": "z_unknown",
                    "statement": "x",
                    "recorded_by": "a",
                    "recorded_on": "2026-09-30",
                },
                "a",
            )
        assert "is not an input of the management review" in caught.value.message("en")
    # next month's review: the new decision is input a), the statement completed September
    prepared = project / "prep10"
    prepare.prepare(params, "2026-10", prepared)
    ctx10 = open_period(
        "2026-10", ORGANISATION, lang="en", params_dir=project / "params", prepared_dir=prepared
    )
    a = review.assemble(ctx10).states["a_previous_actions"]
    assert a.evidence.facts == {"decisions": 7, "open": 4, "overdue": 2}
    assert "MR-007" in review.section(review.assemble(ctx10), "a_previous_actions").text
    prepared9 = project / "prep09"
    prepare.prepare(params, "2026-09", prepared9)
    ctx9b = open_period(
        "2026-09", ORGANISATION, lang="en", params_dir=project / "params", prepared_dir=prepared9
    )
    assert [s.input.id for s in review.assemble(ctx9b).missing] == ["gate"]


def test_a_follow_up_on_a_decision_changed_meanwhile_is_a_conflict(project: Path):
    from qmsnb.review_widgets import ReviewForm

    params = load_params(project / "params")
    ctx = open_period("2026-10", ORGANISATION, lang="en", params_dir=project / "params")
    with open_store(params) as store:
        form = ReviewForm(ctx, store=store, who="A", missing=[])
        form.pick.value = "MR-005"
        store.update("review_decisions", "MR-005", {"status": "in_progress"}, "B")
        form.status.value = "cancelled"
        form.save_followup.click()
        assert "Not saved" in form.message.value
        assert store.get("review_decisions", "MR-005")["status"] == "in_progress"


# ---------------------------------------------------------------------------
# The report through the runner
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_review_notebook_through_the_runner_in_zh_and_en(cached_project: Path):
    project = cached_project
    from qmsnb.batch import run_batch

    params = load_params(project / "params")
    for lang, missing_text in (
        ("en", "input(s) have neither data nor a recorded statement"),
        ("zh", "项输入既无数据也无书面说明"),
    ):
        result = run_batch(
            params,
            "2026-10",
            notebooks=["management_review"],
            departments=["organisation"],
            lang=lang,
        )
        (report,) = result.reports
        assert report["status"] == "ok", report.get("error")
        gate_ran = (result.folder / "gate.json").is_file()
        assert report["facts"]["review"]["missing"] == ([] if gate_ran else ["gate"])
        page = (result.folder / report["html"]).read_text(encoding="utf-8")
        for clause in (
            "9.3.2 a)",
            "9.3.2 b)",
            "9.3.2 c) 1)",
            "9.3.2 c) 7)",
            "9.3.2 d)",
            "9.3.2 e)",
            "9.3.2 f)",
            "9.3.3",
        ):
            assert clause in page
        assert (missing_text in page) != gate_ran
        assert "application/vnd.qmsnb.facts+json" not in page and "Facts(" not in page
        manifest = io.read_json(result.folder / "manifest.json")
        assert manifest["reports"][0]["facts"]["review"]["period"] == "2026-10"


def test_the_complaint_summary_cache_follows_the_export_and_the_department_aliases(
    project: Path,
) -> None:
    """Cached per export, and computed again when the params' name/alias tables
    change (an alias added to organisation.yaml re-maps the department)."""
    from qmsnb import prepare

    calls: list[int] = []

    def summary(frame: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(frame))
        return review._complaint_summary(frame)

    params = load_params(project / "params")
    first = prepare.per_export(params, "2026-10", "complaints", "summary-test", summary)
    again = prepare.per_export(params, "2026-10", "complaints", "summary-test", summary)
    assert first is not None and len(calls) == 1
    pd.testing.assert_frame_equal(first, again)
    # a new alias: the same export is read and summarised again
    org = project / "params" / "organisation.yaml"
    text = org.read_text(encoding="utf-8")
    org.write_text(
        text.replace("aliases: [客服中心, 客服部]", "aliases: [客服中心, 客服部, 客服总部]"),
        encoding="utf-8",
    )
    changed = load_params(project / "params")
    assert changed.lookups_fingerprint() != params.lookups_fingerprint()
    prepare.per_export(changed, "2026-10", "complaints", "summary-test", summary)
    assert len(calls) == 2
