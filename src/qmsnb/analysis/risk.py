"""Risks and opportunities (ISO 9001 6.1): the register scored, its heat map, what
moved, what is due, and whether the actions worked.

The sections of ``notebooks/risk_opportunity.ipynb`` (per department and for the
organisation): summary and narrative; the heat map of the active scoring method
(inherent and residual, counts per cell, the risks of each cell in the hover
text and in a table grouped by cell below the map, because the exported HTML is
static); the top risks; movement since the end of the previous period (from the
records store's history); reviews overdue or due soon; opportunities and their
status; the effectiveness check of completed actions.

Pure computations take frames and params and return frames:
:func:`assess` (scores and bands per record), :func:`heat_cells`,
:func:`top_risks`, :func:`movement`, :func:`review_state`,
:func:`indicator_series`, :func:`complaint_series`, :func:`check_effect`,
:func:`effectiveness`. The section functions turn them into
:class:`~qmsnb.display.Section` objects.

"Did the actions work?" (see ``docs/risk-scoring.md``): for a risk whose actions
were completed (``actions_done_on`` in or before the report's month) and that
links an indicator (a KPI of ``params/kpis.yaml``, measured for the risk's
department or else for the organisation) or a complaint category (tickets of
the risk's department in it, or the organisation's when the department has
none), the months before the completion month (at most ``baseline_months``) are
compared with the months after it with :func:`qmsnb.stats.shift_test`. Enough
data means at least ``min_months_before`` usable months before and
``min_months_after`` after (a rate's month is usable when its base reaches the
KPI's ``min_base``); then a one-sided p-value below ``alpha`` in the improving
direction is "effective", anything else "not effective".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from qmsnb import charts, scoring
from qmsnb.config import ORGANISATION, EffectivenessRules, Params
from qmsnb.context import PeriodContext
from qmsnb.contract import RISK_SOURCES, RISK_STATUS, RISK_TREATMENTS, RISKS
from qmsnb.display import Col, Html, Section, badge, banner, bullet_list, escape, table
from qmsnb.i18n import catalogue, fmt_number, period_short, pick
from qmsnb.periods import Period
from qmsnb.stats import ShiftTest, shift_test

#: Verdicts of the effectiveness check and their status colours.
VERDICTS = {"effective": "green", "not_effective": "red", "not_enough_data": "stale"}
#: Movement of a risk since the baseline, and its colour.
MOVES = {
    "up": "red",
    "down": "green",
    "new": "yellow",
    "closed": "stale",
    "rescored": "yellow",
    "same": "stale",
}
#: Review states and their colours.
REVIEW_STATES = {"overdue": "red", "due_soon": "yellow", "ok": "green", "closed": "stale"}
#: Hover text of a heat-map cell lists at most this many risks.
_HOVER_IDS = 8
#: Descriptions are cut to this many characters in tables.
_TEXT_CHARS = 60


# ---------------------------------------------------------------------------
# Scores and bands
# ---------------------------------------------------------------------------
def band_of(
    params: Params, method: scoring.Method, values: Mapping[str, float | None]
) -> str | None:
    """The configured band of one stage's factors (None when unscored or off scale)."""
    if method.problem(values) is not None:
        return None
    return method.band(values, params.risk.bands(method.id), params.risk.band_by(method.id))  # type: ignore[arg-type]


def band_info(params: Params, method_id: str, band_id: str) -> tuple[int, scoring.Band]:
    """Rank (0 = mildest) and the band of ``band_id`` in a method's configured bands."""
    bands = params.risk.bands(method_id)
    for rank, band in enumerate(bands):
        if band.id == band_id:
            return rank, band
    return 0, scoring.Band(band_id, 0, "#9e9e9e")


def is_high(params: Params, method_id: Any, band_id: Any) -> bool:
    """Whether a band is high: at or above the band ``high`` of the method's bands,
    or the top band when there is none called so."""
    if not isinstance(method_id, str) or not isinstance(band_id, str):
        return False
    if method_id not in scoring.METHODS:
        return False
    ids = [b.id for b in params.risk.bands(method_id)]
    if band_id not in ids:
        return False
    line = ids.index("high") if "high" in ids else len(ids) - 1
    return ids.index(band_id) >= line


def band_label(lang: str, band: scoring.Band) -> str:
    """The band's name: from ``risk.yaml`` if given, else the catalogue, else its id."""
    if band.name:
        return pick(band.name, lang)
    key = f"risk.band.{band.id}"
    return pick(catalogue()[key], lang) if key in catalogue() else band.id


#: Columns :func:`assess` adds.
ASSESSED = [
    "inherent_band",
    "residual_band",
    "current_stage",
    "current_score",
    "current_band",
    "band_rank",
    "band_colour",
    "scored",
]


def assess(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The register with scores and bands of each record's own method.

    Adds ``inherent_band``, ``residual_band``, ``current_stage`` (``residual`` when
    scored, else ``inherent``, else None), ``current_score``, ``current_band``,
    ``band_rank`` (of the current band; -1 unscored), ``band_colour`` and
    ``scored``. Scores (``inherent_score``, ``residual_score``) are recomputed
    from the factors, so a frame without the derived columns works too.
    """
    out = frame.copy()
    if out.empty:
        for column in ["inherent_score", "residual_score", *ASSESSED]:
            out[column] = pd.Series(dtype=object)
        return out
    records = out.to_dict("records")
    columns: dict[str, list[Any]] = {c: [] for c in ["inherent_score", "residual_score", *ASSESSED]}
    for record in records:
        method = scoring.method_of(record)
        result: dict[str, Any] = dict.fromkeys(columns)
        result["band_rank"], result["band_colour"], result["scored"] = -1, "#bdbdbd", False
        if method is not None:
            for stage in ("inherent", "residual"):
                values = scoring.stage_values(record, stage)
                band = band_of(params, method, values)
                if band is not None:
                    result[f"{stage}_score"] = method.score(values)  # type: ignore[arg-type]
                    result[f"{stage}_band"] = band
                    result["current_stage"] = stage
            stage = result["current_stage"]
            if stage is not None:
                result["current_score"] = result[f"{stage}_score"]
                result["current_band"] = result[f"{stage}_band"]
                rank, band = band_info(params, method.id, result["current_band"])
                result["band_rank"], result["band_colour"] = rank, band.colour
                result["scored"] = True
        for column in columns:
            columns[column].append(result[column])
    for column, values in columns.items():
        out[column] = values
    out["band_rank"] = out["band_rank"].astype(int)
    out["scored"] = out["scored"].astype(bool)
    for column in ("inherent_score", "residual_score", "current_score"):
        out[column] = pd.to_numeric(out[column]).astype(float)
    return out


# ---------------------------------------------------------------------------
# Heat map
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HeatGrid:
    """The heat-map grid of one stage of one method.

    Attributes:
        rows, columns: factor values of the method's axes (rows: most severe first).
        cells: one row per occupied cell: ``row``, ``column``, ``count``,
            ``risk_ids`` (list, highest score first), ``band`` (worst band in the
            cell), ``score`` (the cell's highest score).
    """

    method: scoring.Method
    stage: str
    rows: tuple[float, ...]
    columns: tuple[float, ...]
    cells: pd.DataFrame


def _axis_values(frame: pd.DataFrame, stage: str, factor: str) -> pd.Series:
    """A factor's values at ``stage``; ``current`` takes the residual factor where the
    current stage is residual, else the inherent one."""
    if stage != "current":
        return frame[scoring.STAGES[stage] + factor].astype(float)
    residual = frame["current_stage"] == "residual"
    return pd.Series(
        np.where(
            residual,
            frame["residual_" + factor].astype(float),
            frame["inherent_" + factor].astype(float),
        ),
        index=frame.index,
    )


def heat_cells(
    assessed: pd.DataFrame, params: Params, method: scoring.Method, stage: str
) -> HeatGrid:
    """Count the records scored with ``method`` per cell of its heat map.

    Args:
        stage: ``inherent``, ``residual`` or ``current`` (residual where scored,
            else inherent: where each risk stands now).
    """
    row_field, col_field = method.axes
    rows = tuple(reversed(method.factor(row_field).values))
    cols = method.factor(col_field).values
    scored = assessed[
        (assessed["method"].astype("string") == method.id) & assessed[f"{stage}_band"].notna()
    ]
    cells: list[dict[str, Any]] = []
    if not scored.empty:
        keyed = scored.assign(
            _row=_axis_values(scored, stage, row_field),
            _col=_axis_values(scored, stage, col_field),
            _score=scored[f"{stage}_score"].astype(float),
        )
        for (row, col), group in keyed.groupby(["_row", "_col"], sort=False):
            group = group.sort_values(["_score", "risk_id"], ascending=[False, True])
            ranks = [band_info(params, method.id, b)[0] for b in group[f"{stage}_band"]]
            worst = group[f"{stage}_band"].iloc[int(np.argmax(ranks))]
            cells.append(
                {
                    "row": float(row),
                    "column": float(col),
                    "count": len(group),
                    "risk_ids": group["risk_id"].astype(str).tolist(),
                    "band": worst,
                    "score": float(group["_score"].max()),
                }
            )
    frame = pd.DataFrame(cells, columns=["row", "column", "count", "risk_ids", "band", "score"])
    return HeatGrid(method=method, stage=stage, rows=rows, columns=cols, cells=frame)


def cell_band(params: Params, method: scoring.Method, row: float, col: float) -> str | None:
    """The band a cell stands for on its own (a 2-factor method), None when the
    band also depends on factors off the map (FMEA's detection, LEC's exposure)."""
    if len(method.factors) != 2:
        return None
    row_field, col_field = method.axes
    return band_of(params, method, {row_field: row, col_field: col})


# ---------------------------------------------------------------------------
# Top risks, movement, reviews
# ---------------------------------------------------------------------------
def top_risks(assessed: pd.DataFrame, count: int, kind: str = "risk") -> pd.DataFrame:
    """The ``count`` scored records of ``kind`` with the worst current band, then score."""
    if assessed.empty:
        return assessed
    scored = assessed[
        assessed["scored"] & (assessed["type"] == kind) & (assessed["status"] != "closed")
    ]
    return scored.sort_values(
        ["band_rank", "current_score", "risk_id"], ascending=[False, False, True], kind="stable"
    ).head(count)


def movement(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """How each record moved between the baseline (``previous``) and now.

    Both frames come from :func:`assess`. ``move``: ``new`` (not in the
    baseline), ``closed`` (closed or gone since), ``rescored`` (its scoring method
    changed), ``up``/``down`` (the current band's rank rose/fell, or the same band
    and the score rose/fell), ``same``.

    Returns:
        One row per record in either frame: ``risk_id``, ``move``, ``before_score``,
        ``before_band``, ``before_rank``, ``before_method`` and the current record's
        columns (the baseline's for records gone since).
    """
    cols = ["risk_id", "move", "before_score", "before_band", "before_rank", "before_method"]
    if current.empty and previous.empty:
        return pd.DataFrame(columns=cols)
    before = (
        {str(r["risk_id"]): r for r in previous.to_dict("records")} if not previous.empty else {}
    )
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in current.to_dict("records") if not current.empty else []:
        rid = str(record["risk_id"])
        seen.add(rid)
        old = before.get(rid)
        if old is None:
            move = "new"
        elif record["status"] == "closed" and old["status"] != "closed":
            move = "closed"
        elif str(old.get("method")) != str(record.get("method")) and old.get("scored"):
            move = "rescored"
        elif not old.get("scored") and record["scored"]:
            move = "new"
        else:
            move = _direction(old, record)
        rows.append({**record, **_before(old), "move": move})
    for rid, old in before.items():
        if rid not in seen:
            rows.append({**old, **_before(old), "move": "closed"})
    frame = pd.DataFrame(rows)
    return frame[cols + [c for c in frame.columns if c not in cols]]


def _before(old: Mapping[str, Any] | None) -> dict[str, Any]:
    if old is None:
        return {
            "before_score": np.nan,
            "before_band": None,
            "before_rank": -1,
            "before_method": None,
        }
    return {
        "before_score": old.get("current_score"),
        "before_band": old.get("current_band"),
        "before_rank": old.get("band_rank", -1),
        "before_method": old.get("method"),
    }


def _direction(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    if not new["scored"]:
        return "same"
    if new["band_rank"] != old["band_rank"]:
        return "up" if new["band_rank"] > old["band_rank"] else "down"
    a, b = old.get("current_score"), new.get("current_score")
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or math.isclose(a, b):
        return "same"
    return "up" if b > a else "down"


def review_state(frame: pd.DataFrame, as_of: date, soon_days: int) -> pd.DataFrame:
    """``review_state`` (overdue / due_soon / ok / closed) and ``days_overdue`` per record.

    Overdue: the review date is before ``as_of`` (the day after the report's month)
    and the record is not closed; due soon: within ``soon_days`` after it.
    """
    out = frame.copy()
    if out.empty:
        out["review_state"] = pd.Series(dtype=object)
        out["days_overdue"] = pd.Series(dtype=int)
        return out
    due = pd.to_datetime(out["review_date"])
    today = pd.Timestamp(as_of)
    late = (today - due).dt.days
    state = np.where(
        out["status"] == "closed",
        "closed",
        np.where(
            due < today,
            "overdue",
            np.where(due < today + pd.Timedelta(days=soon_days), "due_soon", "ok"),
        ),
    )
    out["review_state"] = state
    out["days_overdue"] = np.where(state == "overdue", late, 0).astype(int)
    return out


# ---------------------------------------------------------------------------
# Did the actions work?
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """A monthly series for the effectiveness check.

    ``frame`` has ``period`` and ``numerator``/``denominator`` (model ``rate``),
    ``count`` (``count``) or ``value`` (``value``); one row per usable month.
    """

    model: str
    better: str
    scope: str
    frame: pd.DataFrame
    unit: str = "%"


def indicator_series(
    kpi: pd.DataFrame, params: Params, kpi_id: str, department: str
) -> Series | None:
    """The KPI's monthly series for ``department`` (or the organisation's when the
    department has none); rates when every month has its counts, else values.
    Months whose base is below the KPI's ``min_base`` are left out."""
    spec = params.kpis.get(kpi_id)
    if spec is None or kpi.empty:
        return None
    rows = kpi[(kpi["kpi"] == kpi_id) & (kpi["department"] == department) & kpi["value"].notna()]
    scope = department
    if rows.empty:
        rows = kpi[
            (kpi["kpi"] == kpi_id) & (kpi["department"] == ORGANISATION) & kpi["value"].notna()
        ]
        scope = ORGANISATION
    if rows.empty:
        return None
    rows = rows.sort_values("period")
    counted = rows["denominator"].notna().all() and rows["numerator"].notna().all()
    if counted:
        rows = rows[rows["denominator"] >= max(1, spec.min_base)]
    frame = pd.DataFrame(
        {
            "period": rows["period"].astype(str).to_numpy(),
            "numerator": pd.to_numeric(rows["numerator"]).astype(float).to_numpy(),
            "denominator": pd.to_numeric(rows["denominator"]).astype(float).to_numpy(),
            "value": pd.to_numeric(rows["value"]).astype(float).to_numpy(),
        }
    )
    return Series(
        model="rate" if counted else "value",
        better="up" if spec.direction == ">=" else "down",
        scope=scope,
        frame=frame,
        unit=spec.unit,
    )


def complaint_series(
    counts: pd.DataFrame, months: Sequence[str], category: str, department: str
) -> Series:
    """Tickets of ``category`` per month for ``department`` (the organisation's when
    the department has none in the window, or for the organisation's report).
    ``months`` are those with a complaints export: a month there without a row is 0."""
    rows = counts[counts["category"] == category] if not counts.empty else counts
    scope = department
    if department != ORGANISATION:
        mine = rows[rows["department"] == department]
        if mine.empty or mine["tickets"].sum() == 0:
            scope = ORGANISATION
        else:
            rows = mine
    per_month = (
        rows.groupby("period")["tickets"].sum() if not rows.empty else pd.Series(dtype=float)
    )
    frame = pd.DataFrame(
        {
            "period": list(months),
            "count": [float(per_month.get(m, 0)) for m in months],
        }
    )
    frame["value"] = frame["count"]
    return Series(model="count", better="down", scope=scope, frame=frame, unit="count")


@dataclass(frozen=True)
class Effect:
    """The effectiveness check of one risk's completed actions."""

    risk_id: str
    verdict: str
    series: Series | None
    action_month: str
    before_months: list[str] = field(default_factory=list)
    after_months: list[str] = field(default_factory=list)
    test: ShiftTest | None = None
    reason: str = ""


def check_effect(
    risk_id: str, series: Series, done_on: date, period: str, rules: EffectivenessRules
) -> Effect:
    """Compare the months before the completion month with those after it (see the
    module docstring for the windows, "enough data" and the verdict)."""
    action = Period(done_on.year, done_on.month)
    frame = series.frame
    months = frame["period"].astype(str)
    before = frame[months < str(action)].tail(rules.baseline_months)
    after = frame[(months > str(action)) & (months <= period)]
    base = Effect(
        risk_id=risk_id,
        verdict="not_enough_data",
        series=series,
        action_month=str(action),
        before_months=before["period"].tolist(),
        after_months=after["period"].tolist(),
    )
    if len(before) < rules.min_months_before:
        return _replace(base, reason="few_before")
    if len(after) < rules.min_months_after:
        return _replace(base, reason="few_after")
    if series.model == "rate":
        test = shift_test(
            "rate",
            (before["numerator"], before["denominator"]),
            (after["numerator"], after["denominator"]),
            series.better,
        )
    else:
        column = "count" if series.model == "count" else "value"
        test = shift_test(series.model, before[column], after[column], series.better)
    improved = test.change > 0 if series.better == "up" else test.change < 0
    verdict = "effective" if improved and test.p_value < rules.alpha else "not_effective"
    # "worse" only when the move the wrong way is itself beyond the noise
    worse = not improved and test.change != 0 and 1 - test.p_value < rules.alpha
    reason = "shift" if verdict == "effective" else ("worse" if worse else "noise")
    return _replace(base, verdict=verdict, test=test, reason=reason)


def _replace(effect: Effect, **changes: Any) -> Effect:
    from dataclasses import replace

    return replace(effect, **changes)


def completed(frame: pd.DataFrame, period: str) -> pd.DataFrame:
    """Records whose actions were completed in or before the report's month."""
    if frame.empty or "actions_done_on" not in frame:
        return frame.iloc[0:0]
    done = pd.to_datetime(frame["actions_done_on"])
    return frame[done.notna() & (done < pd.Timestamp(Period.parse(period).end))]


def effectiveness(
    frame: pd.DataFrame,
    kpi: pd.DataFrame,
    counts: pd.DataFrame,
    complaint_months: Sequence[str],
    params: Params,
    period: str,
) -> tuple[list[Effect], list[str]]:
    """The effectiveness check of every record with completed actions and a linked
    indicator, and the ids of those with completed actions but no indicator."""
    effects: list[Effect] = []
    unlinked: list[str] = []
    rules = params.risk.effectiveness
    for record in completed(frame, period).to_dict("records"):
        rid = str(record["risk_id"])
        done_on = pd.Timestamp(record["actions_done_on"]).date()
        indicator, category = record.get("indicator"), record.get("complaint_category")
        series: Series | None = None
        if isinstance(indicator, str) and indicator:
            series = indicator_series(kpi, params, indicator, str(record["department"]))
        elif isinstance(category, str) and category:
            series = complaint_series(counts, complaint_months, category, str(record["department"]))
        else:
            unlinked.append(rid)
            continue
        if series is None or series.frame.empty:
            action = Period(done_on.year, done_on.month)
            effects.append(Effect(rid, "not_enough_data", None, str(action), reason="no_series"))
            continue
        effects.append(check_effect(rid, series, done_on, period, rules))
    return effects, unlinked


# ---------------------------------------------------------------------------
# The view of one report
# ---------------------------------------------------------------------------
@dataclass
class RiskView:
    """The register of one period and scope, assessed."""

    register: pd.DataFrame  # assessed, in scope
    previous: pd.DataFrame  # assessed baseline, in scope
    baseline: str  # period_end, first_recorded or none
    baseline_at: str
    processes: pd.DataFrame
    moves: pd.DataFrame
    reviews: pd.DataFrame
    effects: list[Effect]
    unlinked: list[str]


def _empty_register() -> pd.DataFrame:
    return pd.DataFrame(columns=[c.name for c in RISKS.columns] + [d.name for d in RISKS.derived])


def _in_scope(frame: pd.DataFrame, ctx: PeriodContext) -> pd.DataFrame:
    if ctx.is_organisation or frame.empty:
        return frame
    return frame[frame["department"] == ctx.department]


def as_of(period: str) -> date:
    """The day after the report's month (reviews dated before it are overdue)."""
    return Period.parse(period).end


def view(ctx: PeriodContext) -> RiskView:
    """The register of ``ctx`` assessed, with movement, reviews and effects (cached)."""
    cached = getattr(ctx, "_risk_view", None)
    if cached is not None:
        return cached
    params = ctx.params
    current = ctx.register("risks")
    if current.empty and not len(current.columns):
        current = _empty_register()
    current = assess(_in_scope(current, ctx), params)
    previous_raw = ctx.table("risks_previous")
    baseline, baseline_at = "none", ""
    if not previous_raw.empty:
        baseline = str(previous_raw["baseline"].iloc[0])
        baseline_at = str(previous_raw["baseline_at"].iloc[0])
        previous = assess(_in_scope(previous_raw, ctx), params)
    else:
        previous = assess(_empty_register(), params)
    moves = movement(current, previous) if baseline != "none" else pd.DataFrame()
    reviews = review_state(current, as_of(ctx.period), params.risk.review_due_soon_days)
    effects, unlinked = effectiveness(
        current,
        ctx.kpi,
        ctx.table("complaint_counts"),
        ctx.meta.get("complaint_months", []),
        params,
        ctx.period,
    )
    processes = ctx.register("process_register")
    result = RiskView(
        register=current,
        previous=previous,
        baseline=baseline,
        baseline_at=baseline_at,
        processes=processes,
        moves=moves,
        reviews=reviews,
        effects=effects,
        unlinked=unlinked,
    )
    object.__setattr__(ctx, "_risk_view", result)
    return result


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------
def _label(table_: Mapping[str, tuple[str, str]], value: Any, lang: str) -> str:
    if not isinstance(value, str) or value not in table_:
        return "" if value is None or value is pd.NA else str(value)
    zh, en = table_[value]
    return zh if lang == "zh" else en


def source_label(lang: str, value: Any) -> str:
    return _label(RISK_SOURCES, value, lang)


def status_label(lang: str, value: Any) -> str:
    return _label(RISK_STATUS, value, lang)


def treatment_label(lang: str, value: Any) -> str:
    return _label(RISK_TREATMENTS, value, lang)


def method_label(lang: str, method: scoring.Method) -> str:
    return method.zh if lang == "zh" else method.en


def _short(text: Any, chars: int = _TEXT_CHARS) -> str:
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return ""
    text = str(text)
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _date(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    try:
        return pd.Timestamp(value).date().isoformat()
    except (TypeError, ValueError):
        return ""


def _process(ctx: PeriodContext, process_id: Any) -> str:
    if not isinstance(process_id, str) or not process_id:
        return ""
    processes = view(ctx).processes
    if not processes.empty and "process_name" in processes:
        hit = processes[processes["process_id"].astype(str) == process_id]
        if len(hit):
            return f"{process_id} {hit.iloc[0]['process_name']}"
    return process_id


def _dept(ctx: PeriodContext, dept: Any) -> str:
    if isinstance(dept, str) and dept in ctx.params.departments:
        return ctx.dept_name(dept)
    return "" if dept is None or dept is pd.NA else str(dept)


def score_badge(ctx: PeriodContext, record: Mapping[str, Any], stage: str = "current") -> str:
    """``<score> <band badge>`` of a record's stage (a dash when unscored)."""
    band_id = record.get(f"{stage}_band")
    score = record.get(f"{stage}_score")
    method = scoring.method_of(record)
    if method is None or not isinstance(band_id, str):
        return escape("–")
    _, band = band_info(ctx.params, method.id, band_id)
    return (
        f"{escape(scoring.number_text(float(score)))} "
        f"{band_badge(band, band_label(ctx.lang, band))}"
    )


def band_badge(band: scoring.Band, label: str) -> str:
    dark = _luminance(band.colour) > 0.6
    return (
        f'<span class="qm-badge" style="background:{escape(band.colour)};'
        f"color:{'#212121' if dark else '#ffffff'};padding:1px 8px;border-radius:10px;"
        f'font-size:0.85em;white-space:nowrap">{escape(label)}</span>'
    )


def _luminance(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b


def indicator_label(ctx: PeriodContext, record: Mapping[str, Any]) -> str:
    """The linked KPI's or complaint category's name ('' when none)."""
    kpi = record.get("indicator")
    if isinstance(kpi, str) and kpi in ctx.params.kpis:
        return ctx.kpi_name(kpi)
    category = record.get("complaint_category")
    if isinstance(category, str) and category:
        for cat in ctx.params.organisation.complaint_categories:
            if cat.id == category:
                return ctx.t("risk.complaints_of", category=cat.name(ctx.lang))
        return ctx.t("risk.complaints_of", category=category)
    return ""


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------
def header(ctx: PeriodContext) -> Html:
    """The report title block."""
    sub = ctx.t(
        "report.subtitle",
        org=ctx.params.organisation.name(ctx.lang),
        dept=ctx.department_name,
        period=ctx.period_label,
    )
    return Html(
        f'<div class="qm-header"><h1>{escape(ctx.t("risk.title"))}</h1>'
        f'<p class="qm-sub">{escape(sub)}</p></div>'
    )


def narrative(ctx: PeriodContext) -> list[str]:
    """The sentences of the summary, in the report's language."""
    v = view(ctx)
    reg = v.register
    lines: list[str] = []
    if reg.empty:
        return [ctx.t("risk.narrative.empty")]
    risks = reg[reg["type"] == "risk"]
    opps = reg[reg["type"] == "opportunity"]
    unscored = reg[~reg["scored"]]
    lines.append(
        ctx.t(
            "risk.narrative.counts",
            risks=len(risks),
            opportunities=len(opps),
            unscored=len(unscored),
        )
    )
    method = scoring.METHODS[ctx.params.risk.method]
    mine = risks[(risks["method"].astype("string") == method.id) & risks["scored"]]
    if len(mine):
        parts = []
        for band in reversed(ctx.params.risk.bands(method.id)):
            count = int((mine["current_band"] == band.id).sum())
            if count:
                parts.append(
                    ctx.t("risk.narrative.band_part", band=band_label(ctx.lang, band), count=count)
                )
        lines.append(
            ctx.t(
                "risk.narrative.bands",
                method=method_label(ctx.lang, method),
                parts="、".join(parts) if ctx.lang == "zh" else ", ".join(parts),
            )
        )
    other = reg[reg["scored"] & (reg["method"].astype("string") != method.id)]
    if len(other):
        lines.append(ctx.t("risk.narrative.other_method", count=len(other)))
    overdue = int((v.reviews["review_state"] == "overdue").sum())
    soon = int((v.reviews["review_state"] == "due_soon").sum())
    lines.append(
        ctx.t(
            "risk.narrative.reviews",
            overdue=overdue,
            soon=soon,
            days=ctx.params.risk.review_due_soon_days,
        )
    )
    if v.baseline != "none" and not v.moves.empty:
        counts = v.moves["move"].value_counts()
        lines.append(
            ctx.t(
                "risk.narrative.moves",
                up=int(counts.get("up", 0)),
                down=int(counts.get("down", 0)),
                new=int(counts.get("new", 0)),
                closed=int(counts.get("closed", 0)),
                since=_baseline_text(ctx, v),
            )
        )
    verdicts = pd.Series([e.verdict for e in v.effects], dtype=object).value_counts()
    if v.effects:
        lines.append(
            ctx.t(
                "risk.narrative.effects",
                total=len(v.effects),
                effective=int(verdicts.get("effective", 0)),
                not_effective=int(verdicts.get("not_effective", 0)),
                waiting=int(verdicts.get("not_enough_data", 0)),
            )
        )
    if v.unlinked:
        lines.append(ctx.t("risk.narrative.unlinked", count=len(v.unlinked)))
    return lines


def _baseline_text(ctx: PeriodContext, v: RiskView) -> str:
    if v.baseline == "period_end":
        previous = Period.parse(ctx.period).shift(-1)
        return ctx.t("risk.since_period_end", period=period_short(str(previous), ctx.lang))
    return ctx.t("risk.since_first_recorded", date=_baseline_date(v))


def _baseline_date(v: RiskView) -> str:
    """The local date of the baseline state."""
    if not v.baseline_at:
        return ""
    local = datetime.now().astimezone().tzinfo
    return pd.Timestamp(v.baseline_at).tz_convert(local).date().isoformat()


def summary(ctx: PeriodContext) -> Section:
    """Title, the current bands as chips and the narrative."""
    v = view(ctx)
    method = scoring.METHODS[ctx.params.risk.method]
    reg = v.register
    reg = reg[reg["type"] == "risk"] if not reg.empty else reg
    mine = (
        reg[(reg["method"].astype("string") == method.id) & reg["scored"]] if not reg.empty else reg
    )
    chips = (
        " ".join(
            band_badge(
                band, f"{band_label(ctx.lang, band)} {int((mine['current_band'] == band.id).sum())}"
            )
            for band in reversed(ctx.params.risk.bands(method.id))
        )
        if "current_band" in mine
        else ""
    )
    section = Section(ctx.t("risk.summary"), anchor="summary", level=0)
    label = method_label(ctx.lang, method)
    section.add(
        header(ctx),
        Html(f'<p class="qm-chips">{escape(ctx.t("risk.chips", method=label))} {chips}</p>'),
        bullet_list(narrative(ctx)),
    )
    return section


def _cell_text(ctx: PeriodContext, method: scoring.Method, row: float, col: float) -> str:
    row_f, col_f = method.factor(method.axes[0]), method.factor(method.axes[1])
    return f"{row_f.symbol}{scoring.number_text(row)} × {col_f.symbol}{scoring.number_text(col)}"


def _hover(ctx: PeriodContext, ids: list[str], reg: pd.DataFrame) -> str:
    described = dict(zip(reg["risk_id"].astype(str), reg["description"], strict=True))
    lines = [f"{rid} {_short(described.get(rid), 24)}" for rid in ids[:_HOVER_IDS]]
    if len(ids) > _HOVER_IDS:
        lines.append(ctx.t("risk.hover_more", count=len(ids) - _HOVER_IDS))
    return "<br>".join(escape(line) for line in lines)


def heat_panel(
    ctx: PeriodContext, grid: HeatGrid, reg: pd.DataFrame, title: str
) -> charts.HeatPanel:
    """One panel of the heat map: colours, counts and hover texts per cell."""
    method, params = grid.method, ctx.params
    shape = (len(grid.rows), len(grid.columns))
    counts = np.zeros(shape, dtype=int)
    colours = np.full(shape, "", dtype=object)
    hover = np.full(shape, "", dtype=object)
    occupied = {(c["row"], c["column"]): c for c in grid.cells.to_dict("records")}
    for i, row in enumerate(grid.rows):
        for j, col in enumerate(grid.columns):
            cell = occupied.get((row, col))
            where = _cell_text(ctx, method, row, col)
            if cell is not None:
                _, band = band_info(params, method.id, cell["band"])
                counts[i, j] = cell["count"]
                colours[i, j] = band.colour
                hover[i, j] = (
                    f"<b>{escape(where)}</b> · {escape(band_label(ctx.lang, band))} · "
                    f"{escape(ctx.t('risk.hover_count', count=cell['count']))}<br>"
                    + _hover(ctx, cell["risk_ids"], reg)
                )
            else:
                band_id = cell_band(params, method, row, col)
                colours[i, j] = (
                    charts.pale(band_info(params, method.id, band_id)[1].colour)
                    if band_id
                    else "#f5f5f5"
                )
                hover[i, j] = (
                    f"<b>{escape(where)}</b> · {escape(ctx.t('risk.hover_count', count=0))}"
                )
    row_f, col_f = method.factor(method.axes[0]), method.factor(method.axes[1])
    return charts.HeatPanel(
        title=title,
        rows=[f"{row_f.symbol} {scoring.number_text(v)}" for v in grid.rows],
        columns=[f"{col_f.symbol} {scoring.number_text(v)}" for v in grid.columns],
        counts=counts,
        colours=colours,
        hover=hover,
        row_title=ctx.t(f"risk.factor.{method.id}.{row_f.field}"),
        column_title=ctx.t(f"risk.factor.{method.id}.{col_f.field}"),
    )


def heat_map(ctx: PeriodContext) -> Section:
    """The heat map of the active method, inherent and residual, and the risks per cell."""
    v = view(ctx)
    section = Section(ctx.t("risk.heat_map"), anchor="heat-map")
    method = scoring.METHODS[ctx.params.risk.method]
    reg = v.register
    if reg.empty:
        return section.add(ctx.t("risk.narrative.empty"))
    reg = reg[reg["type"] == "risk"]
    grids = [heat_cells(reg, ctx.params, method, stage) for stage in ("inherent", "current")]
    if all(g.cells.empty for g in grids):
        return section.add(ctx.t("risk.no_scores", method=method_label(ctx.lang, method)))
    panels = [heat_panel(ctx, grid, reg, ctx.t(f"risk.stage.{grid.stage}")) for grid in grids]
    section.add(
        ctx.t("risk.heat_note", method=method_label(ctx.lang, method)),
        charts.risk_heatmap(panels, ctx.t("risk.heat_title", scope=ctx.department_name)),
    )
    section.add(Html(f"<h3>{escape(ctx.t('risk.by_cell'))}</h3>"), _cell_table(ctx, grids[1], reg))
    left_out = reg[reg["scored"] & (reg["method"].astype("string") != method.id)]
    if len(left_out):
        section.add(
            banner(
                "info",
                ctx.t(
                    "risk.other_method_banner",
                    count=len(left_out),
                    method=method_label(ctx.lang, method),
                ),
                [f"{r['risk_id']} ({r['method']})" for r in left_out.to_dict("records")],
            )
        )
    unscored = reg[~reg["scored"]]
    if len(unscored):
        section.add(
            banner(
                "yellow",
                ctx.t("risk.unscored_banner", count=len(unscored)),
                [
                    f"{r['risk_id']} {_short(r['description'], 40)}"
                    for r in unscored.head(12).to_dict("records")
                ]
                + (
                    [ctx.t("risk.hover_more", count=len(unscored) - 12)]
                    if len(unscored) > 12
                    else []
                ),
            )
        )
    return section


def _cell_table(ctx: PeriodContext, grid: HeatGrid, reg: pd.DataFrame) -> Html | str:
    """The current map's risks grouped by cell, worst cell first."""
    if grid.cells.empty:
        return ctx.t("risk.no_top")
    method = grid.method
    by_id = {str(r["risk_id"]): r for r in reg.to_dict("records")}
    cells = grid.cells.assign(
        rank=[band_info(ctx.params, method.id, b)[0] for b in grid.cells["band"]]
    ).sort_values(["rank", "score"], ascending=[False, False])
    rows = []
    for cell in cells.to_dict("records"):
        _, band = band_info(ctx.params, method.id, cell["band"])
        for position, rid in enumerate(cell["risk_ids"]):
            record = by_id[rid]
            rows.append(
                {
                    "cell": _cell_text(ctx, method, cell["row"], cell["column"])
                    if position == 0
                    else "",
                    "band": band if position == 0 else None,
                    "count": cell["count"] if position == 0 else None,
                    **record,
                }
            )
    columns = [
        Col(ctx.t("risk.col.cell"), lambda r: f"<strong>{escape(r['cell'])}</strong>"),
        Col(
            ctx.t("risk.col.band"),
            lambda r: band_badge(r["band"], band_label(ctx.lang, r["band"])) if r["band"] else "",
        ),
        Col(ctx.t("risk.col.count"), lambda r: escape(r["count"] or ""), align="right"),
        Col(ctx.t("risk.col.id"), key="risk_id"),
        Col(ctx.t("col.process"), lambda r: escape(r["process_id"] or "")),
        Col(ctx.t("risk.col.description"), lambda r: escape(_short(r["description"]))),
        *(
            [Col(ctx.t("col.department"), lambda r: escape(_dept(ctx, r["department"])))]
            if ctx.is_organisation
            else []
        ),
        Col(ctx.t("risk.col.inherent"), lambda r: score_badge(ctx, r, "inherent")),
        Col(ctx.t("risk.col.residual"), lambda r: score_badge(ctx, r, "residual")),
        Col(ctx.t("risk.col.owner"), key="owner"),
    ]
    return table(rows, columns)


def _risk_columns(ctx: PeriodContext) -> list[Col]:
    return [
        Col(ctx.t("risk.col.id"), key="risk_id"),
        Col(ctx.t("col.process"), lambda r: escape(_process(ctx, r["process_id"]))),
        *(
            [Col(ctx.t("col.department"), lambda r: escape(_dept(ctx, r["department"])))]
            if ctx.is_organisation
            else []
        ),
        Col(ctx.t("risk.col.description"), lambda r: escape(_short(r["description"]))),
        Col(ctx.t("risk.col.inherent"), lambda r: score_badge(ctx, r, "inherent")),
        Col(ctx.t("risk.col.residual"), lambda r: score_badge(ctx, r, "residual")),
        Col(
            ctx.t("risk.col.treatment"),
            lambda r: escape(
                " · ".join(
                    x
                    for x in (treatment_label(ctx.lang, r["treatment"]), _short(r["actions"], 40))
                    if x
                )
            ),
        ),
        Col(ctx.t("risk.col.owner"), key="owner"),
        Col(ctx.t("col.status"), lambda r: escape(status_label(ctx.lang, r["status"]))),
        Col(ctx.t("risk.col.review"), lambda r: escape(_date(r["review_date"]))),
    ]


def top_section(ctx: PeriodContext) -> Section:
    """The top risks by current band and score (residual when scored, else inherent)."""
    v = view(ctx)
    count = ctx.params.risk.top
    section = Section(ctx.t("risk.top", count=count), anchor="top")
    top = top_risks(v.register, count)
    if top.empty:
        return section.add(ctx.t("risk.no_top"))
    return section.add(ctx.t("risk.top_note"), table(top, _risk_columns(ctx), css="qm-wide"))


def movement_section(ctx: PeriodContext) -> Section:
    """What moved since the end of the previous period (from the store's history)."""
    v = view(ctx)
    section = Section(ctx.t("risk.movement"), anchor="movement")
    if v.baseline == "none":
        return section.add(ctx.t("risk.no_history"))
    if v.baseline == "first_recorded":
        section.add(banner("info", ctx.t("risk.first_recorded_note", date=_baseline_date(v))))
    moved = v.moves[v.moves["move"] != "same"] if not v.moves.empty else v.moves
    if moved.empty:
        return section.add(ctx.t("risk.no_movement", since=_baseline_text(ctx, v)))
    order = {m: i for i, m in enumerate(("up", "new", "rescored", "down", "closed"))}
    moved = moved.assign(_order=moved["move"].map(order)).sort_values(["_order", "risk_id"])

    def before(r: Mapping[str, Any]) -> str:
        if not isinstance(r["before_band"], str):
            return escape("–")
        method = scoring.METHODS.get(str(r["before_method"]))
        if method is None:
            return escape("–")
        _, band = band_info(ctx.params, method.id, r["before_band"])
        return (
            f"{escape(scoring.number_text(float(r['before_score'])))} "
            f"{band_badge(band, band_label(ctx.lang, band))}"
        )

    columns = [
        Col(ctx.t("risk.col.id"), key="risk_id"),
        Col(ctx.t("risk.col.description"), lambda r: escape(_short(r["description"]))),
        *(
            [Col(ctx.t("col.department"), lambda r: escape(_dept(ctx, r["department"])))]
            if ctx.is_organisation
            else []
        ),
        Col(ctx.t("risk.col.before"), before),
        Col(
            ctx.t("risk.col.now"),
            lambda r: score_badge(ctx, r) if r["move"] != "closed" or r.get("scored") else "–",
        ),
        Col(
            ctx.t("risk.col.move"),
            lambda r: badge(MOVES[r["move"]], ctx.t(f"risk.move.{r['move']}")),
        ),
        Col(ctx.t("col.status"), lambda r: escape(status_label(ctx.lang, r["status"]))),
    ]
    return section.add(
        ctx.t("risk.movement_note", since=_baseline_text(ctx, v)), table(moved, columns)
    )


def reviews_section(ctx: PeriodContext) -> Section:
    """Reviews overdue and due within ``review_due_soon_days``."""
    v = view(ctx)
    section = Section(ctx.t("risk.reviews"), anchor="reviews")
    due = (
        v.reviews[v.reviews["review_state"].isin(["overdue", "due_soon"])]
        if not v.reviews.empty
        else v.reviews
    )
    if due.empty:
        return section.add(ctx.t("risk.no_reviews_due", days=ctx.params.risk.review_due_soon_days))
    due = due.sort_values(["review_date", "risk_id"])
    columns = [
        Col(ctx.t("risk.col.id"), key="risk_id"),
        Col(ctx.t("risk.col.description"), lambda r: escape(_short(r["description"]))),
        *(
            [Col(ctx.t("col.department"), lambda r: escape(_dept(ctx, r["department"])))]
            if ctx.is_organisation
            else []
        ),
        Col(ctx.t("risk.col.owner"), key="owner"),
        Col(ctx.t("risk.col.review"), lambda r: escape(_date(r["review_date"]))),
        Col(
            ctx.t("risk.col.days_overdue"),
            lambda r: escape(int(r["days_overdue"]) or ""),
            align="right",
        ),
        Col(
            ctx.t("col.status"),
            lambda r: badge(
                REVIEW_STATES[r["review_state"]], ctx.t(f"risk.review.{r['review_state']}")
            ),
        ),
    ]
    overdue = int((due["review_state"] == "overdue").sum())
    section.add(
        ctx.t(
            "risk.reviews_note",
            as_of=as_of(ctx.period).isoformat(),
            days=ctx.params.risk.review_due_soon_days,
        )
    )
    if overdue:
        section.add(banner("red", ctx.t("risk.overdue_banner", count=overdue)))
    return section.add(table(due, columns))


def opportunities_section(ctx: PeriodContext) -> Section:
    """Opportunities, their treatment, actions and status."""
    v = view(ctx)
    section = Section(ctx.t("risk.opportunities"), anchor="opportunities")
    reg = v.register
    opps = reg[reg["type"] == "opportunity"] if not reg.empty else reg
    if opps.empty:
        return section.add(ctx.t("risk.no_opportunities"))
    order = {s: i for i, s in enumerate(RISK_STATUS)}
    opps = opps.assign(_order=opps["status"].map(order)).sort_values(["_order", "risk_id"])
    counts = opps["status"].value_counts()
    chips = " ".join(
        badge(
            "stale" if s == "closed" else ("green" if s == "monitoring" else "yellow"),
            f"{status_label(ctx.lang, s)} {int(counts.get(s, 0))}",
        )
        for s in RISK_STATUS
        if counts.get(s, 0)
    )
    columns = [
        Col(ctx.t("risk.col.id"), key="risk_id"),
        Col(ctx.t("risk.col.source"), lambda r: escape(source_label(ctx.lang, r["source"]))),
        Col(ctx.t("risk.col.description"), lambda r: escape(_short(r["description"], 80))),
        *(
            [Col(ctx.t("col.department"), lambda r: escape(_dept(ctx, r["department"])))]
            if ctx.is_organisation
            else []
        ),
        Col(
            ctx.t("risk.col.treatment"), lambda r: escape(treatment_label(ctx.lang, r["treatment"]))
        ),
        Col(ctx.t("risk.col.actions"), lambda r: escape(_short(r["actions"], 60))),
        Col(ctx.t("risk.col.owner"), key="owner"),
        Col(ctx.t("risk.col.score"), lambda r: score_badge(ctx, r)),
        Col(ctx.t("col.status"), lambda r: escape(status_label(ctx.lang, r["status"]))),
        Col(ctx.t("risk.col.review"), lambda r: escape(_date(r["review_date"]))),
    ]
    return section.add(
        Html(f'<p class="qm-chips">{chips}</p>'), table(opps, columns, css="qm-wide")
    )


def _level(series: Series | None, value: float) -> str:
    if series is None:
        return "–"
    if series.model == "count":
        return fmt_number(value, "", digits=1)
    return fmt_number(value, series.unit, digits=2)


def effect_text(ctx: PeriodContext, effect: Effect) -> str:
    """One sentence explaining the verdict."""
    rules = ctx.params.risk.effectiveness
    if effect.reason == "no_series":
        return ctx.t("risk.effect.no_series")
    if effect.reason == "few_before":
        return ctx.t(
            "risk.effect.few_before",
            found=len(effect.before_months),
            needed=rules.min_months_before,
        )
    if effect.reason == "few_after":
        return ctx.t(
            "risk.effect.few_after", found=len(effect.after_months), needed=rules.min_months_after
        )
    test = effect.test
    assert test is not None
    return ctx.t(
        f"risk.effect.{effect.reason}",
        before=_level(effect.series, test.before),
        after=_level(effect.series, test.after),
        p=f"{test.p_value:.3f}" if test.p_value >= 0.001 else "<0.001",
        alpha=rules.alpha,
    )


def effectiveness_section(ctx: PeriodContext) -> Section:
    """Did the completed actions move their linked indicator? One row per risk, one
    chart panel per risk with its series, the completion month and both levels."""
    v = view(ctx)
    rules = ctx.params.risk.effectiveness
    section = Section(ctx.t("risk.effectiveness"), anchor="effectiveness")
    section.add(
        ctx.t(
            "risk.effect_rule",
            baseline=rules.baseline_months,
            before=rules.min_months_before,
            after=rules.min_months_after,
            alpha=rules.alpha,
        )
    )
    if not v.effects:
        section.add(ctx.t("risk.no_effects"))
    else:
        by_id = {str(r["risk_id"]): r for r in v.register.to_dict("records")}
        rows = [{**by_id[e.risk_id], "_effect": e} for e in v.effects]
        verdict_order = {"effective": 0, "not_effective": 1, "not_enough_data": 2}
        rows.sort(key=lambda r: (verdict_order[r["_effect"].verdict], r["risk_id"]))

        def change(r: Mapping[str, Any]) -> str:
            e: Effect = r["_effect"]
            if e.test is None:
                return "–"
            return escape(f"{_level(e.series, e.test.before)} → {_level(e.series, e.test.after)}")

        columns = [
            Col(ctx.t("risk.col.id"), key="risk_id"),
            Col(ctx.t("risk.col.description"), lambda r: escape(_short(r["description"], 40))),
            Col(
                ctx.t("risk.col.indicator"),
                lambda r: (
                    escape(indicator_label(ctx, r))
                    + (
                        f"<br><small>{escape(_dept(ctx, r['_effect'].series.scope))}</small>"
                        if r["_effect"].series is not None
                        else ""
                    )
                ),
            ),
            Col(ctx.t("risk.col.done_on"), lambda r: escape(_date(r["actions_done_on"]))),
            Col(
                ctx.t("risk.col.months"),
                lambda r: escape(
                    f"{len(r['_effect'].before_months)} / {len(r['_effect'].after_months)}"
                ),
                align="right",
            ),
            Col(ctx.t("risk.col.change"), change, align="right"),
            Col(
                ctx.t("risk.col.verdict"),
                lambda r: badge(
                    VERDICTS[r["_effect"].verdict], ctx.t(f"risk.verdict.{r['_effect'].verdict}")
                ),
            ),
            Col(ctx.t("risk.col.why"), lambda r: escape(effect_text(ctx, r["_effect"]))),
        ]
        section.add(table(rows, columns, css="qm-wide"))
        panels = [_effect_panel(ctx, r) for r in rows if r["_effect"].series is not None]
        if panels:
            section.add(
                charts.before_after(panels, ctx.t("risk.effect_chart"), _effect_labels(ctx))
            )
    if v.unlinked:
        section.add(
            banner("info", ctx.t("risk.unlinked_banner", count=len(v.unlinked)), v.unlinked)
        )
    return section


def _effect_labels(ctx: PeriodContext) -> dict[str, str]:
    return {k: ctx.t(f"risk.chart.{k}") for k in ("value", "before", "after", "action")}


def _effect_panel(ctx: PeriodContext, record: Mapping[str, Any]) -> charts.BeforeAfter:
    effect: Effect = record["_effect"]
    series = effect.series
    assert series is not None
    frame = series.frame
    values = frame["count"] if series.model == "count" else frame["value"]
    test = effect.test
    return charts.BeforeAfter(
        title=f"{record['risk_id']} · {_short(indicator_label(ctx, record), 28)}",
        x=[period_short(p, ctx.lang) for p in frame["period"]],
        y=[round(float(x), 2) for x in values],
        action=period_short(effect.action_month, ctx.lang),
        before=[period_short(p, ctx.lang) for p in effect.before_months],
        after=[period_short(p, ctx.lang) for p in effect.after_months],
        before_level=None if test is None else round(test.before, 2),
        after_level=None if test is None else round(test.after, 2),
        colour=charts.STATUS_COLOURS[VERDICTS[effect.verdict]],
        unit="" if series.model == "count" else series.unit,
    )
