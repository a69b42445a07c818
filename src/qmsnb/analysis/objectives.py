"""Quality objectives and KPI attainment (ISO 9001 6.2, 9.1.3).

The sections of ``notebooks/quality_objectives.ipynb``: summary and narrative,
attainment against targets, 12-month trends, control charts (Laney p′ for rates),
warnings raised this month, objectives with their action plans (6.2.2: what,
resources, who, by when, how evaluated), the annual target split into quarters
and months, and a year-end projection.

Pure computations (``attainment_rows``, ``narrative``, ``ytd``, ``projection``,
``quarter_targets``) take frames and return frames or lists; the section
functions turn them into :class:`~qmsnb.display.Section` objects.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qmsnb import charts
from qmsnb.config import ORGANISATION, Kpi, Params
from qmsnb.context import PeriodContext
from qmsnb.display import (
    Col,
    Html,
    Section,
    badge,
    banner,
    bullet_list,
    escape,
    progress_bar,
    table,
)
from qmsnb.i18n import fmt_change, fmt_number, period_short
from qmsnb.kpi import ordered, status_counts
from qmsnb.periods import Period
from qmsnb.stats import p_chart, xmr_chart

STATUSES = ("red", "yellow", "green", "no_data", "small_base")


# ---------------------------------------------------------------------------
# Pure computations
# ---------------------------------------------------------------------------
def attainment_rows(
    kpi: pd.DataFrame, period: str, department: str, params: Params
) -> pd.DataFrame:
    """This period's assessed rows of one department, in catalogue order."""
    rows = kpi[(kpi["period"] == period) & (kpi["department"] == department)]
    return ordered(rows, list(params.kpis))


def _target_text(kpi: Kpi) -> str:
    sign = "≥" if kpi.direction == ">=" else "≤"
    return f"{sign}{fmt_number(kpi.target, kpi.unit, digits=2 if kpi.target % 1 else 0)}"


def narrative(ctx: PeriodContext, limit: int = 6) -> list[str]:
    """Sentences that depend on the data, in the report's language."""
    rows = attainment_rows(ctx.kpi, ctx.period, ctx.department, ctx.params)
    if rows.empty:
        return [ctx.t("objectives.narrative.no_data", period=ctx.period_label)]
    counts = status_counts(rows)
    total = len(rows) - counts["no_data"] - counts["small_base"]
    lines = []
    if counts["red"] == 0 and counts["yellow"] == 0:
        lines.append(ctx.t("objectives.narrative.all_green", total=total, period=ctx.period_label))
    else:
        lines.append(
            ctx.t("objectives.narrative.counts", total=total, period=ctx.period_label, **counts)
        )
    scope = ctx.kpi[ctx.kpi["period"] == ctx.period]
    if not ctx.is_organisation:
        scope = scope[scope["department"] == ctx.department]
    else:
        scope = scope[scope["department"] != ORGANISATION]
    alerts = scope[scope["alert"] != ""].sort_values("miss_streak", ascending=False)
    for _, row in alerts.head(limit).iterrows():
        kpi = ctx.params.kpis[row["kpi"]]
        key = (
            "objectives.narrative.support"
            if row["alert"] == "support"
            else "objectives.narrative.warning"
        )
        lines.append(
            ctx.t(
                key,
                kpi=kpi.name(ctx.lang),
                dept=ctx.dept_name(row["department"]),
                target=_target_text(kpi),
                months=int(row["miss_streak"]),
                value=fmt_number(row["value"], kpi.unit),
            )
        )
    fresh = rows[(rows["status"] == "red") & (rows["miss_streak"] == 1)]
    for _, row in fresh.head(limit).iterrows():
        kpi = ctx.params.kpis[row["kpi"]]
        lines.append(
            ctx.t(
                "objectives.narrative.red_first",
                kpi=kpi.name(ctx.lang),
                target=_target_text(kpi),
                value=fmt_number(row["value"], kpi.unit),
            )
        )
    judged = {r.kpi: r.status for r in rows.itertuples()}
    charts_now = control_results(ctx)
    for chart in charts_now:
        if chart.signal_now:
            lines.append(ctx.t("objectives.narrative.signal", kpi=ctx.kpi_name(chart.kpi)))
    # the largest move that is only noise, where someone might over-react to it
    noise = [
        c
        for c in charts_now
        if not c.signal_now
        and c.change is not None
        and judged.get(c.kpi) in ("red", "yellow")
        and abs(c.change) >= 1
    ]
    if noise:
        chart = max(noise, key=lambda c: abs(c.change or 0))
        lines.append(
            ctx.t(
                "objectives.narrative.noise_drop",
                kpi=ctx.kpi_name(chart.kpi),
                change=fmt_change(chart.change, chart.unit),
            )
        )
    return lines


@dataclass(frozen=True)
class ControlResult:
    """The control chart of one indicator over the trend window."""

    kpi: str
    periods: list[str]
    values: list[float]
    status: list[str]
    centre: float
    lower: list[float]
    upper: list[float]
    signals: list[bool]
    method: str
    unit: str
    better_high: bool
    change: float | None

    @property
    def signal_now(self) -> bool:
        return bool(self.signals and self.signals[-1])


def control_results(ctx: PeriodContext) -> list[ControlResult]:
    """Control charts for every indicator of the scope with at least 6 months of data."""
    results = []
    scope = ctx.kpi_scope
    for kpi_id, kpi in ctx.params.kpis.items():
        series = scope[(scope["kpi"] == kpi_id) & scope["value"].notna()].sort_values("period")
        if len(series) < 6 or series["period"].iloc[-1] != ctx.period:
            continue
        has_counts = series["denominator"].notna().all() and (series["denominator"] > 0).all()
        if has_counts:
            chart = p_chart(series["numerator"], series["denominator"])
        else:
            chart = xmr_chart(series["value"])
        change = series["change"].iloc[-1]
        results.append(
            ControlResult(
                kpi=kpi_id,
                periods=series["period"].tolist(),
                values=series["value"].astype(float).tolist(),
                status=series["status"].tolist(),
                centre=chart.centre,
                lower=chart.lower.tolist(),
                upper=chart.upper.tolist(),
                signals=chart.signals.tolist(),
                method=chart.method,
                unit=kpi.unit,
                better_high=kpi.direction == ">=",
                change=None if pd.isna(change) else float(change),
            )
        )
    return results


def objectives_in_scope(ctx: PeriodContext) -> pd.DataFrame:
    """Objectives of the report's year led or supported by the department (all for the org)."""
    objectives = ctx.register("objectives")
    if objectives.empty:
        return objectives
    objectives = objectives[objectives["year"] == ctx.year]
    if ctx.is_organisation:
        return objectives
    supporting = objectives["supporting"].fillna("").astype(str)
    involved = supporting.map(
        lambda s: ctx.department in [p.strip() for p in s.replace("；", ";").split(";")]
    )
    return objectives[(objectives["department"] == ctx.department) | involved]


def resolve_kpi(params: Params, name: str) -> str | None:
    """A KPI id from an id or any printed name of it."""
    if name in params.kpis:
        return name
    for kpi in params.catalogue.kpis:
        if name in (kpi.name.zh, kpi.name.en, *kpi.printed_names):
            return kpi.id
    return None


def quarter_targets(objective: pd.Series) -> dict[int, float]:
    """Quarter → target; a quarter without its own target takes the annual one."""
    out = {}
    for q in range(1, 5):
        value = objective.get(f"q{q}_target")
        out[q] = (
            float(objective["annual_target"]) if value is None or pd.isna(value) else float(value)
        )
    return out


def monthly_targets(objective: pd.Series) -> dict[int, float]:
    """Month (1-12) → target, each month taking its quarter's target."""
    quarters = quarter_targets(objective)
    return {m: quarters[(m - 1) // 3 + 1] for m in range(1, 13)}


def _aggregate(rows: pd.DataFrame) -> float:
    if rows.empty:
        return float("nan")
    if rows["denominator"].notna().all() and rows["denominator"].sum() > 0:
        return float(100.0 * rows["numerator"].sum() / rows["denominator"].sum())
    return float(rows["value"].mean())


def ytd(values: pd.DataFrame, year: int, upto: str) -> float:
    """Year-to-date value: summed numerators over summed denominators (or the mean)."""
    rows = values[(values["period"] >= f"{year}-01") & (values["period"] <= upto)]
    return _aggregate(rows)


def quarter_actuals(values: pd.DataFrame, year: int, upto: str) -> dict[int, float]:
    """Quarter → value so far (NaN for quarters not started)."""
    out = {}
    for q in range(1, 5):
        first, last = f"{year}-{3 * q - 2:02d}", f"{year}-{3 * q:02d}"
        rows = values[(values["period"] >= first) & (values["period"] <= min(last, upto))]
        out[q] = _aggregate(rows) if first <= upto else float("nan")
    return out


def projection(values: pd.DataFrame, year: int, upto: str, recent: int = 3) -> float:
    """Year-end value if the remaining months run like the last ``recent`` months."""
    rows = values[(values["period"] >= f"{year}-01") & (values["period"] <= upto)].sort_values(
        "period"
    )
    if rows.empty:
        return float("nan")
    remaining = 12 - int(upto[5:7])
    last = rows.tail(recent)
    if rows["denominator"].notna().all() and rows["denominator"].sum() > 0:
        num = rows["numerator"].sum() + remaining * last["numerator"].mean()
        den = rows["denominator"].sum() + remaining * last["denominator"].mean()
        return float(100.0 * num / den)
    return float((rows["value"].sum() + remaining * last["value"].mean()) / (len(rows) + remaining))


def objective_rows(ctx: PeriodContext) -> pd.DataFrame:
    """Objectives in scope with KPI, YTD, quarter actuals, projection and verdict.

    Computed once per context (several sections show them); each call gets its
    own copy of the frame.
    """
    cached = getattr(ctx, "_objective_rows", None)
    if cached is None:
        cached = _objective_rows(ctx)
        object.__setattr__(ctx, "_objective_rows", cached)
    return cached.copy()


def _objective_rows(ctx: PeriodContext) -> pd.DataFrame:
    objectives = objectives_in_scope(ctx)
    margin = ctx.params.catalogue.status.yellow_margin
    today = Period.parse(ctx.period).end
    records = []
    for _, obj in objectives.iterrows():
        kpi_id = resolve_kpi(ctx.params, str(obj["kpi"]))
        kpi = ctx.params.kpis.get(kpi_id) if kpi_id else None
        scope = obj.get("measured_on")
        scope = obj["department"] if scope is None or pd.isna(scope) else scope
        values = ctx.kpi[(ctx.kpi["kpi"] == kpi_id) & (ctx.kpi["department"] == scope)]
        target = float(obj["annual_target"])
        current = ytd(values, ctx.year, ctx.period) if kpi else float("nan")
        projected = projection(values, ctx.year, ctx.period) if kpi else float("nan")
        verdict = "no_data"
        if kpi and not np.isnan(projected):
            ok = projected >= target if kpi.direction == ">=" else projected <= target
            slack = (projected - target) if kpi.direction == ">=" else (target - projected)
            verdict = "red" if not ok else ("yellow" if slack < margin else "green")
        due = pd.Timestamp(obj["due"]) if pd.notna(obj["due"]) else None
        overdue = bool(
            due is not None
            and due.date() < today
            and float(obj["progress"]) < 100
            and obj["status"] != "done"
        )
        records.append(
            {
                **obj.to_dict(),
                "kpi_id": kpi_id,
                "scope": scope,
                "unit": kpi.unit if kpi else "",
                "direction": kpi.direction if kpi else ">=",
                "ytd": current,
                "projection": projected,
                "verdict": verdict,
                "overdue": overdue,
                "quarters": quarter_targets(obj),
                "quarter_actuals": quarter_actuals(values, ctx.year, ctx.period),
            }
        )
    return pd.DataFrame(records)


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------
def _status_label(ctx: PeriodContext, status: str) -> str:
    return ctx.t(f"status.{status}")


def header(ctx: PeriodContext) -> Html:
    """The report title block."""
    title = ctx.t("objectives.title")
    sub = ctx.t(
        "report.subtitle",
        org=ctx.params.organisation.name(ctx.lang),
        dept=ctx.department_name,
        period=ctx.period_label,
    )
    return Html(
        f'<div class="qm-header"><h1>{escape(title)}</h1><p class="qm-sub">{escape(sub)}</p></div>'
    )


def summary(ctx: PeriodContext) -> Section:
    """Title, status counts and the narrative of the month."""
    rows = attainment_rows(ctx.kpi, ctx.period, ctx.department, ctx.params)
    counts = status_counts(rows) if not rows.empty else dict.fromkeys(STATUSES, 0)
    chips = " ".join(
        badge(s, f"{_status_label(ctx, s)} {counts[s]}") for s in ("red", "yellow", "green")
    )
    section = Section(ctx.t("objectives.summary"), anchor="summary", level=0)
    section.add(header(ctx), Html(f'<p class="qm-chips">{chips}</p>'), bullet_list(narrative(ctx)))
    months = ctx.meta.get("months", [])
    if len(months) < ctx.params.catalogue.status.trend_months:
        section.add(
            banner(
                "info",
                ctx.t(
                    "objectives.short_history",
                    found=len(months),
                    wanted=ctx.params.catalogue.status.trend_months,
                ),
            )
        )
    return section


def attainment(ctx: PeriodContext) -> Section:
    """The attainment table (and, for the organisation, the department heat map)."""
    section = Section(ctx.t("objectives.attainment"), anchor="attainment")
    rows = attainment_rows(ctx.kpi, ctx.period, ctx.department, ctx.params)
    if rows.empty:
        return section.add(ctx.t("objectives.narrative.no_data", period=ctx.period_label))
    kpis = ctx.params.kpis

    def name(r: pd.Series) -> str:
        return escape(ctx.kpi_name(r["kpi"]))

    def value(r: pd.Series) -> str:
        return escape(fmt_number(r["value"], r["unit"], digits=2))

    def alert(r: pd.Series) -> str:
        if not r["alert"]:
            return ""
        return badge("red" if r["alert"] == "support" else "yellow", ctx.t(f"alert.{r['alert']}"))

    columns = [
        Col(ctx.t("col.indicator"), name),
        Col(ctx.t("col.process"), lambda r: escape(", ".join(kpis[r["kpi"]].processes))),
        Col(ctx.t("col.target"), lambda r: escape(_target_text(kpis[r["kpi"]])), align="right"),
        Col(ctx.t("col.value"), value, align="right"),
        Col(ctx.t("col.status"), lambda r: badge(r["status"], _status_label(ctx, r["status"]))),
        Col(
            ctx.t("col.change"), lambda r: escape(fmt_change(r["change"], r["unit"])), align="right"
        ),
        Col(
            ctx.t("col.months_missed"), lambda r: escape(int(r["miss_streak"]) or ""), align="right"
        ),
        Col(ctx.t("col.alert"), alert),
        Col(
            ctx.t("col.base"),
            lambda r: escape(fmt_number(r["denominator"], "count")),
            align="right",
        ),
    ]
    section.add(table(rows, columns))
    if ctx.is_organisation:
        section.add(department_heatmap(ctx))
    return section


def department_heatmap(ctx: PeriodContext):  # -> go.Figure
    """Departments × indicators, coloured by this month's status."""
    now = ctx.kpi[(ctx.kpi["period"] == ctx.period) & (ctx.kpi["department"] != ORGANISATION)]
    kpi_ids = [k for k in ctx.params.kpis if k in set(now["kpi"])]
    depts = [d for d in ctx.params.departments if d in set(now["department"])]
    status = np.full((len(depts), len(kpi_ids)), "no_data", dtype=object)
    text = np.full((len(depts), len(kpi_ids)), "", dtype=object)
    index = {(r.department, r.kpi): r for r in now.itertuples()}
    for i, dept in enumerate(depts):
        for j, kpi_id in enumerate(kpi_ids):
            row = index.get((dept, kpi_id))
            if row is not None:
                status[i, j] = row.status
                text[i, j] = fmt_number(row.value, row.unit)
    return charts.status_heatmap(
        [ctx.dept_name(d) for d in depts],
        [ctx.kpi_name(k) for k in kpi_ids],
        status,
        text,
        ctx.t("objectives.heatmap_title", period=ctx.period_label),
        {s: _status_label(ctx, s) for s in STATUSES},
    )


def _labels(ctx: PeriodContext) -> dict[str, str]:
    return {k: ctx.t(f"chart.{k}") for k in ("value", "target", "centre", "limits", "signal")}


def trends(ctx: PeriodContext) -> Section:
    """12-month trend of every indicator against its target line."""
    section = Section(ctx.t("objectives.trends"), anchor="trends")
    scope = ctx.kpi_scope
    panels = []
    for kpi_id, kpi in ctx.params.kpis.items():
        series = scope[(scope["kpi"] == kpi_id) & scope["value"].notna()].sort_values("period")
        if series.empty:
            continue
        panels.append(
            charts.Panel(
                title=kpi.name(ctx.lang),
                x=[period_short(p, ctx.lang) for p in series["period"]],
                y=series["value"].astype(float).round(2).tolist(),
                status=series["status"].tolist(),
                target=kpi.target,
                unit=kpi.unit,
            )
        )
    if not panels:
        return section.add(ctx.t("objectives.narrative.no_data", period=ctx.period_label))
    section.add(
        ctx.t("objectives.trends_note"),
        charts.small_multiples(
            panels, ctx.t("objectives.trends_title", scope=ctx.department_name), _labels(ctx)
        ),
    )
    return section


def control_charts(ctx: PeriodContext) -> Section:
    """Control charts (Laney p′ for rates, XmR otherwise) so noise is not read as signal."""
    section = Section(ctx.t("objectives.control"), anchor="control")
    results = control_results(ctx)
    if not results:
        return section.add(ctx.t("objectives.control_too_short"))
    panels = [
        charts.Panel(
            title=ctx.kpi_name(r.kpi),
            x=[period_short(p, ctx.lang) for p in r.periods],
            y=[round(v, 2) for v in r.values],
            status=r.status,
            centre=round(r.centre, 2),
            lower=[round(v, 2) for v in r.lower],
            upper=[round(v, 2) for v in r.upper],
            signals=r.signals,
            unit=r.unit,
        )
        for r in results
    ]
    section.add(
        ctx.t("objectives.control_note"),
        charts.small_multiples(
            panels, ctx.t("objectives.control_title", scope=ctx.department_name), _labels(ctx)
        ),
    )
    signals = [r for r in results if r.signal_now]
    if signals:
        section.add(
            banner(
                "yellow",
                ctx.t("objectives.signals_now"),
                [ctx.kpi_name(r.kpi) for r in signals],
            )
        )
    return section


def warnings(ctx: PeriodContext) -> Section:
    """Early warnings (2 months below target) and special support (3 months) this month."""
    section = Section(ctx.t("objectives.warnings"), anchor="warnings")
    now = ctx.kpi[(ctx.kpi["period"] == ctx.period) & (ctx.kpi["alert"] != "")]
    if ctx.is_organisation:
        now = now[now["department"] != ORGANISATION]
    else:
        now = now[now["department"] == ctx.department]
    if now.empty:
        return section.add(ctx.t("objectives.no_warnings"))
    now = now.sort_values(["miss_streak", "department"], ascending=[False, True])
    columns = [
        Col(ctx.t("col.department"), lambda r: escape(ctx.dept_name(r["department"]))),
        Col(ctx.t("col.indicator"), lambda r: escape(ctx.kpi_name(r["kpi"]))),
        Col(
            ctx.t("col.value"),
            lambda r: escape(fmt_number(r["value"], r["unit"], 2)),
            align="right",
        ),
        Col(
            ctx.t("col.target"),
            lambda r: escape(_target_text(ctx.params.kpis[r["kpi"]])),
            align="right",
        ),
        Col(ctx.t("col.months_missed"), lambda r: escape(int(r["miss_streak"])), align="right"),
        Col(
            ctx.t("col.alert"),
            lambda r: badge(
                "red" if r["alert"] == "support" else "yellow", ctx.t(f"alert.{r['alert']}")
            ),
        ),
    ]
    if ctx.is_organisation:  # a department's own report names no other unit
        columns.append(Col(ctx.t("col.owner"), lambda r: escape(ctx.params.kpis[r["kpi"]].owner)))
    return section.add(
        ctx.t(
            "objectives.warning_rule",
            warn=ctx.params.catalogue.status.warning_months,
            support=ctx.params.catalogue.status.support_months,
        ),
        table(now, columns),
    )


def plans(ctx: PeriodContext) -> Section:
    """Objectives and their action plans (what, resources, who, by when, how evaluated)."""
    section = Section(ctx.t("objectives.plans"), anchor="plans")
    rows = objective_rows(ctx)
    if rows.empty:
        return section.add(ctx.t("objectives.no_objectives", year=ctx.year))

    def objective(r: pd.Series) -> str:
        name = ctx.kpi_name(r["kpi_id"]) if r["kpi_id"] else str(r["kpi"])
        sign = "≥" if r["direction"] == ">=" else "≤"
        return (
            f"<strong>{escape(r['objective_id'])}</strong> {escape(name)} "
            f"{escape(sign)}{escape(fmt_number(r['annual_target'], r['unit'], 2))}"
        )

    def state(r: pd.Series) -> str:
        label = ctx.t(f"objective_status.{r['status']}")
        out = badge({"done": "green", "delayed": "red"}.get(r["status"], "stale"), label)
        if r["overdue"]:
            out += " " + badge("red", ctx.t("objectives.overdue"))
        return out

    def who(r: pd.Series) -> str:
        if ctx.is_organisation or r["department"] == ctx.department:
            return escape(r["owner"])
        return escape(ctx.t("role.lead_owner"))  # a person of the lead department

    if ctx.is_organisation:
        lead = Col(ctx.t("col.lead"), lambda r: escape(ctx.dept_name(r["department"])))
    else:  # a department's report shows its role, never another department's name

        def role(r: pd.Series) -> str:
            return escape(
                ctx.t("role.lead" if r["department"] == ctx.department else "role.support")
            )

        lead = Col(ctx.t("col.role"), role)
    columns = [
        Col(ctx.t("col.objective"), objective),
        lead,
        Col(ctx.t("col.what"), lambda r: escape(r["action"])),
        Col(ctx.t("col.resources"), lambda r: escape(r["resources"])),
        Col(ctx.t("col.who"), who),
        Col(
            ctx.t("col.by_when"),
            lambda r: escape(pd.Timestamp(r["due"]).date() if pd.notna(r["due"]) else ""),
        ),
        Col(ctx.t("col.evaluation"), lambda r: escape(r["evaluation"])),
        Col(ctx.t("col.progress"), lambda r: progress_bar(r["progress"])),
        Col(ctx.t("col.status"), state),
    ]
    section.add(table(rows, columns, css="qm-wide"))
    late = rows[rows["overdue"]]
    if not late.empty:
        section.add(
            banner(
                "red",
                ctx.t("objectives.overdue_banner", count=len(late)),
                [
                    f"{r['objective_id']}: {r['action']} ({html.unescape(who(r))})"
                    for _, r in late.iterrows()
                ],
            )
        )
    return section


def annual(ctx: PeriodContext) -> Section:
    """Annual targets split into quarters (months follow their quarter), YTD and projection."""
    section = Section(ctx.t("objectives.annual"), anchor="annual")
    rows = objective_rows(ctx)
    if not ctx.is_organisation and not rows.empty:
        # year-to-date figures are the lead department's: only objectives it leads
        rows = rows[rows["department"] == ctx.department]
    if rows.empty:
        return section.add(ctx.t("objectives.no_objectives", year=ctx.year))
    current_q = Period.parse(ctx.period).quarter

    def quarter(q: int):
        def render(r: pd.Series) -> str:
            target = r["quarters"][q]
            actual = r["quarter_actuals"][q]
            text = escape(fmt_number(target, r["unit"], 2))
            if not np.isnan(actual):
                ok = actual >= target if r["direction"] == ">=" else actual <= target
                colour = "#2e7d32" if ok else "#c62828"
                mark = " ▸" if q == current_q else ""
                text += (
                    f'<br><span style="color:{colour}">{escape(fmt_number(actual, r["unit"], 2))}'
                    f"{mark}</span>"
                )
            return text

        return render

    columns = [
        Col(
            ctx.t("col.objective"),
            lambda r: escape(
                f"{r['objective_id']} "
                + (ctx.kpi_name(r["kpi_id"]) if r["kpi_id"] else str(r["kpi"]))
            ),
        ),
        Col(ctx.t("col.measured_on"), lambda r: escape(ctx.dept_name(r["scope"]))),
        Col(
            ctx.t("col.annual_target"),
            lambda r: escape(fmt_number(r["annual_target"], r["unit"], 2)),
            align="right",
        ),
        *[Col(ctx.t("col.quarter", q=q), quarter(q), align="right") for q in range(1, 5)],
        Col(ctx.t("col.ytd"), lambda r: escape(fmt_number(r["ytd"], r["unit"], 2)), align="right"),
        Col(
            ctx.t("col.projection"),
            lambda r: escape(fmt_number(r["projection"], r["unit"], 2)),
            align="right",
        ),
        Col(ctx.t("col.verdict"), lambda r: badge(r["verdict"], ctx.t(f"verdict.{r['verdict']}"))),
    ]
    section.add(ctx.t("objectives.annual_note", year=ctx.year), table(rows, columns))
    off = rows[rows["verdict"] == "red"]
    if not off.empty:
        section.add(
            banner(
                "red",
                ctx.t("objectives.projection_banner", count=len(off), year=ctx.year),
                [
                    ctx.t(
                        "objectives.projection_line",
                        objective=r["objective_id"],
                        kpi=ctx.kpi_name(r["kpi_id"]),
                        projection=fmt_number(r["projection"], r["unit"], 2),
                        target=fmt_number(r["annual_target"], r["unit"], 2),
                    )
                    for _, r in off.iterrows()
                ],
            )
        )
    return section
