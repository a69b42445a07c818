"""Root-cause analysis: hotspots, association rules, fishbone, five whys, fix check,
sections on bad input, the registers' rules and the prepared complaint tables."""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmsnb.analysis import rca
from qmsnb.config import FixCheckRules, RcaParams, load_params
from qmsnb.context import PeriodContext
from qmsnb.exceptions import ConfigError, RecordsError

REPO = Path(__file__).resolve().parents[1]


def _counts(rows: list[tuple[str, str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "period": p,
                "department": d,
                "category": c,
                "subcategory": s,
                "tickets": n,
                "escalated": 0,
            }
            for p, d, c, s, n in rows
        ]
    )


def _tickets(rows: list[tuple[str, str, str, str]], dept: str = "complaints") -> pd.DataFrame:
    """(created_at, category, subcategory, customer) → a complaint_tickets frame."""
    frame = pd.DataFrame(rows, columns=["created_at", "category", "subcategory", "customer_id"])
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    frame.insert(0, "ticket_id", [f"T{i:05d}" for i in range(len(frame))])
    frame["department"] = dept
    frame["channel"] = "hotline"
    frame["text"] = "客户反映" + frame["subcategory"]
    frame["escalated"] = False
    return frame


# ---------------------------------------------------------------------------
# Pareto and rises
# ---------------------------------------------------------------------------
def test_pareto_ranks_and_marks_the_vital_few() -> None:
    frame = pd.DataFrame(
        {"category": ["c", "a", "b", "d", "e", "a", "z"], "tickets": [10, 30, 30, 6, 4, 20, 0]}
    )
    out = rca.pareto(frame, "category", cut=80)
    assert out["category"].tolist() == ["a", "b", "c", "d", "e"]  # a = 30 + 20; z (0) dropped
    assert out["tickets"].tolist() == [50, 30, 10, 6, 4]
    assert out["share"].tolist() == [50.0, 30.0, 10.0, 6.0, 4.0]
    assert out["cumulative"].tolist() == [50.0, 80.0, 90.0, 96.0, 100.0]
    # the vital few: up to and including the group that reaches the cut
    assert out["vital"].tolist() == [True, True, False, False, False]
    assert rca.pareto(frame, "category", cut=85)["vital"].tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert rca.pareto(frame, "category", cut=50)["vital"].tolist() == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert rca.pareto(frame.iloc[0:0], "category").empty


def test_month_on_month_rise_beyond_threshold_is_a_yellow_alert() -> None:
    counts = _counts(
        [
            ("2026-09", "complaints", "network", "broadband_down", 10),
            ("2026-10", "complaints", "network", "broadband_down", 20),  # +100 %
            ("2026-09", "complaints", "billing", "over_charge", 20),
            ("2026-10", "complaints", "billing", "over_charge", 22),  # +10 %: noise
            ("2026-10", "complaints", "marketing", "misleading", 12),  # none before: new
            ("2026-09", "complaints", "handling", "wrong_info", 2),
            ("2026-10", "complaints", "handling", "wrong_info", 5),  # +150 % but only 5
            ("2026-09", "complaints", "install_repair", "late_visit", 9),  # gone this month
        ]
    )
    mom = rca.month_on_month(counts, "2026-10", ["category"], ["2026-09", "2026-10"])
    row = mom.set_index("category")
    assert row.loc["network", "now"] == 20 and row.loc["network", "previous"] == 10
    assert row.loc["network", "change"] == pytest.approx(100.0)
    assert row.loc["billing", "change"] == pytest.approx(10.0)
    assert np.isnan(row.loc["marketing", "change"]) and row.loc["marketing", "previous"] == 0
    assert row.loc["install_repair", "now"] == 0
    assert row.loc["install_repair", "change"] == pytest.approx(-100.0)
    flagged = rca.surges(mom, percent=30, min_tickets=10)
    assert flagged["category"].tolist() == ["network", "marketing"]
    assert flagged["new"].tolist() == [False, True]
    # a threshold above the rise: no alert
    assert rca.surges(mom, percent=120, min_tickets=10)["category"].tolist() == ["marketing"]
    # without last month's export there is nothing to compare with
    blind = rca.month_on_month(counts, "2026-10", ["category"], ["2026-10"])
    assert blind["previous"].isna().all()
    assert rca.surges(blind, percent=30, min_tickets=10).empty


def test_batches_find_many_tickets_of_one_subcategory_in_a_short_window() -> None:
    rows = []
    start = pd.Timestamp("2026-10-01")
    # 30 outages from one compound within 10 hours on the 14th, 30 more spread over the month
    rows += [
        (
            pd.Timestamp("2026-10-14 08:00") + pd.Timedelta(minutes=20 * i),
            "network",
            "broadband_down",
            f"c{i}",
        )
        for i in range(30)
    ]
    rows += [
        (start + pd.Timedelta(hours=24 * i + 3), "network", "broadband_down", f"d{i}")
        for i in range(30)
    ]
    # 300 over-charges, evenly every 2.48 h: 20 in any 48 h, but that is their usual rate
    rows += [
        (start + pd.Timedelta(minutes=149 * i), "billing", "over_charge", f"e{i}")
        for i in range(300)
    ]
    # 12 rude agents in one hour: a cluster, but fewer than 20
    rows += [
        (
            pd.Timestamp("2026-10-20 10:00") + pd.Timedelta(minutes=5 * i),
            "service_attitude",
            "rude",
            f"f{i}",
        )
        for i in range(12)
    ]
    out = rca.batches(_tickets(rows), "2026-10", window_hours=48, min_tickets=20, factor=3)
    assert out["subcategory"].tolist() == ["broadband_down"]
    hit = out.iloc[0]
    # the densest 48 h: the 30 of the 14th plus the spread ones of the 14th and 15th
    assert hit["tickets"] == 32
    assert hit["expected"] == pytest.approx(60 * 48 / (31 * 24))
    assert hit["start"] == pd.Timestamp("2026-10-14 03:00")
    assert hit["customers"] == 32
    # with a lower bar, the rude cluster counts too
    low = rca.batches(_tickets(rows), "2026-10", window_hours=6, min_tickets=10, factor=3)
    assert set(low["subcategory"]) == {"broadband_down", "rude"}


def test_repeat_complainants_and_escalations() -> None:
    frame = _tickets(
        [
            ("2026-10-02 09:00", "network", "broadband_down", "A"),
            ("2026-10-05 09:00", "install_repair", "late_visit", "A"),
            ("2026-10-09 09:00", "network", "broadband_down", "A"),
            ("2026-10-03 09:00", "billing", "over_charge", "B"),
            ("2026-10-04 09:00", "billing", "value_added", "B"),
            ("2026-10-04 10:00", "billing", "over_charge", "C"),
        ]
    )
    frame.loc[[2, 5], "escalated"] = True
    out = rca.repeat_complainants(frame, min_tickets=2)
    assert out["customer_id"].tolist() == ["A", "B"]
    assert out["tickets"].tolist() == [3, 2]
    assert out.iloc[0]["subcategories"] == ["broadband_down", "late_visit"]
    assert out["escalated"].tolist() == [1, 0]
    assert rca.repeat_complainants(frame, min_tickets=3)["customer_id"].tolist() == ["A"]
    esc = rca.escalations(frame)
    assert esc[["subcategory", "tickets", "escalated"]].values.tolist() == [
        ["over_charge", 2, 1],
        ["broadband_down", 2, 1],  # ties: by category id
    ]
    assert esc["rate"].tolist() == [50.0, 50.0]


def test_mask_customer_hides_the_middle() -> None:
    assert rca.mask_customer("13912345678") == "139****5678"
    assert rca.mask_customer("139****0082") == "139****0082"
    assert rca.mask_customer("12345") == "1***"


# ---------------------------------------------------------------------------
# Association rules
# ---------------------------------------------------------------------------
def test_pair_rules_match_a_hand_computed_case() -> None:
    baskets = [frozenset(b) for b in ("AB", "AB", "AC", "A", "B", "C", "ABC", "D")]
    out = rca.pair_rules(baskets, min_baskets=2)
    rules = {(r.antecedent, r.consequent): r for r in out.itertuples()}
    # N = 8; A in 5, B in 4, C in 3; AB in 3, AC in 2, BC in 1 (below min_baskets)
    assert set(rules) == {("A", "B"), ("B", "A"), ("A", "C"), ("C", "A")}
    ab = rules[("A", "B")]
    assert (ab.together, ab.antecedent_baskets, ab.consequent_baskets) == (3, 5, 4)
    assert ab.support == pytest.approx(37.5)
    assert ab.confidence == pytest.approx(60.0)
    assert ab.lift == pytest.approx(0.6 / 0.5)
    assert rules[("B", "A")].confidence == pytest.approx(75.0)
    assert rules[("B", "A")].lift == pytest.approx(0.75 / (5 / 8))
    assert rules[("C", "A")].confidence == pytest.approx(200 / 3)
    assert rules[("A", "C")].lift == pytest.approx((2 / 5) / (3 / 8))
    assert out.iloc[0]["lift"] == pytest.approx(1.2)  # sorted by lift
    # thresholds: confidence ≥ 65 % leaves B → A and C → A
    strict = rca.pair_rules(baskets, min_baskets=2, min_confidence=65)
    assert {(r.antecedent, r.consequent) for r in strict.itertuples()} == {("B", "A"), ("C", "A")}
    assert rca.pair_rules(baskets, min_baskets=2, min_lift=1.1)["antecedent"].tolist() == ["B", "A"]
    assert rca.pair_rules([], min_baskets=1).empty


def test_baskets_group_tickets_by_customer_day_or_day() -> None:
    frame = _tickets(
        [
            ("2026-10-02 09:00", "network", "broadband_down", "A"),
            ("2026-10-02 11:00", "network", "broadband_down", "A"),  # same tag twice: once
            ("2026-10-06 09:00", "install_repair", "late_visit", "A"),
            ("2026-10-02 10:00", "billing", "over_charge", "B"),
        ]
    )
    by_customer = sorted(sorted(b) for b in rca.baskets(frame, "customer"))
    assert by_customer == [["broadband_down", "late_visit"], ["over_charge"]]
    by_customer_day = sorted(sorted(b) for b in rca.baskets(frame, "customer_day"))
    assert by_customer_day == [["broadband_down"], ["late_visit"], ["over_charge"]]
    by_day = sorted(sorted(b) for b in rca.baskets(frame, "day"))
    assert by_day == [["broadband_down", "over_charge"], ["late_visit"]]


# ---------------------------------------------------------------------------
# Fishbone
# ---------------------------------------------------------------------------
def _causes(per_bone: dict[str, int]) -> pd.DataFrame:
    rows = []
    for bone, n in per_bone.items():
        for i in range(n):
            rows.append(
                {
                    "bone": bone,
                    "cause": f"{bone}原因{i}:设备和流程都需要再核实一下的长原因",
                    "evidence_count": (i * 7) % 13,
                }
            )
    return pd.DataFrame(rows)


def test_fishbone_has_every_cause_under_its_category() -> None:
    per_bone = {
        "people": 9,
        "machine": 7,
        "material": 2,
        "method": 8,
        "environment": 3,
        "measurement": 4,
    }
    causes = _causes(per_bone)
    assert len(causes) == 33
    fig = rca.fishbone_figure(causes, "宽带断网投诉激增", "zh")
    bones = {t.meta: t for t in fig.data if t.meta}
    assert set(bones) == set(per_bone)
    for bone, trace in bones.items():
        expected = causes[causes["bone"] == bone]
        assert sorted(c for c, _ in trace.customdata) == sorted(expected["cause"])
        assert sorted(n for _, n in trace.customdata) == sorted(expected["evidence_count"])
        # on its own bone: above the spine for 人机料, below for 法环测, between the
        # bone's outer end and its junction with the spine
        junction = {
            "people": 1,
            "machine": 2,
            "material": 3,
            "method": 1,
            "environment": 2,
            "measurement": 3,
        }[bone]
        upper = bone in rca.UPPER_BONES
        assert all((y > 0) == upper for y in trace.y)
        assert all(junction - 0.5 <= x <= junction for x in trace.x)
        # each label carries its evidence count
        assert all(
            f"({n})" in text for text, (_, n) in zip(trace.text, trace.customdata, strict=True)
        )
    # the six categories are labelled in zh and en, the problem is at the head
    labels = " ".join(a.text for a in fig.layout.annotations)
    for zh, en in (
        ("人", "People"),
        ("机", "Machine"),
        ("料", "Material"),
        ("法", "Method"),
        ("环", "Environment"),
        ("测", "Measurement"),
    ):
        assert zh in labels and en in labels
    assert "宽带断网投诉激增" in labels
    # legible: rows on the fullest bone (9) are spaced at least 30 px apart
    people = bones["people"]
    ys = sorted(people.y)
    px_per_unit = fig.layout.height / (fig.layout.yaxis.range[1] - fig.layout.yaxis.range[0])
    assert min(b - a for a, b in pairwise(ys)) * px_per_unit >= 30


def test_fishbone_text_is_wrapped_and_escaped() -> None:
    text = rca.wrap("<script>alert(1)</script>" + "设备" * 30, columns=20, lines=2)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert text.count("<br>") == 1 and text.endswith("…")
    assert rca.wrap("短原因") == "短原因"


# ---------------------------------------------------------------------------
# Five whys
# ---------------------------------------------------------------------------
PATTERNS = RcaParams().person_patterns


def test_chain_that_stops_at_a_person_is_flagged() -> None:
    chain = {
        "why_1": "坐席解释错误",
        "why_2": "坐席记错了规则",
        "root_cause": "员工粗心,责任心不强",
        "action": "批评教育",
    }
    codes = {i.code: i for i in rca.chain_issues(chain, PATTERNS)}
    assert "person" in codes and codes["person"].facts["pattern"] == "粗心"
    assert "shallow" in codes  # two whys only
    english = {
        "why_1": "wrong price quoted",
        "why_2": "x",
        "why_3": "y",
        "root_cause": "The agent was careless",
        "action": "coaching",
    }
    assert [i.code for i in rca.chain_issues(english, PATTERNS)] == ["person"]
    # a cause the organisation can act on is not flagged, even if a why names a person
    fine = {
        "why_1": "坐席忘记回电",
        "why_2": "交班没有移交",
        "why_3": "系统没有回电提醒",
        "root_cause": "工单系统缺少回电到期提醒",
        "action": "上线提醒",
    }
    assert rca.chain_issues(fine, PATTERNS) == []
    # without a root cause the last why is judged
    open_chain = {"why_1": "上门超时", "why_2": "装维人员态度差"}
    assert [i.code for i in rca.chain_issues(open_chain, PATTERNS)] == ["no_root", "person"]
    # the patterns are configurable
    assert rca.chain_issues(english, {"en": ["nobody"]}) == []


def test_chain_gaps_are_reported() -> None:
    chain = {
        "why_1": "a",
        "why_2": "",
        "why_3": "c",
        "why_4": None,
        "why_5": "e",
        "root_cause": "",
        "action": "",
    }
    issues = rca.chain_issues(chain, PATTERNS)
    assert [i.code for i in issues] == ["gap", "no_root"]
    assert issues[0].facts["missing"] == [2, 4]
    assert rca.whys(chain) == ["a", "", "c", "", "e"]
    assert [i.code for i in rca.chain_issues({"root_cause": "x"}, PATTERNS)] == [
        "no_why",
        "no_action",
    ]


# ---------------------------------------------------------------------------
# Did the fix hold?
# ---------------------------------------------------------------------------
MONTHS = [f"2025-{m:02d}" for m in range(11, 13)] + [f"2026-{m:02d}" for m in range(1, 11)]


def _series(values: list[float]) -> pd.Series:
    return pd.Series(values, index=MONTHS[: len(values)], dtype=float)


RULES = FixCheckRules()


def test_fix_check_on_hand_made_series() -> None:
    before = [40, 44, 38, 42, 41, 39]  # 2025-11 … 2026-04; action done in 2026-05
    held = rca.fix_check(_series([*before, 30, 20, 22, 19, 21]), "2026-05-12", RULES)
    assert held.verdict == "held" and held.reason == "drop"
    assert held.baseline == MONTHS[:6] and held.after == MONTHS[7:11]
    assert held.centre == pytest.approx(244 / 6)
    assert held.sigma == pytest.approx(np.sqrt(244 / 6))  # Poisson floor above the XmR sigma
    assert held.after_mean == pytest.approx(20.5)
    noise = rca.fix_check(_series([*before, 30, 41, 37, 44, 40]), "2026-05-12", RULES)
    assert (noise.verdict, noise.reason) == ("not_held", "no_drop")
    relapse = rca.fix_check(_series([*before, 30, 20, 18, 41, 22]), "2026-05-12", RULES)
    assert (relapse.verdict, relapse.reason) == ("not_held", "relapse")
    early = rca.fix_check(_series([*before, 30, 20, 18]), "2026-05-12", RULES)
    assert (early.verdict, early.reason) == ("not_enough", "after")
    late = rca.fix_check(_series([40, 42, 30, 20, 18, 19, 20]), "2026-01-10", RULES)
    assert (late.verdict, late.reason) == ("not_enough", "before")
    thin = rca.fix_check(_series([2, 3, 1, 2, 3, 2, 1, 0, 0, 0, 0]), "2026-05-12", RULES)
    assert (thin.verdict, thin.reason) == ("not_enough", "thin")


def test_fix_check_detects_real_drops_and_ignores_noise() -> None:
    """Simulated: an over-dispersed series (negative binomial, mean 40) that halves
    after the action is called held; one that does not change is (almost) never."""
    rng = np.random.default_rng(7)

    def draw(mean: float, n: int) -> list[float]:
        # negative binomial with variance 2 × mean (over-dispersed like real complaints)
        return rng.negative_binomial(mean, 0.5, n).astype(float).tolist()

    trials = 300
    detected = sum(
        rca.fix_check(_series([*draw(40, 6), 40.0, *draw(20, 5)]), "2026-05-03", RULES).verdict
        == "held"
        for _ in range(trials)
    )
    false_alarms = sum(
        rca.fix_check(_series([*draw(40, 6), 40.0, *draw(40, 5)]), "2026-05-03", RULES).verdict
        == "held"
        for _ in range(trials)
    )
    assert detected / trials >= 0.85
    assert false_alarms / trials <= 0.04


def test_chain_series_counts_the_chains_group_with_zeros() -> None:
    counts = _counts(
        [
            ("2026-08", "hotline_ops", "service_attitude", "no_callback", 5),
            ("2026-08", "hotline_ops", "service_attitude", "rude", 3),
            ("2026-08", "cs_division", "service_attitude", "no_callback", 7),
            ("2026-10", "hotline_ops", "service_attitude", "no_callback", 2),
        ]
    )
    chain = {
        "department": "hotline_ops",
        "complaint_category": "service_attitude",
        "complaint_subcategory": "no_callback",
    }
    series = rca.chain_series(counts, chain, ["2026-08", "2026-09", "2026-10"])
    assert series.to_dict() == {"2026-08": 5.0, "2026-09": 0.0, "2026-10": 2.0}
    whole = rca.chain_series(
        counts, {**chain, "complaint_subcategory": None}, ["2026-08", "2026-10"]
    )
    assert whole.to_dict() == {"2026-08": 8.0, "2026-10": 2.0}


# ---------------------------------------------------------------------------
# Sections on bad input (hand-built contexts, no batch)
# ---------------------------------------------------------------------------
def _context(
    tickets: pd.DataFrame,
    counts: pd.DataFrame,
    months: list[str],
    department: str = "complaints",
    lang: str = "en",
    registers: dict[str, pd.DataFrame] | None = None,
) -> PeriodContext:
    params = load_params(REPO / "params")
    return PeriodContext(
        params=params,
        period="2026-10",
        department=department,
        lang=lang,
        kpi=pd.DataFrame(),
        registers=registers or {},
        meta={"complaint_months": months},
        tables={"complaint_counts": counts, "complaint_tickets": tickets},
        batch=True,
    )


def test_empty_period_says_so_in_words() -> None:
    ctx = _context(pd.DataFrame(), _counts([]), ["2026-09"])
    for section in (
        rca.summary(ctx),
        rca.hotspots(ctx),
        rca.rises(ctx),
        rca.batch_section(ctx),
        rca.escalation_section(ctx),
        rca.associations(ctx),
    ):
        assert section.figures == [] or section.title == ctx.t("rca.rises")
    assert ctx.t("rca.narrative.no_export", period="Oct 2026") in rca.summary(ctx).text
    assert ctx.t("rca.narrative.no_export", period="Oct 2026") in rca.hotspots(ctx).text
    assert ctx.t("rca.no_fishbone") in rca.fishbones(ctx).text
    assert ctx.t("rca.no_chains") in rca.five_whys_section(ctx).text
    assert ctx.t("rca.no_fix") in rca.fix_section(ctx).text
    # an export with no ticket for this department
    other = _context(pd.DataFrame(), _counts([("2026-10", "admin", "billing", "", 3)]), ["2026-10"])
    assert ctx.t("rca.narrative.no_tickets", period="Oct 2026") in rca.hotspots(other).text
    assert rca.hotspots(other).figures == []


def test_a_handful_of_tickets_gets_a_table_not_a_chart() -> None:
    rows = [
        ("2026-10-03 10:00", "network", "broadband_down", "A"),
        ("2026-10-04 10:00", "network", "broadband_down", "B"),
        ("2026-10-05 10:00", "billing", "over_charge", "C"),
    ]
    counts = _counts(
        [
            ("2026-10", "complaints", "network", "broadband_down", 2),
            ("2026-10", "complaints", "billing", "over_charge", 1),
            ("2026-09", "complaints", "network", "broadband_down", 1),
        ]
    )
    ctx = _context(_tickets(rows), counts, ["2026-09", "2026-10"])
    hot = rca.hotspots(ctx)
    assert hot.figures == []
    assert ctx.t("rca.pareto_few", count=3, minimum=20) in hot.text
    assert "Broadband down" in hot.text
    # 2 tickets after 1: +100 %, but far below the minimum: no yellow alert
    assert "Yellow alert" not in rca.summary(ctx).text
    assert ctx.t("rca.no_batches") in rca.batch_section(ctx).text


def test_sections_show_records_and_escape_them() -> None:
    chains = pd.DataFrame(
        [
            {
                "chain_id": "5W-001",
                "problem": "<b>bold</b> problem",
                "department": "complaints",
                "complaint_category": "network",
                "complaint_subcategory": "broadband_down",
                "hotspot": "batch",
                "period": "2026-10",
                "why_1": "outage",
                "why_2": None,
                "why_3": "no spare",
                "root_cause": "agent was careless",
                "bone": "people",
                "action": None,
                "action_done_on": None,
                "analyst": "Zhao",
                "recorded_on": "2026-10-20",
            }
        ]
    )
    ctx = _context(pd.DataFrame(), _counts([]), ["2026-10"], registers={"five_whys": chains})
    text = rca.five_whys_section(ctx).text
    assert "&lt;b&gt;bold&lt;/b&gt; problem" in text and "<b>bold</b>" not in text
    assert ctx.t("rca.chain.person_flag") in text
    assert "Why 2 is empty" in text  # the gap in words
    assert ctx.t("rca.issue.no_action") in text


# ---------------------------------------------------------------------------
# Params, registers, prepared tables
# ---------------------------------------------------------------------------
def test_rca_yaml_is_optional_and_strict(tmp_path: Path) -> None:
    shutil.copytree(REPO / "params", tmp_path / "params")
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    folder = tmp_path / "params"
    assert load_params(folder).rca.hotspots.surge_percent == 30
    (folder / "rca.yaml").unlink()
    assert load_params(folder).rca == RcaParams()
    (folder / "rca.yaml").write_text("hotspots:\n  surge_pct: 20\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_params(folder)
    assert (
        err.value.key == "error.config.unknown_key"
        and "hotspots.surge_pct" in err.value.facts["key"]
    )
    (folder / "rca.yaml").write_text("association:\n  basket: week\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_params(folder)
    assert err.value.key == "error.config.bad_value"


def test_store_rules_for_root_cause_records(params) -> None:
    from qmsnb.records import open_store

    cause = {
        "problem": "宽带断网",
        "department": "complaints",
        "complaint_category": "网络质量",
        "complaint_subcategory": "宽带断网",
        "bone": "机",
        "cause": "OLT老化",
        "evidence_count": 45,
        "recorded_by": "赵敏",
        "recorded_on": "2026-10-20",
    }
    with open_store(params, url=f"sqlite:///{params.root / 'rca.sqlite'}") as store:
        cid = store.insert("fishbone_causes", cause, who="赵敏")
        saved = store.get("fishbone_causes", cid)
        assert (saved["bone"], saved["complaint_subcategory"]) == ("machine", "broadband_down")
        with pytest.raises(RecordsError) as err:
            store.insert(
                "fishbone_causes", {**cause, "complaint_subcategory": "多扣费"}, who="赵敏"
            )
        assert err.value.key == "error.records.subcategory_mismatch"
        assert "网络质量" in err.value.message("zh")
        chain = {
            "problem": "未按约回电",
            "department": "hotline_ops",
            "complaint_category": "service_attitude",
            "why_1": "未回电",
            "root_cause": "系统无提醒",
            "analyst": "钱伟",
            "recorded_on": "2026-03-20",
        }
        with pytest.raises(RecordsError) as err:
            store.insert("five_whys", {**chain, "action_done_on": "2026-04-15"}, who="钱伟")
        assert err.value.key == "error.records.action_required"
        with pytest.raises(RecordsError) as err:
            store.insert(
                "five_whys",
                {**chain, "action": "上线提醒", "action_done_on": "2099-01-01"},
                who="钱伟",
            )
        assert err.value.key == "error.records.done_in_future"
        with pytest.raises(RecordsError) as err:
            store.insert(
                "five_whys",
                {**chain, "action": "上线提醒", "action_done_on": "2026-03-01"},
                who="钱伟",
            )
        assert err.value.key == "error.records.date_before"
        chain_id = store.insert(
            "five_whys", {**chain, "action": "上线提醒", "action_done_on": "2026-04-15"}, who="钱伟"
        )
        # generated ids follow the register's prefix, after the demo's adopted records
        assert chain_id == "5W-005" and cid == "FB-019"


def test_prepare_writes_complaint_counts_and_the_months_tickets(
    demo_project: Path, tmp_path: Path
) -> None:
    from qmsnb import prepare
    from qmsnb.io import load

    params = load_params(demo_project / "params")
    meta = prepare.prepare(params, "2026-10", tmp_path)
    tables = prepare.read_tables(tmp_path, meta)
    assert set(meta["tables"]) >= {"complaint_counts", "complaint_tickets"}
    assert len(meta["complaint_months"]) == 12
    counts, tickets = tables["complaint_counts"], tables["complaint_tickets"]
    raw = load(params.data_dir / "2026-10", "complaints", params).frame
    october = counts[counts["period"] == "2026-10"]
    assert october["tickets"].sum() == len(raw) == len(tickets)
    assert october["escalated"].sum() == raw["escalated"].sum()
    by_sub = raw.groupby("subcategory").size()
    assert october.groupby("subcategory")["tickets"].sum().to_dict() == by_sub.to_dict()
    assert list(tickets.columns) == prepare.TICKET_COLUMNS
    assert tickets["text"].str.len().max() <= prepare.TEXT_CHARS
    assert set(counts["period"]) == set(meta["complaint_months"])


def test_complaint_counts_on_a_hand_built_frame() -> None:
    from qmsnb.prepare import complaint_counts

    frame = pd.DataFrame(
        {
            "ticket_id": ["1", "2", "3", "4"],
            "department": ["complaints", "complaints", "complaints", None],
            "category": ["network", "network", "billing", "billing"],
            "subcategory": ["broadband_down", "broadband_down", None, "over_charge"],
            "escalated": pd.array([True, False, True, True], dtype="boolean"),
        }
    )
    out = complaint_counts(frame, "2026-10")
    assert out.values.tolist() == [
        ["2026-10", "complaints", "billing", "", 1, 1],
        ["2026-10", "complaints", "network", "broadband_down", 2, 1],
    ]


# ---------------------------------------------------------------------------
# Whole-column baskets and repeat complainants = the group-by-group loops
# ---------------------------------------------------------------------------
def _random_tickets(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Tickets typed as the prepared table types them, with ties in time, missing
    customers, subcategories and times, and repeat customers."""
    rng = np.random.default_rng(seed)
    subs = np.array(["broadband_down", "late_visit", "over_charge", "value_added", "rude", ""])
    created = pd.Timestamp("2026-10-01") + pd.to_timedelta(
        rng.integers(0, 31 * 24, n), unit="h"
    )  # hours: many tickets share a time
    frame = pd.DataFrame(
        {
            "ticket_id": [f"T{i:05d}" for i in range(n)],
            "created_at": pd.Series(created).astype("datetime64[us]"),
            "department": rng.choice(["complaints", "billing"], n),
            "category": "network",
            "subcategory": rng.choice(subs, n),
            "customer_id": [f"1390000{c:04d}" for c in rng.integers(0, n // 3, n)],
            "escalated": rng.random(n) < 0.2,
        }
    )
    for column in ("ticket_id", "department", "category", "subcategory", "customer_id"):
        frame[column] = frame[column].astype("string")
    frame["escalated"] = frame["escalated"].astype("boolean")
    frame.loc[rng.random(n) < 0.05, "customer_id"] = pd.NA
    frame.loc[rng.random(n) < 0.05, "subcategory"] = pd.NA
    frame.loc[rng.random(n) < 0.02, "created_at"] = pd.NaT
    frame.loc[rng.random(n) < 0.05, "escalated"] = pd.NA
    return frame


@pytest.mark.parametrize("kind", ["customer", "customer_day", "day"])
def test_baskets_are_the_group_by_groups_in_key_order(kind: str) -> None:
    tickets = _random_tickets()
    frame = tickets.dropna(subset=["subcategory"])
    frame = frame[frame["subcategory"].astype(str) != ""]
    keys = rca.BASKETS[kind](frame)
    ok = keys.notna()
    items = frame.loc[ok, "subcategory"].astype(str)
    expected = [frozenset(group) for _, group in items.groupby(keys[ok].to_numpy())]
    got = rca.baskets(tickets, kind)
    assert got == expected  # same baskets in the same order: the rules' ties sort alike
    pd.testing.assert_frame_equal(rca.pair_rules(got, 2), rca.pair_rules(expected, 2))
    assert rca.baskets(tickets[tickets["subcategory"] == "nothing"], kind) == []


@pytest.mark.parametrize("minimum", [1, 2, 3])
def test_repeat_complainants_are_the_customer_by_customer_loop(minimum: int) -> None:
    tickets = _random_tickets()
    frame = tickets.dropna(subset=["customer_id"]).sort_values("created_at")
    sizes = frame.groupby("customer_id").size()
    repeat = sizes[sizes >= minimum].index
    rows = []
    for customer, group in frame[frame["customer_id"].isin(repeat)].groupby("customer_id"):
        subs = group["subcategory"].astype("string").fillna("")
        rows.append(
            {
                "customer_id": customer,
                "tickets": len(group),
                "subcategories": list(dict.fromkeys(subs)),
                "first": group["created_at"].iloc[0],
                "last": group["created_at"].iloc[-1],
                "escalated": int(group["escalated"].astype("boolean").fillna(False).sum()),
            }
        )
    columns = ["customer_id", "tickets", "subcategories", "first", "last", "escalated"]
    expected = (
        pd.DataFrame(rows, columns=columns)
        .sort_values(["tickets", "last"], ascending=[False, False])
        .reset_index(drop=True)
    )
    got = rca.repeat_complainants(tickets, minimum)
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert rca.repeat_complainants(tickets, 10_000).empty


def test_lazy_prepared_tables_read_each_table_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qmsnb import io, prepare

    frames = {
        "complaint_counts": _counts([("2026-10", "complaints", "network", "rude", 3)]),
        "complaint_tickets": _random_tickets(50),
    }
    for name, frame in frames.items():
        io.write_parquet(tmp_path / f"{name}.parquet", frame)
    meta = {"tables": [*frames, "not_written"]}
    eager = prepare.read_tables(tmp_path, meta)
    read: list[str] = []
    real = io.read_parquet
    monkeypatch.setattr(
        io, "read_parquet", lambda path, *a, **k: read.append(path.stem) or real(path, *a, **k)
    )
    lazy = prepare.read_tables(tmp_path, meta, lazy=True)
    assert sorted(lazy) == sorted(eager) == sorted(frames) and read == []
    pd.testing.assert_frame_equal(lazy["complaint_counts"], eager["complaint_counts"])
    lazy.get("complaint_counts")
    assert read == ["complaint_counts"]  # read once, only what was asked for
    pd.testing.assert_frame_equal(lazy["complaint_tickets"], eager["complaint_tickets"])
    assert lazy.get("not_written") is None and "not_written" not in lazy
    context = PeriodContext.__new__(PeriodContext)
    context.tables = lazy
    assert context.table("not_written").empty
