"""The KPI engine on small hand-built frames with hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from qmsnb.config import KpiCatalogue, load_params
from qmsnb.kpi import assess, compute_period, status_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalogue() -> KpiCatalogue:
    return load_params(REPO / "params").catalogue


def _calls() -> pd.DataFrame:
    # hotline_ops: 4 VIP billing calls, 3 answered; 2 normal non-billing, 1 answered
    # cs_division: 2 VIP billing calls, 2 answered
    rows = [
        ("hotline_ops", "vip", True, True, True, 5),
        ("hotline_ops", "vip", True, True, False, 4),
        ("hotline_ops", "vip", True, True, None, None),
        ("hotline_ops", "vip", True, False, None, None),
        ("hotline_ops", "normal", False, True, True, 3),
        ("hotline_ops", "normal", False, False, None, None),
        ("cs_division", "vip", True, True, True, 5),
        ("cs_division", "vip", True, True, True, 2),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "department",
            "queue",
            "billing_period",
            "answered",
            "first_call_resolved",
            "ivr_score",
        ],
    )
    frame["billing_period"] = frame["billing_period"].astype("boolean")
    frame["answered"] = frame["answered"].astype("boolean")
    frame["first_call_resolved"] = frame["first_call_resolved"].astype("boolean")
    frame["ivr_score"] = frame["ivr_score"].astype("Int64")
    frame["ivr_rated"] = frame["ivr_score"].notna()
    frame["ivr_satisfied"] = (frame["ivr_score"] >= 4).astype("boolean")
    return frame


def _value(values: pd.DataFrame, dept: str, kpi: str) -> pd.Series:
    return values[(values["department"] == dept) & (values["kpi"] == kpi)].iloc[0]


def test_ratio_per_department_and_organisation(catalogue: KpiCatalogue) -> None:
    values = compute_period({"calls": _calls()}, catalogue, "2026-10")
    row = _value(values, "hotline_ops", "answer_rate_vip_billing")
    assert (row["numerator"], row["denominator"]) == (3, 4)
    assert row["value"] == pytest.approx(75.0)
    assert _value(values, "cs_division", "answer_rate_vip_billing")["value"] == pytest.approx(100.0)
    org = _value(values, "organisation", "answer_rate_vip_billing")
    # summed counts, not the mean of 75 % and 100 %
    assert (org["numerator"], org["denominator"]) == (5, 6)
    assert org["value"] == pytest.approx(500 / 6)
    # FCR: answered calls with first_call_resolved true / answered calls
    assert _value(values, "hotline_ops", "first_call_resolution")["value"] == pytest.approx(200 / 4)
    # IVR: scores 4-5 among rated calls: hotline 5,4,3 → 2/3
    assert _value(values, "hotline_ops", "ivr_satisfaction")["value"] == pytest.approx(200 / 3)
    assert _value(values, "organisation", "ivr_satisfaction")["value"] == pytest.approx(300 / 5)


def test_manual_indicator_and_org_from_counts(catalogue: KpiCatalogue) -> None:
    monthly = pd.DataFrame(
        {
            "period": ["2026-10"] * 3,
            "department": ["hotline_ops", "cs_division", "hotline_ops"],
            "indicator": ["staff_turnover", "staff_turnover", "headcount"],
            "numerator": [10.0, 2.0, None],
            "denominator": [100.0, 50.0, None],
            "value": [10.0, 4.0, 100.0],
        }
    )
    values = compute_period({"monthly_indicators": monthly}, catalogue, "2026-10")
    assert _value(values, "hotline_ops", "staff_turnover")["value"] == 10.0
    assert _value(values, "organisation", "staff_turnover")["value"] == pytest.approx(1200 / 150)


def test_status_rules(catalogue: KpiCatalogue) -> None:
    kpis = {k.id: k for k in catalogue.kpis}
    vip = kpis["answer_rate_vip_billing"]  # >= 80, margin 2
    assert status_of(vip, 79.99, 2.0) == "red"
    assert status_of(vip, 80.0, 2.0) == "yellow"
    assert status_of(vip, 81.9, 2.0) == "yellow"
    assert status_of(vip, 82.0, 2.0) == "green"
    assert status_of(vip, math.nan, 2.0) == "no_data"
    turnover = kpis["staff_turnover"]  # <= 10.96
    assert status_of(turnover, 11.0, 2.0) == "red"
    assert status_of(turnover, 10.0, 2.0) == "yellow"
    assert status_of(turnover, 8.0, 2.0) == "green"
    on_time = kpis["complaint_on_time"]  # min_base 30
    assert status_of(on_time, 50.0, 2.0, base=12) == "small_base"
    assert status_of(on_time, 50.0, 2.0, base=30) == "red"


def test_streaks_alerts_and_change(catalogue: KpiCatalogue) -> None:
    months = ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]
    vip = [85.0, 79.0, 81.0, 78.0, 77.0, 76.0]
    values = pd.DataFrame(
        {
            "period": months,
            "department": "hotline_ops",
            "kpi": "answer_rate_vip_billing",
            "numerator": vip,
            "denominator": 100.0,
            "value": vip,
        }
    )
    out = assess(values, catalogue).set_index("period")
    assert out["miss_streak"].tolist() == [0, 1, 0, 1, 2, 3]
    assert out["alert"].tolist() == ["", "", "", "", "warning", "support"]
    assert out.loc["2026-10", "change"] == pytest.approx(-1.0)
    assert math.isnan(out.loc["2026-05", "change"])


def test_gap_in_months_restarts_the_streak(catalogue: KpiCatalogue) -> None:
    values = pd.DataFrame(
        {
            "period": ["2026-07", "2026-08", "2026-10"],
            "department": "hotline_ops",
            "kpi": "answer_rate_vip_billing",
            "numerator": [70.0, 70.0, 70.0],
            "denominator": 100.0,
            "value": [70.0, 70.0, 70.0],
        }
    )
    out = assess(values, catalogue).set_index("period")
    assert out.loc["2026-08", "alert"] == "warning"
    assert out.loc["2026-10", "miss_streak"] == 1  # September is missing: no run across the gap
    assert math.isnan(out.loc["2026-10", "change"])
