"""Quality objectives: annual split, year to date, projection, narrative on the demo."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qmsnb import open_period
from qmsnb.analysis import objectives as obj


def _values(months: list[str], num: list[float], den: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": months,
            "numerator": num,
            "denominator": den,
            "value": [100 * n / d for n, d in zip(num, den, strict=True)],
        }
    )


def test_quarter_and_month_targets() -> None:
    row = pd.Series(
        {
            "annual_target": 74.56,
            "q1_target": 72.0,
            "q2_target": None,
            "q3_target": 75.0,
            "q4_target": 76.0,
        }
    )
    assert obj.quarter_targets(row) == {1: 72.0, 2: 74.56, 3: 75.0, 4: 76.0}
    months = obj.monthly_targets(row)
    assert months[1] == months[3] == 72.0 and months[4] == 74.56 and months[12] == 76.0


def test_ytd_and_quarters_sum_counts_within_the_year() -> None:
    values = _values(
        ["2025-12", "2026-01", "2026-02", "2026-04"], [10, 80, 90, 45], [100, 100, 100, 50]
    )
    assert obj.ytd(values, 2026, "2026-04") == pytest.approx(100 * 215 / 250)
    quarters = obj.quarter_actuals(values, 2026, "2026-04")
    assert quarters[1] == pytest.approx(85.0)
    assert quarters[2] == pytest.approx(90.0)
    assert pd.isna(quarters[3]) and pd.isna(quarters[4])


def test_projection_runs_the_last_three_months_forward() -> None:
    months = [f"2026-{m:02d}" for m in range(1, 11)]
    num = [90.0] * 7 + [70.0, 70.0, 70.0]
    values = _values(months, num, [100.0] * 10)
    # two months left at the recent 70 %: (700 + 210 + 2 × 70) / (1000 + 200)
    expected = 100 * (630 + 210 + 140) / 1200
    assert obj.projection(values, 2026, "2026-10") == pytest.approx(expected)


@pytest.mark.slow
def test_narrative_and_sections_tell_the_demo_story(demo_project: Path) -> None:
    ctx = open_period("2026-10", "hotline_ops", lang="en", params_dir=demo_project / "params")
    lines = obj.narrative(ctx)
    assert lines[0].endswith("in Oct 2026.")
    vip = [line for line in lines if "VIP answer rate (billing period)" in line]
    assert vip and "special support is due" in vip[0] and "months running" in vip[0]
    attainment = obj.attainment(ctx)
    assert "VIP answer rate (billing period)" in attainment.text
    trends = obj.trends(ctx)
    assert len(trends.figures) == 1
    titles = [a.text for a in trends.figures[0].layout.annotations]
    assert "VIP answer rate (billing period)" in titles
    zh = open_period("2026-10", "hotline_ops", lang="zh", params_dir=demo_project / "params")
    assert any("VIP用户日接通率(账期)" in line and "专项帮扶" in line for line in obj.narrative(zh))
    plans = obj.plans(zh)
    assert "QO-2026-01" in plans.text and "已逾期" in plans.text


@pytest.mark.slow
def test_organisation_view_has_department_heatmap(demo_project: Path) -> None:
    ctx = open_period("2026-10", "organisation", lang="en", params_dir=demo_project / "params")
    section = obj.attainment(ctx)
    heatmap = section.figures[0]
    assert "Hotline Operations" in list(heatmap.data[0].y)
    assert "Complaint centre direct resolution" in list(heatmap.data[0].x)


def test_objective_rows_are_computed_once_and_handed_out_as_copies(demo_project: Path) -> None:
    ctx = open_period("2026-10", "organisation", lang="en", params_dir=demo_project / "params")
    rows = obj.objective_rows(ctx)
    assert not rows.empty
    pd.testing.assert_frame_equal(rows, obj._objective_rows(ctx))
    rows.loc[:, "verdict"] = "changed"
    again = obj.objective_rows(ctx)
    assert "changed" not in set(again["verdict"])
    assert again is not obj.objective_rows(ctx)
