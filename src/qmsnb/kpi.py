"""The KPI engine: indicators per department and month, their status and warnings.

An indicator of the catalogue (``params/kpis.yaml``) is measured by a *measure
kind*, found in a small registry (:data:`MEASURES`): ``ratio`` counts rows of an
export (denominator: rows matching ``where``; numerator: those also matching
``numerator``), ``manual`` takes the value reported in ``monthly_indicators``.
Organisation-wide values are recomputed from the summed numerators and
denominators, never averaged from department rates.

Status follows the domain's rule: red misses the target; yellow meets it by less
than the catalogue's margin; green meets it comfortably. An indicator below target
``warning_months`` months running raises an early warning, ``support_months``
months running calls for special support.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qmsnb.config import ORGANISATION, Kpi, KpiCatalogue, ManualMeasure, RatioMeasure

#: Columns of a KPI value table.
VALUE_COLUMNS = ["period", "department", "kpi", "numerator", "denominator", "value"]
#: Optional column of an export frame: how many identical records the row stands
#: for (the columnar prepare hands over one row per distinct combination).
WEIGHT = "_count"

Compute = Callable[[Kpi, Mapping[str, pd.DataFrame], str], pd.DataFrame]
MEASURES: dict[str, Compute] = {}


def register_measure(kind: str) -> Callable[[Compute], Compute]:
    """Register a function computing one measure kind (``ratio``, ``manual``, ...)."""

    def deco(fn: Compute) -> Compute:
        MEASURES[kind] = fn
        return fn

    return deco


def _mask(frame: pd.DataFrame, spec: Mapping[str, Any]) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, wanted in spec.items():
        series = frame[column]
        if isinstance(wanted, list):
            mask &= series.isin(wanted).fillna(False).astype(bool)
        elif wanted is None:
            mask &= series.isna()
        else:
            mask &= series.eq(wanted).fillna(False).astype(bool)
    return mask


def _with_org(rows: pd.DataFrame) -> pd.DataFrame:
    """Append the organisation-wide row computed from summed numerator/denominator."""
    if rows.empty:
        return rows
    num, den = rows["numerator"].sum(min_count=1), rows["denominator"].sum(min_count=1)
    if pd.notna(num) and pd.notna(den) and rows["denominator"].notna().all():
        value = 100.0 * num / den if den else np.nan
    else:  # values reported without their counts: the plain mean is all we can say
        value = rows["value"].mean()
        num = den = np.nan
    org = pd.DataFrame(
        [{"department": ORGANISATION, "numerator": num, "denominator": den, "value": value}]
    )
    return pd.concat([rows, org], ignore_index=True)


@register_measure("ratio")
def _ratio(kpi: Kpi, frames: Mapping[str, pd.DataFrame], period: str) -> pd.DataFrame:
    measure = kpi.measure
    assert isinstance(measure, RatioMeasure)
    frame = frames.get(measure.dataset)
    if frame is None or frame.empty:
        return pd.DataFrame(columns=["department", "numerator", "denominator", "value"])
    base = _mask(frame, measure.where)
    hit = base & _mask(frame, measure.numerator)
    weight = frame[WEIGHT].to_numpy(dtype="int64") if WEIGHT in frame.columns else 1
    grouped = (
        pd.DataFrame(
            {
                "department": frame["department"],
                "den": base.astype(int) * weight,
                "num": hit.astype(int) * weight,
            }
        )
        .groupby("department", observed=True)[["num", "den"]]
        .sum()
    )
    grouped = grouped[grouped["den"] > 0]
    rows = pd.DataFrame(
        {
            "department": grouped.index.astype(str),
            "numerator": grouped["num"].astype(float).to_numpy(),
            "denominator": grouped["den"].astype(float).to_numpy(),
        }
    )
    rows["value"] = 100.0 * rows["numerator"] / rows["denominator"]
    return rows


@register_measure("manual")
def _manual(kpi: Kpi, frames: Mapping[str, pd.DataFrame], period: str) -> pd.DataFrame:
    measure = kpi.measure
    assert isinstance(measure, ManualMeasure)
    frame = frames.get(measure.dataset)
    if frame is None or frame.empty:
        return pd.DataFrame(columns=["department", "numerator", "denominator", "value"])
    rows = frame[(frame["indicator"] == measure.indicator) & (frame["period"] == period)]
    return pd.DataFrame(
        {
            "department": rows["department"].astype(str).to_numpy(),
            "numerator": pd.to_numeric(rows["numerator"]).astype(float).to_numpy(),
            "denominator": pd.to_numeric(rows["denominator"]).astype(float).to_numpy(),
            "value": pd.to_numeric(rows["value"]).astype(float).to_numpy(),
        }
    )


def compute_period(
    frames: Mapping[str, pd.DataFrame], catalogue: KpiCatalogue, period: str
) -> pd.DataFrame:
    """Every indicator of the catalogue for every department (and the organisation).

    Args:
        frames: the period's exports, by dataset id (typed by :mod:`qmsnb.io`).
        catalogue: the KPI catalogue.
        period: ``YYYY-MM``.

    Returns:
        A long table with :data:`VALUE_COLUMNS`.
    """
    parts = []
    for kpi in catalogue.kpis:
        rows = MEASURES[kpi.measure.kind](kpi, frames, period)
        if kpi.departments is not None:
            rows = rows[rows["department"].isin(kpi.departments)]
        rows = _with_org(rows.reset_index(drop=True))
        if rows.empty:
            continue
        rows.insert(0, "kpi", kpi.id)
        parts.append(rows)
    if not parts:
        return pd.DataFrame(columns=VALUE_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "period", period)
    return out[VALUE_COLUMNS]


def status_of(kpi: Kpi, value: float, margin: float, base: float | None = None) -> str:
    """``red``, ``yellow``, ``green``, ``no_data`` or ``small_base`` for one value.

    A value counted on fewer cases than the KPI's ``min_base`` is shown but not
    judged (``small_base``): a handful of tickets is not evidence of a miss.
    """
    if value is None or pd.isna(value):
        return "no_data"
    if kpi.min_base and base is not None and not pd.isna(base) and base < kpi.min_base:
        return "small_base"
    if not kpi.meets(value):
        return "red"
    slack = value - kpi.target if kpi.direction == ">=" else kpi.target - value
    return "yellow" if slack < margin else "green"


def assess(values: pd.DataFrame, catalogue: KpiCatalogue) -> pd.DataFrame:
    """Add target, status, the run of missed months, the alert and the month-on-month change.

    ``values`` holds several periods (the trend window). Columns added: ``target``,
    ``direction``, ``unit``, ``met``, ``status``, ``miss_streak`` (consecutive
    months missed up to and including this one), ``alert`` (``""``, ``warning``,
    ``support``), ``previous`` and ``change`` (against the previous month).
    """
    rules = catalogue.status
    kpis = {k.id: k for k in catalogue.kpis}
    out = values.copy()
    out = out[out["kpi"].isin(list(kpis))]
    out["target"] = out["kpi"].map(lambda k: kpis[k].target).astype(float)
    out["direction"] = out["kpi"].map(lambda k: kpis[k].direction)
    out["unit"] = out["kpi"].map(lambda k: kpis[k].unit)
    out["status"] = [
        status_of(kpis[k], v, rules.yellow_margin, n)
        for k, v, n in zip(out["kpi"], out["value"], out["denominator"], strict=True)
    ]
    out["met"] = out["status"].isin(["green", "yellow"])
    out = out.sort_values(["department", "kpi", "period"]).reset_index(drop=True)
    streaks: list[int] = []
    previous: list[float] = []
    last_key: tuple[str, str] | None = None
    last_period: str | None = None
    run, last_value = 0, np.nan
    for dept, kpi, period, status, value in zip(
        out["department"], out["kpi"], out["period"], out["status"], out["value"], strict=True
    ):
        key = (dept, kpi)
        contiguous = key == last_key and last_period is not None and _next(last_period) == period
        if not contiguous:
            run, last_value = 0, np.nan
        run = run + 1 if status == "red" else 0
        streaks.append(run)
        previous.append(last_value)
        last_key, last_period, last_value = key, period, value
    out["miss_streak"] = streaks
    out["previous"] = previous
    out["change"] = out["value"] - out["previous"]
    out["alert"] = np.select(
        [out["miss_streak"] >= rules.support_months, out["miss_streak"] >= rules.warning_months],
        ["support", "warning"],
        default="",
    )
    return out


def _next(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def latest(assessed: pd.DataFrame, period: str, department: str) -> pd.DataFrame:
    """The rows of one department (or the organisation) for one period."""
    return assessed[(assessed["period"] == period) & (assessed["department"] == department)]


def status_counts(rows: pd.DataFrame) -> dict[str, int]:
    """How many indicators are red, yellow, green, without data or on too few cases."""
    counts = rows["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in ("red", "yellow", "green", "no_data", "small_base")}


def ordered(rows: pd.DataFrame, kpi_order: Sequence[str]) -> pd.DataFrame:
    """Rows in catalogue order."""
    rank = {k: i for i, k in enumerate(kpi_order)}
    return rows.assign(_rank=rows["kpi"].map(rank)).sort_values("_rank").drop(columns="_rank")
