"""Internal audit: frequency rules on hand-built registers, schedule, impartial and
competent auditors, coverage, checklists, repeats, action ageing, audit params,
the auditors' widgets headless, and the report through the runner."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from qmsnb import io
from qmsnb.analysis import audit
from qmsnb.config import Auditor, FrequencyRules, Params, PlannedChange, load_params
from qmsnb.exceptions import ConfigError, RecordsError
from qmsnb.records import RecordsStore, open_store


@pytest.fixture
def project(cached_project: Path) -> Path:
    """A private copy of the demo project with its caches filled: this module's
    tests prepare periods, and none of them is about the caches."""
    return cached_project


ALIASES = {
    "热线运营部": "hotline",
    "一中心": "hotline",
    "客服部、一中心": "hotline",
    "客服部": "service",
    "品质部": "quality",
    "行政部": "admin",
}


def _processes() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "process_id": "P1",
                "process_name": "服务提供",
                "category": "customer",
                "importance": "A",
                "owner_department": "客服部、一中心",
                "performers": "热线运营部、品质部/总经理",
                "iso_clauses": "8.5.1;8.5.4",
                "activities": "1、受理来电2、派单—回访",
                "outputs": "热线服务",
                "kpi_text": "接通率≥80%",
                "failure_modes": "1、未接通2、派单错误",
                "consequences": "1、客户不满2、重复投诉",
                "qms_documents": "《员工手册》/质检标准",
            },
            {
                "process_id": "P2",
                "process_name": "采购",
                "category": "support",
                "importance": "D",
                "owner_department": "行政部",
                "performers": "部门领导审批/行政部",
                "iso_clauses": "8.4;8.4.1",
                "activities": "",
                "outputs": "",
                "kpi_text": "",
                "failure_modes": "",
                "consequences": "",
                "qms_documents": "",
            },
            {
                "process_id": "P3",
                "process_name": "质量监督",
                "category": "customer",
                "importance": "B",
                "owner_department": "品质部",
                "performers": "一中心",
                "iso_clauses": "9.1.2",
                "activities": "",
                "outputs": "",
                "kpi_text": "",
                "failure_modes": "",
                "consequences": "",
                "qms_documents": "",
            },
            {
                "process_id": "P4",
                "process_name": "无主过程",
                "category": "management",
                "importance": "C",
                "owner_department": "总经理",
                "performers": "",
                "iso_clauses": "5.1",
                "activities": "",
                "outputs": "",
                "kpi_text": "",
                "failure_modes": "",
                "consequences": "",
                "qms_documents": "",
            },
        ]
    )


def test_register_names_map_to_departments() -> None:
    assert audit.map_departments("客服部、一中心", ALIASES) == [
        "hotline"
    ]  # the whole cell is an alias
    assert audit.map_departments("热线运营部、品质部/总经理", ALIASES) == ["hotline", "quality"]
    assert audit.map_departments("部门领导审批/行政部", ALIASES) == ["admin"]
    assert audit.map_departments(None, ALIASES) == []
    pairs = audit.process_departments(_processes(), ALIASES)
    assert pairs.values.tolist() == [
        ["P1", "hotline", "owner"],
        ["P1", "quality", "performer"],
        ["P2", "admin", "owner"],
        ["P3", "quality", "owner"],
        ["P3", "hotline", "performer"],
    ]
    assert audit.unmapped_processes(_processes(), pairs) == ["P4"]


def _findings(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "finding_id": f"F{i}",
                "audit_id": f"A{i}",
                "process_id": p,
                "department": d,
                "grade": g,
                "clause": "8.5.1",
                "found_on": pd.Timestamp(when),
            }
            for i, (p, d, g, when) in enumerate(rows)
        ]
    )


def test_frequency_rules_on_a_hand_built_register() -> None:
    processes = _processes()
    pairs = audit.process_departments(processes, ALIASES)
    findings = _findings(
        [
            ("P1", "hotline", "major", "2026-05-10"),
            ("P1", "hotline", "minor", "2026-09-01"),
            ("P1", "hotline", "major", "2025-10-31"),  # before the 12-month window: ignored
            ("P1", "hotline", "observation", "2026-09-02"),  # not a nonconformity: ignored
            ("P2", "admin", "minor", "2026-10-30"),
        ]
    )
    alerts = pd.DataFrame(
        [
            {
                "process_id": "P3",
                "department": "hotline",
                "alert": "support",
                "kpi": "answer_rate",
                "months": 3,
            }
        ]
    )
    rises = {"hotline": 50.0, "quality": 10.0}
    changes = [
        PlannedChange(
            month="2026-08", process="P2", description={"zh": "换供应商", "en": "new supplier"}
        ),
        PlannedChange(month="2025-01", process="P3", description={"zh": "旧", "en": "old"}),
        PlannedChange(month="2026-11", process="P1", description={"zh": "将来", "en": "future"}),
    ]
    rules = FrequencyRules(maximum=6)
    freq = audit.audit_frequency(
        pairs, processes, findings, alerts, rises, changes, rules, "2026-10"
    )
    got = {(r.process_id, r.department): r for r in freq.itertuples()}
    # P1 hotline: A=4, findings 1 major + 1 minor = 2+1 = 3 (cap 3), complaints +50 % > 20 % → +1
    p1 = got[("P1", "hotline")]
    assert (
        p1.base,
        p1.finding_extra,
        p1.kpi_extra,
        p1.complaint_extra,
        p1.change_extra,
        p1.raw,
        p1.frequency,
    ) == (4, 3, 0, 1, 0, 8, 6)
    assert p1.interval == 2
    # P1 quality: A=4, complaints +10 % is not above 20 %
    assert got[("P1", "quality")].frequency == 4
    # P2 admin: D=1, one minor +1, declared change in the window +1; support: no complaint rule
    p2 = got[("P2", "admin")]
    assert (p2.finding_extra, p2.change_extra, p2.complaint_extra, p2.frequency) == (1, 1, 0, 3)
    # P3 hotline: B=2, KPI in special support +2, complaints +1; the 2025 change is too old
    p3 = got[("P3", "hotline")]
    assert (p3.kpi_extra, p3.complaint_extra, p3.change_extra, p3.frequency) == (2, 1, 0, 5)
    assert got[("P3", "quality")].frequency == 2
    names = {"process": "P1 服务提供", "department": "热线运营部", "kpi": ""}
    zh = audit.frequency_sentence(freq.iloc[0], names, "zh", rules)
    assert zh.startswith("P1 服务提供(热线运营部):每年审核 6 次")
    assert "1 项严重不符合、1 项一般不符合(+3)" in zh and "上升 50%" in zh and "上限" in zh
    en = audit.frequency_sentence(freq.iloc[0], {**names, "department": "Hotline"}, "en", rules)
    assert "audited 6× a year" in en and "capped at 6 a year" in en
    base = audit.frequency_sentence(got[("P1", "quality")]._asdict(), names, "en", rules)
    assert "no recent nonconformities" in base


def test_complaint_rise_and_kpi_alerts() -> None:
    volume = pd.DataFrame(
        {
            "period": ["2026-07", "2026-08", "2026-09", "2026-10", "2026-10"],
            "department": ["a", "a", "a", "a", "b"],
            "complaints": [100.0, 80.0, 120.0, 150.0, 40.0],
        }
    )
    assert audit.complaint_rise(volume, "2026-10", 3) == {"a": pytest.approx(50.0)}
    kpi = pd.DataFrame(
        {
            "period": ["2026-10"] * 4,
            "department": ["a", "a", "b", "organisation"],
            "kpi": ["k1", "k2", "k1", "k1"],
            "alert": ["warning", "support", "", "support"],
            "miss_streak": [2, 3, 0, 3],
        }
    )
    alerts = audit.kpi_alerts(kpi, "2026-10", {"k1": ("P1", "P2"), "k2": ("P2",)})
    got = {(r.process_id, r.department): (r.alert, r.kpi) for r in alerts.itertuples()}
    assert got == {("P1", "a"): ("warning", "k1"), ("P2", "a"): ("support", "k2")}


def test_schedule_follows_intervals_and_last_audits() -> None:
    freq = pd.DataFrame(
        [
            {"process_id": "P1", "department": "hotline", "frequency": 4},
            {"process_id": "P2", "department": "admin", "frequency": 1},
            {"process_id": "P3", "department": "quality", "frequency": 2},
        ]
    )
    audits = pd.DataFrame(
        [
            {
                "process_id": "P2",
                "department": "admin",
                "planned_month": "2026-06",
                "status": "done",
            },
            {
                "process_id": "P3",
                "department": "quality",
                "planned_month": "2026-09",
                "status": "done",
            },
            {
                "process_id": "P3",
                "department": "quality",
                "planned_month": "2026-10",
                "status": "planned",
            },  # not done: not a last audit
        ]
    )
    plan = audit.schedule(freq, audits, "2026-10")
    months = {(p, d): list(g["month"]) for (p, d), g in plan.groupby(["process_id", "department"])}
    assert months[("P1", "hotline")] == ["2026-11", "2027-02", "2027-05", "2027-08"]
    assert months[("P2", "admin")] == ["2027-06"]  # a year after June 2026
    assert months[("P3", "quality")] == ["2027-03", "2027-09"]  # six-monthly after Sep 2026
    assert plan["month"].is_monotonic_increasing


def test_overdue_pairs_are_spread_over_their_first_interval() -> None:
    freq = pd.DataFrame(
        [{"process_id": f"P{i}", "department": "d", "frequency": 4} for i in range(6)]
    )
    plan = audit.schedule(
        freq,
        pd.DataFrame(columns=["process_id", "department", "planned_month", "status"]),
        "2026-10",
    )
    first = plan[plan["seq"] == 1]["month"].value_counts().to_dict()
    assert first == {"2026-11": 2, "2026-12": 2, "2027-01": 2}
    assert len(plan) == 24


AUDITORS = (
    Auditor(name="甲", department="quality", competences=("*",), max_per_month=1),
    Auditor(name="乙", department="hotline", competences=("customer",)),
    Auditor(name="丙", department="admin", competences=("P2",)),
)


def test_auditors_are_impartial_competent_and_within_their_limit() -> None:
    plan = pd.DataFrame(
        [
            {"month": "2026-11", "process_id": "P1", "department": "hotline"},
            {"month": "2026-11", "process_id": "P1", "department": "quality"},
            {"month": "2026-11", "process_id": "P3", "department": "hotline"},
            {"month": "2026-11", "process_id": "P2", "department": "admin"},
            {"month": "2026-12", "process_id": "P4", "department": "quality"},
        ]
    )
    categories = {"P1": "customer", "P2": "support", "P3": "customer", "P4": "management"}
    out = audit.assign_auditors(plan, AUDITORS, categories)
    assert out[["auditor", "problem"]].values.tolist() == [
        ["甲", ""],  # 乙 is from hotline: never on hotline
        ["乙", ""],  # 甲 is from quality
        [None, "all_busy"],  # only 甲 is eligible, and has had their one audit in November
        [None, "all_busy"],  # 甲 again; 乙 not competent; 丙 is from admin
        [None, "none_eligible"],  # 甲 from quality, 乙 not competent for management, 丙 neither
    ]
    for row in out.dropna(subset=["auditor"]).itertuples():
        assert row.auditor_department != row.department
    assert audit.assign_auditors(plan, (), categories)["problem"].eq("no_auditors").all()


def test_coverage_marks_gaps_planned_and_audited() -> None:
    processes = _processes()
    pairs = audit.process_departments(processes, ALIASES)
    audits = pd.DataFrame(
        [
            {
                "process_id": "P1",
                "department": "hotline",
                "planned_month": "2026-03",
                "status": "done",
            },
            {
                "process_id": "P1",
                "department": "quality",
                "planned_month": "2025-03",
                "status": "done",
            },  # older than 12 months
        ]
    )
    plan = pd.DataFrame([{"month": "2027-01", "process_id": "P2", "department": "admin"}])
    cover = audit.coverage(processes, pairs, audits, plan, "2026-10")
    status = {(r.clause, r.department): r.status for r in cover.itertuples()}
    assert status[("8.5", "hotline")] == "covered"
    assert status[("8.5", "quality")] == "gap"
    assert status[("8.4", "admin")] == "planned"
    assert status[("9.1", "hotline")] == "gap" and status[("9.1", "quality")] == "gap"
    assert status[("8.4", "hotline")] == "not_applicable"
    assert "5.1" in set(cover["clause"]) and not cover[cover["clause"] == "5.1"]["relevant"].any()
    assert list(dict.fromkeys(cover["clause"])) == ["5.1", "8.4", "8.5", "9.1"]


def test_checklist_from_the_register(params: Params) -> None:
    kpi_rows = pd.DataFrame([{"kpi": "answer_rate_vip_billing", "value": 75.5, "status": "red"}])
    items = audit.checklist(_processes().iloc[0].to_dict(), kpi_rows, params, "zh")
    sections = items.groupby("section", sort=False)["item"].apply(list).to_dict()
    assert sections["clauses"] == ["8.5.1", "8.5.4"]
    assert sections["activities"] == ["受理来电", "派单", "回访"]
    assert sections["failure_modes"] == ["未接通", "派单错误"]
    assert sections["documents"] == ["《员工手册》", "质检标准"]
    assert sections["indicators"] == ["VIP用户日接通率(账期)"]
    indicator = items[items["section"] == "indicators"].iloc[0]
    assert (
        indicator["reference"] == "目标 ≥80.00%,本月 75.50%(未达标)"
        and indicator["status"] == "red"
    )
    assert items[items["item"] == "8.5.1"]["reference"].iloc[0] == "8.5.1 生产和服务提供的控制"
    assert items[items["item"] == "未接通"]["reference"].iloc[0] == "客户不满"
    assert audit.clause_title("7.1.1", "en") == "7.1.1 Resources · General"


def test_repeat_findings_and_action_ageing() -> None:
    findings = pd.DataFrame(
        [
            {
                "finding_id": "F1",
                "audit_id": "A1",
                "department": "d",
                "clause": "7.5",
                "found_on": pd.Timestamp("2026-01-10"),
            },
            {
                "finding_id": "F2",
                "audit_id": "A1",
                "department": "d",
                "clause": "7.5",
                "found_on": pd.Timestamp("2026-01-10"),
            },  # same audit: not a repeat
            {
                "finding_id": "F3",
                "audit_id": "A2",
                "department": "d",
                "clause": "7.5",
                "found_on": pd.Timestamp("2026-06-01"),
            },
            {
                "finding_id": "F4",
                "audit_id": "A3",
                "department": "e",
                "clause": "7.5",
                "found_on": pd.Timestamp("2026-07-01"),
            },  # other department
        ]
    )
    assert audit.repeat_findings(findings)["repeat_of"].tolist() == [None, None, "F1", None]
    actions = pd.DataFrame(
        [
            {
                "action_id": "C1",
                "raised_on": "2026-09-01",
                "due_date": "2026-10-15",
                "status": "open",
                "closed_on": None,
                "effectiveness": None,
            },
            {
                "action_id": "C2",
                "raised_on": "2026-10-01",
                "due_date": "2026-11-10",
                "status": "in_progress",
                "closed_on": None,
                "effectiveness": None,
            },
            {
                "action_id": "C3",
                "raised_on": "2026-10-01",
                "due_date": "2026-12-31",
                "status": "open",
                "closed_on": None,
                "effectiveness": None,
            },
            {
                "action_id": "C4",
                "raised_on": "2026-08-01",
                "due_date": "2026-09-01",
                "status": "closed",
                "closed_on": "2026-09-05",
                "effectiveness": " ",
            },
            {
                "action_id": "C5",
                "raised_on": "2026-08-01",
                "due_date": "2026-09-01",
                "status": "closed",
                "closed_on": "2026-08-20",
                "effectiveness": "复查3个月未再发生",
            },
        ]
    )
    for column in ("raised_on", "due_date", "closed_on"):
        actions[column] = pd.to_datetime(actions[column])
    aged = audit.action_ageing(actions, date(2026, 10, 31), 14)
    assert aged["rag"].tolist() == ["red", "yellow", "green", "closed", "closed"]
    assert aged["days_left"].tolist()[:3] == [-16, 10, 61]
    assert aged["age_days"].tolist() == [60, 30, 30, 35, 19]
    assert aged["no_effectiveness_check"].tolist() == [False, False, False, True, False]
    assert aged["closed_late"].tolist() == [False, False, False, True, False]


# ---------------------------------------------------------------------------
# audit.yaml
# ---------------------------------------------------------------------------
def test_audit_params_are_optional_and_strict(project: Path) -> None:
    params = load_params(project / "params")
    assert params.audit.auditor("赵敏").competent_for("S9", "support")
    assert not params.audit.auditor("钱伟").competent_for("S1", "support")
    (project / "params" / "audit.yaml").unlink()
    bare = load_params(project / "params")
    assert bare.audit.auditors == () and bare.audit.frequency.base == {
        "A": 4,
        "B": 2,
        "C": 1,
        "D": 1,
    }
    (project / "params" / "audit.yaml").write_text(
        "auditors:\n  - name: 甲\n    department: sales\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_params(project / "params")
    assert caught.value.key == "error.config.unknown_department"
    assert "auditors[0] (name: 甲).department" in caught.value.message("en")
    (project / "params" / "audit.yaml").write_text("frequncy: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_params(project / "params")
    assert caught.value.key == "error.config.unknown_key"
    (project / "params" / "audit.yaml").write_text("frequency: {base: {A: 4}}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_params(project / "params")
    assert "B, C, D" in caught.value.message("en")


# ---------------------------------------------------------------------------
# The store refuses what the programme must never hold
# ---------------------------------------------------------------------------
@pytest.fixture
def store(params: Params) -> RecordsStore:
    """The demo registers imported into a store (the demo's own way)."""
    from qmsnb import demo

    demo.seed_store(params, params.registers_dir)
    store = open_store(params)
    yield store
    store.close()


def test_store_refuses_partial_and_incompetent_auditors(store: RecordsStore) -> None:
    planned = {
        "process_id": "C3",
        "department": "hotline_ops",
        "planned_month": "2026-12",
        "status": "planned",
    }
    before = store.counts()["audit_programme"]
    cases = [
        ({"auditor": "王磊", "auditor_department": "hotline_ops"}, "error.records.own_department"),
        ({"auditor": "无名氏", "auditor_department": "quality"}, "error.records.unknown_auditor"),
        ({"auditor": "孙丽", "auditor_department": "admin"}, "error.records.not_competent"),
        ({"auditor": "赵敏", "auditor_department": "admin"}, "error.records.auditor_department"),
    ]
    for who, key in cases:
        with pytest.raises(RecordsError) as caught:
            store.insert("audit_programme", {**planned, **who}, "品质部")
        assert caught.value.key == key
        assert caught.value.facts["field"] in ("auditor", "auditor_department")
    assert store.counts()["audit_programme"] == before
    new_id = store.insert(
        "audit_programme", {**planned, "auditor": "钱伟", "auditor_department": "品质部"}, "品质部"
    )
    assert new_id.startswith("IA-2026-")


def test_first_save_adopts_a_register_kept_in_its_file(params: Params) -> None:
    """A store that does not keep findings yet takes the file over before the first save."""
    store = open_store(params)
    file_findings = io.load(params.registers_dir, "findings", params).frame
    audit_id = file_findings["audit_id"].iloc[0]
    new_id = store.insert(
        "findings",
        {
            "audit_id": audit_id,
            "grade": "ofi",
            "clause": "8.5.1",
            "process_id": "C3",
            "department": "hotline_ops",
            "statement": "可改进",
            "auditor": "赵敏",
            "found_on": "2026-10-20",
        },
        "赵敏",
    )
    findings = store.frame("findings")
    assert len(findings) == len(file_findings) + 1 and new_id in set(findings["finding_id"])
    actions = set(store.history("findings")["action"])
    assert actions == {"import", "insert"}
    store.close()


# ---------------------------------------------------------------------------
# Widgets, headless
# ---------------------------------------------------------------------------
@pytest.fixture
def bench(store: RecordsStore, params: Params):
    import qmsnb
    from qmsnb.widgets import audit_workbench

    ctx = qmsnb.open_period("2026-10", "hotline_ops", lang="en", params_dir=params.folder)
    return audit_workbench(ctx, store=store, who="赵敏")


def _counts(store: RecordsStore) -> tuple[dict[str, int], int]:
    return store.counts(), len(store.history())


def test_widget_records_a_finding_and_refuses_a_bad_one(bench, store: RecordsStore) -> None:
    audits = store.frame("audit_programme")
    mine = audits[audits["department"] == "hotline_ops"]
    offered = [v for _, v in bench.audit.options]
    assert set(offered) == set(mine["audit_id"])  # this department's audits, newest month first
    months = mine.set_index("audit_id").loc[offered, "planned_month"].tolist()
    assert months == sorted(months, reverse=True)
    bench.audit.value = mine[mine["process_id"] == "C3"]["audit_id"].iloc[0]
    assert bench.clause.options[0] == "8.5.1"  # the process's own clause first
    # walk the checklist
    first = bench.item_view.value
    bench.next_item.click()
    assert bench.item_view.value != first and "2 / " in bench.item_view.value
    bench.previous_item.click()
    assert bench.item_view.value == first
    bench.use_item.click()
    assert bench.clause.value == "8.5.1" and bench.statement.value == "Clause: 8.5.1"
    # a nonconformity without evidence: refused, nothing saved
    before = _counts(store)
    bench.grade.value = "major"
    bench.statement.value = "排班表未审批"
    bench.evidence.value = "   "
    bench.save_finding.click()
    assert "needs “Evidence”" in bench.message.value
    assert _counts(store) == before
    bench.evidence.value = "抽查10月排班表3份,均无审批签字"
    bench.save_finding.click()
    assert "saved" in bench.message.value
    finding = store.get("findings", bench.last_saved)
    assert (finding["grade"], finding["clause"], finding["department"], finding["auditor"]) == (
        "major",
        "8.5.1",
        "hotline_ops",
        store.get("audit_programme", bench.audit.value)["auditor"],
    )
    assert bench.last_saved in bench.findings_view.value  # the view refreshed
    assert bench.action_finding.value == bench.last_saved


def test_widget_raises_and_updates_actions(bench, store: RecordsStore) -> None:
    bench.audit.value = (
        store.frame("audit_programme")
        .query("department == 'hotline_ops' and process_id == 'C3'")["audit_id"]
        .iloc[0]
    )
    bench.grade.value = "minor"
    bench.statement.value = "x"
    bench.evidence.value = "y"
    bench.found_on.value = date(2026, 10, 12)
    bench.save_finding.click()
    finding_id = bench.last_saved
    before = _counts(store)
    bench.action_finding.value = finding_id
    bench.action_description.value = "修订排班审批流程"
    bench.action_owner.value = "王磊"
    bench.action_raised.value = date(2026, 10, 14)
    bench.action_due.value = date(2026, 10, 1)  # before the finding
    bench.raise_action.click()
    assert "before the finding date 2026-10-12" in bench.message.value
    assert _counts(store) == before
    bench.action_due.value = date(2026, 11, 30)
    bench.raise_action.click()
    action_id = bench.last_saved
    assert store.get("actions", action_id)["finding_id"] == finding_id
    assert bench.action_pick.value == action_id and action_id in bench.actions_view.value
    # closing without a date is refused; with one it is saved
    bench.action_status.value = "closed"
    bench.update_action.click()
    assert "“Closed on”" in bench.message.value
    assert store.get("actions", action_id)["status"] == "open"
    bench.action_closed_on.value = date(2026, 11, 20)
    bench.action_effectiveness.value = "复查一个月排班表均已审批"
    bench.update_action.click()
    record = store.get("actions", action_id)
    assert (record["status"], record["closed_on"], record.version) == ("closed", "2026-11-20", 2)
    # someone else changes the same field after the form was filled: conflict, nothing lost
    bench.action_effectiveness.value = "我的验证"
    store.update("actions", action_id, {"effectiveness": "别人的验证"}, "钱伟")
    bench.update_action.click()
    assert "was changed by 钱伟" in bench.message.value
    assert store.get("actions", action_id)["effectiveness"] == "别人的验证"


def test_widget_plans_audits_and_refuses_own_department(
    bench, store: RecordsStore, tmp_path: Path
) -> None:
    bench.plan_process.value = "C3"
    assert bench.plan_department.value == "hotline_ops"
    bench.plan_month.value = "2026-12"
    before = _counts(store)
    store_auditors = {a.name: a.department for a in bench.ctx.params.audit.auditors}
    assert store_auditors["吴刚"] == "general_affairs"
    bench.plan_auditor.value = "孙丽"  # admin: not competent for customer processes
    bench.plan_button.click()
    assert "not competent" in bench.message.value and _counts(store) == before
    bench.plan_auditor.value = "吴刚"
    bench.plan_button.click()
    new_id = bench.audit.value
    assert store.get("audit_programme", new_id)["auditor"] == "吴刚"
    bench.audit_date.value = date(2026, 12, 8)
    bench.mark_done.click()
    assert store.get("audit_programme", new_id)["status"] == "done"
    assert store.history("audit_programme", new_id)["action"].tolist() == ["insert", "update"]
    # the checklist goes to Excel, formulas neutralised
    bench.export_path.value = str(tmp_path / "checklist.xlsx")
    bench.export_button.click()
    sheet = load_workbook(tmp_path / "checklist.xlsx").worksheets[0]
    assert "8.5.1" in [c.value for c in sheet["B"]]
    assert not [c for row in sheet.iter_rows() for c in row if c.data_type == "f"]


def test_widget_with_own_department_auditor_is_refused(store: RecordsStore, params: Params) -> None:
    import qmsnb
    from qmsnb.widgets import audit_workbench

    ctx = qmsnb.open_period("2026-10", "quality", lang="zh", params_dir=params.folder)
    bench = audit_workbench(ctx, store=store, who="钱伟")
    bench.plan_process.value = "C3"
    assert bench.plan_department.value == "quality"
    bench.plan_auditor.value = "赵敏"  # from quality
    before = _counts(store)
    bench.plan_button.click()
    assert "不能审核本部门的工作" in bench.message.value
    assert _counts(store) == before


# ---------------------------------------------------------------------------
# Sections on the demo, and the notebook through the runner
# ---------------------------------------------------------------------------
def test_sections_tell_the_demo_story(demo_project: Path) -> None:
    import qmsnb

    ctx = qmsnb.open_period(
        "2026-10", "organisation", lang="en", params_dir=demo_project / "params"
    )
    v = audit.view(ctx)
    assert set(v.plan["problem"]) == {""}  # the demo's auditors cover every pair
    for row in v.plan.itertuples():
        assert row.auditor_department != row.department
    text = audit.summary(ctx).text
    assert "internal audits done in 2026" in text and "closed without an effectiveness" in text
    actions = audit.actions_section(ctx)
    assert "Overdue corrective actions to chase" in actions.text
    assert len(audit.findings_section(ctx).figures) == 3
    coverage = audit.coverage_section(ctx)
    assert len(coverage.figures) == 1
    zh = qmsnb.open_period("2026-10", "hotline_ops", lang="zh", params_dir=demo_project / "params")
    programme = audit.programme(zh).text
    assert "每年审核" in programme and "热线运营部" in programme


@pytest.mark.slow
def test_notebook_runs_through_the_runner(cached_project: Path, browser) -> None:
    project = cached_project
    from qmsnb import demo
    from qmsnb.batch import run_batch
    from tests.browser import open_offline

    params = load_params(project / "params")
    demo.seed_store(params, params.registers_dir)
    with open_store(params) as store:  # data from people reaches the report escaped
        audit_id = (
            store.frame("audit_programme").query("department == 'hotline_ops'")["audit_id"].iloc[0]
        )
        store.insert(
            "findings",
            {
                "audit_id": audit_id,
                "grade": "observation",
                "clause": "8.5.1",
                "process_id": "C3",
                "department": "hotline_ops",
                "auditor": "赵敏",
                "statement": "<script>alert('x')</script> 记录",
                "found_on": "2026-10-20",
            },
            "赵敏",
        )
        fingerprint = store.fingerprint()
    result = run_batch(
        params,
        "2026-10",
        notebooks=["internal_audit"],
        departments=["hotline_ops", "organisation"],
        lang="en",
    )
    assert {(r["department"], r["status"]) for r in result.reports} == {
        ("hotline_ops", "ok"),
        ("organisation", "ok"),
    }
    folder = result.folder
    meta = io.read_json(folder / "prepared" / "meta.json")
    assert meta["records_store"]["fingerprint"] == fingerprint
    html = (folder / "hotline_ops" / "internal_audit.html").read_text(encoding="utf-8")
    for heading in (
        "Internal audit",
        "Risk-based audit programme",
        "Schedule for the next 12",
        "Clause coverage",
        "Audit checklists",
        "Findings",
        "Corrective actions",
    ):
        assert heading in html, heading
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    visit = open_offline(browser, folder / "organisation" / "internal_audit.html")
    assert visit.console_errors == [] and visit.page_errors == [] and visit.dialogs == []
    assert visit.blocked_requests == []
    assert visit.page.locator(".js-plotly-plot").count() >= 5


def test_process_label_names_the_first_row_of_each_processes_frame() -> None:
    from types import SimpleNamespace

    from qmsnb.analysis.audit import process_label

    ctx = SimpleNamespace()
    first = pd.DataFrame(
        {"process_id": ["P1", "P2", "P1"], "process_name": ["服务提供", "投诉处理", "重复"]}
    )
    assert process_label(ctx, "P1", first) == "P1 服务提供"  # the first row of P1
    assert process_label(ctx, "P2", first) == "P2 投诉处理"
    assert process_label(ctx, "P9", first) == "P9"
    other = pd.DataFrame({"process_id": ["P1"], "process_name": ["另一个"]})
    assert process_label(ctx, "P1", other) == "P1 另一个"  # another frame: its own names
    numbered = pd.DataFrame({"process_id": [7], "process_name": ["编号"]})
    assert process_label(ctx, "7", numbered) == "7 编号"  # ids compared as text
