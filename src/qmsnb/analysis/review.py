"""The management-review pack (ISO 9001 9.3), once a month for the organisation.

The pack answers 9.3.2: every input the review must consider is an entry of a
registry (:data:`INPUTS`, :func:`register_input`), each with a *provider*: a
function from the period context to :class:`Evidence` (display items, a one-line
headline, issues that may need a decision, what changed since last month, and
how many periods its trend covers). A domain plugs its data in by registering a
provider; a later provider for the same input replaces the earlier one
(``replace=True``), so the audit, risk and root-cause modules can take over their
inputs without touching this file.

Completeness (the point of the pack): every input either has data, or a statement
recorded for the period in the ``review_statements`` register (e.g. "no change in
external issues this month"). An input with neither is *missing*: it is listed
at the top of the report in red, and :func:`facts` hands it to the batch, which
records it in the manifest. The data-quality gate's result for the period is an
input too.

Outputs (9.3.3): decisions and actions (improvement, changes to the QMS,
resources) are kept in the ``review_decisions`` register; the ones taken at
earlier reviews are next month's input a).

The pure parts (``*_frame`` functions, :func:`month_end_states`, :func:`top_issues`)
take frames and return frames; the providers and sections turn them into
:class:`~qmsnb.display.Section` objects. The pack summarises every department,
so it refuses to run for a department scope.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qmsnb import charts, scoring
from qmsnb.analysis import risk as risk_analysis
from qmsnb.config import ORGANISATION, Params
from qmsnb.context import PeriodContext
from qmsnb.display import (
    Col,
    Facts,
    Html,
    Section,
    badge,
    banner,
    bullet_list,
    escape,
    table,
)
from qmsnb.exceptions import UsageError
from qmsnb.i18n import fmt_number, period_label, period_short
from qmsnb.periods import Period

#: Trends of 9.3.2 c) must cover at least this many periods.
MIN_TREND_PERIODS = 3
#: Months a trend shows (at most; fewer when less data exists).
TREND_MONTHS = 12
#: Complaint volume up by more than this share on last month raises a yellow alert.
COMPLAINT_RISE_ALERT = 0.20
#: How many issues the executive summary lists.
TOP_ISSUES = 5
#: How many rows a list of examples shows (complaints, findings).
MAX_ROWS = 15
#: Statuses a review decision can have; open ones carry into next month's input a).
DECISION_OPEN = ("open", "in_progress")


# ---------------------------------------------------------------------------
# The registry of inputs
# ---------------------------------------------------------------------------
@dataclass
class Issue:
    """Something that may need a decision of the review (ranked by ``score``)."""

    input: str
    score: float
    text: str
    status: str = "red"


@dataclass
class Evidence:
    """What a provider found for one input.

    Attributes:
        has_data: the input has data this period (else it needs a statement).
        headline: one line for the summary table.
        status: the input's own status (``red``, ``yellow``, ``green``, ``info``).
        items: what the input's section shows (text, :class:`Html`, figures).
        issues: candidates for "the issues most needing a decision".
        changes: what changed since last month (sentences).
        trend_periods: how many periods its trend covers (0: no trend).
        facts: small JSON-native facts for the manifest.
    """

    has_data: bool
    headline: str = ""
    status: str = "info"
    items: list[Any] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    trend_periods: int = 0
    facts: dict[str, Any] = field(default_factory=dict)


Provider = Callable[[PeriodContext], Evidence]


@dataclass(frozen=True)
class ReviewInput:
    """One input of ISO 9001 9.3.2 and the provider of its evidence."""

    id: str
    clause: str
    order: int
    provider: Provider
    needs_trend: bool = False

    def title(self, ctx: PeriodContext) -> str:
        return ctx.t(f"review.input.{self.id}")


INPUTS: dict[str, ReviewInput] = {}


def register_input(
    input_id: str, clause: str, order: int, *, needs_trend: bool = False, replace: bool = False
) -> Callable[[Provider], Provider]:
    """Register the provider of one 9.3.2 input (``replace=True`` to take one over)."""

    def deco(provider: Provider) -> Provider:
        if input_id in INPUTS and not replace:
            raise ValueError(f"review input {input_id} registered twice")
        INPUTS[input_id] = ReviewInput(input_id, clause, order, provider, needs_trend)
        return provider

    return deco


def inputs() -> list[ReviewInput]:
    """The registered inputs in report order."""
    return sorted(INPUTS.values(), key=lambda i: i.order)


# ---------------------------------------------------------------------------
# The assembled pack
# ---------------------------------------------------------------------------
@dataclass
class InputState:
    """One input of this month's review: its evidence, statements and completeness."""

    input: ReviewInput
    evidence: Evidence
    statements: list[str]
    completeness: str  # data, statement, missing
    error: str | None = None

    @property
    def missing(self) -> bool:
        return self.completeness == "missing"


@dataclass
class ReviewPack:
    """The management review of one period."""

    ctx: PeriodContext
    states: dict[str, InputState]
    unknown_statements: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[InputState]:
        return [s for s in self.states.values() if s.missing]

    @property
    def issues(self) -> list[Issue]:
        return top_issues([i for s in self.states.values() for i in s.evidence.issues])


def statements_for(ctx: PeriodContext) -> dict[str, list[str]]:
    """Statements recorded for this period, by input id."""
    frame = ctx.register("review_statements")
    if frame.empty:
        return {}
    rows = frame[frame["period"].astype(str) == ctx.period]
    found: dict[str, list[str]] = {}
    for _, row in rows.iterrows():
        who = row.get("recorded_by")
        text = str(row["statement"])
        found.setdefault(str(row["input"]), []).append(f"{text} ({who})" if pd.notna(who) else text)
    return found


def assemble(ctx: PeriodContext) -> ReviewPack:
    """Run every provider and judge completeness.

    Raises:
        UsageError: ``ctx`` is a department (the pack shows every department).
    """
    if not ctx.is_organisation:
        raise UsageError("error.review.organisation_only", value=ctx.department)
    recorded = statements_for(ctx)
    states = {}
    for spec in inputs():
        error = None
        try:
            evidence = spec.provider(ctx)
        except Exception as exc:  # one broken input must not hide the others
            evidence = Evidence(has_data=False, status="red")
            error = f"{type(exc).__name__}: {exc}"
        said = recorded.get(spec.id, [])
        if evidence.has_data and error is None:
            completeness = "data"
        elif said:
            completeness = "statement"
        else:
            completeness = "missing"
        states[spec.id] = InputState(spec, evidence, said, completeness, error)
    unknown = sorted(set(recorded) - set(INPUTS))
    return ReviewPack(ctx, states, unknown)


def top_issues(issues: Iterable[Issue], limit: int = TOP_ISSUES) -> list[Issue]:
    """The ``limit`` issues with the highest score (stable for equal scores)."""
    ranked = sorted(enumerate(issues), key=lambda pair: (-pair[1].score, pair[0]))
    unique: dict[str, Issue] = {}
    for _, issue in ranked:  # the same fact reached through two inputs counts once
        unique.setdefault(issue.text, issue)
    return list(unique.values())[:limit]


def facts(pack: ReviewPack) -> dict[str, Any]:
    """What the batch records in the manifest about this review (JSON-native)."""
    return {
        "review": {
            "period": pack.ctx.period,
            "complete": not pack.missing,
            "missing": [s.input.id for s in pack.missing],
            "inputs": {
                s.input.id: {
                    "clause": s.input.clause,
                    "completeness": s.completeness,
                    "status": s.evidence.status,
                    "trend_periods": s.evidence.trend_periods,
                    **({"error": s.error} if s.error else {}),
                    **s.evidence.facts,
                }
                for s in pack.states.values()
            },
            "top_issues": [i.text for i in pack.issues],
        }
    }


# ---------------------------------------------------------------------------
# Pure helpers over the prepared tables
# ---------------------------------------------------------------------------
def trend_periods(ctx: PeriodContext, count: int = TREND_MONTHS) -> list[str]:
    """The months with data up to this period, oldest first (at most ``count``)."""
    months = [m for m in ctx.meta.get("months", []) if m <= ctx.period]
    return sorted(months)[-count:]


def previous_period(period: str) -> str:
    return str(Period.parse(period).shift(-1))


def month_end(period: str) -> pd.Timestamp:
    """The first instant after ``period`` (its end, exclusive)."""
    return pd.Timestamp(Period.parse(period).end)


def month_end_states(
    rows: pd.DataFrame, periods: Sequence[str], opened: str, due: str, closed: str
) -> pd.DataFrame:
    """Per period: how many rows were open and how many overdue at its end.

    A row is open at the end of a month when it was raised before that end and not
    closed by then; overdue when also its due date lies before that end.
    """
    records = []
    for period in periods:
        end = month_end(period)
        raised = pd.to_datetime(rows[opened]) < end
        closing = pd.to_datetime(rows[closed])
        still_open = raised & (closing.isna() | (closing >= end))
        late = still_open & (pd.to_datetime(rows[due]) < end)
        records.append(
            {"period": period, "open": int(still_open.sum()), "overdue": int(late.sum())}
        )
    return pd.DataFrame(records, columns=["period", "open", "overdue"])


def status_trend(kpi: pd.DataFrame, periods: Sequence[str], department: str) -> pd.DataFrame:
    """Per period: how many indicators of ``department`` were red, yellow, green."""
    rows = kpi[(kpi["department"] == department) & kpi["period"].isin(periods)]
    counts = rows.groupby(["period", "status"]).size().unstack(fill_value=0)
    counts = counts.reindex(index=list(periods), fill_value=0)
    for status in ("red", "yellow", "green"):
        if status not in counts:
            counts[status] = 0
    return counts[["red", "yellow", "green"]].astype(int).rename_axis(None, axis=1)


def status_changes(kpi: pd.DataFrame, period: str, department: str) -> pd.DataFrame:
    """Indicators whose status moved into or out of red since last month."""
    now = kpi[(kpi["period"] == period) & (kpi["department"] == department)]
    before = kpi[(kpi["period"] == previous_period(period)) & (kpi["department"] == department)]
    merged = now[["kpi", "status", "value"]].merge(
        before[["kpi", "status"]], on="kpi", how="left", suffixes=("", "_before")
    )
    merged["status_before"] = merged["status_before"].fillna("no_data")
    turned = (merged["status"] == "red") & (merged["status_before"] != "red")
    recovered = (merged["status"] != "red") & (merged["status_before"] == "red")
    merged["change"] = np.select([turned, recovered], ["turned_red", "recovered"], default="")
    return merged[merged["change"] != ""].reset_index(drop=True)


def process_performance(kpi: pd.DataFrame, params: Params, periods: Sequence[str]) -> pd.DataFrame:
    """Per process and period: organisation-wide indicators assessed and met."""
    org = kpi[(kpi["department"] == ORGANISATION) & kpi["period"].isin(periods)]
    org = org[org["status"].isin(["red", "yellow", "green"])]
    records = []
    for kpi_id, spec in params.kpis.items():
        rows = org[org["kpi"] == kpi_id]
        for process in spec.processes:
            for r in rows.itertuples():
                records.append({"process": process, "period": r.period, "met": bool(r.met)})
    if not records:
        return pd.DataFrame(columns=["process", "period", "assessed", "met"])
    frame = pd.DataFrame(records)
    out = frame.groupby(["process", "period"]).agg(assessed=("met", "size"), met=("met", "sum"))
    return out.reset_index().astype({"assessed": int, "met": int})


def complaint_volume(summary: pd.DataFrame, periods: Sequence[str]) -> pd.DataFrame:
    """Tickets per period and category (periods in order; zeros where none)."""
    if summary.empty:
        return pd.DataFrame(index=list(periods))
    rows = summary[summary["period"].isin(periods)]
    table_ = rows.pivot_table(
        index="period", columns="category", values="tickets", aggfunc="sum", fill_value=0
    )
    return table_.reindex(list(periods), fill_value=0).astype(int)


def rise(now: float, before: float) -> float | None:
    """Relative change (0.2 = +20 %); None when there is nothing to compare."""
    if not before or (isinstance(before, float) and math.isnan(before)):
        return None
    return (now - before) / before


# ---------------------------------------------------------------------------
# Prepared tables the review needs (built once per period by prepare)
# ---------------------------------------------------------------------------
def _register_tables() -> None:
    from qmsnb import prepare

    prepare.register_table("complaint_summary")(complaint_summary_table)
    prepare.register_table("complaint_samples")(complaint_samples_table)


def _complaints(params: Params, period: str) -> pd.DataFrame | None:
    from qmsnb import prepare

    # the loader's frame, read the columnar way when provably the same (12M-call months)
    table = prepare._read_export(params, period, "complaints", required=False)
    return None if table is None else table.frame


def _complaint_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One month's tickets per department, category, channel and escalation."""
    return (
        frame.assign(escalated=frame["escalated"].fillna(False).astype(bool))
        .groupby(["department", "category", "channel", "escalated"], observed=True)
        .agg(
            tickets=("ticket_id", "size"),
            rated=("rated", "sum"),
            satisfied=("satisfied", "sum"),
        )
        .reset_index()
    )


def complaint_summary_table(params: Params, period: str) -> pd.DataFrame:
    """Complaint tickets per month, department, category and channel (trend window)."""
    from qmsnb import prepare

    months = [str(p) for p in Period.parse(period).back(TREND_MONTHS)]
    parts = []
    for month in months:
        grouped = prepare.per_export(
            params, month, "complaints", "complaint_summary-1", _complaint_summary
        )
        if grouped is None or grouped.empty:
            continue
        grouped.insert(0, "period", month)
        parts.append(grouped)
    columns = [
        "period",
        "department",
        "category",
        "channel",
        "escalated",
        "tickets",
        "rated",
        "satisfied",
    ]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)[columns]
    return out.astype(
        {
            "department": "string",
            "category": "string",
            "channel": "string",
            "tickets": int,
            "rated": int,
            "satisfied": int,
        }
    )


def complaint_samples_table(params: Params, period: str, limit: int = 200) -> pd.DataFrame:
    """This month's escalated and regulator-appeal complaints (their text included)."""
    frame = _complaints(params, period)
    columns = [
        "ticket_id",
        "created_at",
        "department",
        "category",
        "subcategory",
        "channel",
        "text",
        "closed_at",
        "satisfaction",
    ]
    if frame is None or frame.empty:
        return pd.DataFrame(columns=columns)
    pick = frame["escalated"].fillna(False).astype(bool) | (frame["channel"] == "regulator")
    rows = frame.loc[pick, columns].sort_values("created_at").head(limit)
    return rows.reset_index(drop=True)


# ---------------------------------------------------------------------------
# Small display helpers
# ---------------------------------------------------------------------------
def _labels(ctx: PeriodContext) -> dict[str, str]:
    return {k: ctx.t(f"chart.{k}") for k in ("value", "target", "centre", "limits", "signal")}


def _x(ctx: PeriodContext, periods: Iterable[str]) -> list[str]:
    return [period_short(p, ctx.lang) for p in periods]


def _text(value: Any) -> str:
    """Escaped text of a cell; empty for any kind of missing value."""
    try:
        missing = bool(pd.isna(value))
    except (TypeError, ValueError):
        missing = False
    return "" if value is None or missing else escape(value)


def _date(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(pd.Timestamp(value).date())


def _kpi_panels(
    ctx: PeriodContext,
    kpi_ids: Sequence[str],
    periods: Sequence[str],
    department: str = ORGANISATION,
) -> list[charts.Panel]:
    panels = []
    for kpi_id in kpi_ids:
        spec = ctx.params.kpis.get(kpi_id)
        if spec is None:
            continue
        rows = ctx.kpi[
            (ctx.kpi["kpi"] == kpi_id)
            & (ctx.kpi["department"] == department)
            & ctx.kpi["period"].isin(periods)
            & ctx.kpi["value"].notna()
        ]
        rows = rows.sort_values("period")
        if rows.empty:
            continue
        panels.append(
            charts.Panel(
                title=spec.name(ctx.lang),
                x=_x(ctx, rows["period"]),
                y=rows["value"].astype(float).round(2).tolist(),
                status=rows["status"].tolist(),
                target=spec.target,
                unit=spec.unit,
            )
        )
    return panels


def _kpi_value(ctx: PeriodContext, kpi_id: str, period: str, department: str = ORGANISATION):
    rows = ctx.kpi[
        (ctx.kpi["kpi"] == kpi_id)
        & (ctx.kpi["department"] == department)
        & (ctx.kpi["period"] == period)
    ]
    return None if rows.empty else rows.iloc[0]


def _alert_issues(
    ctx: PeriodContext,
    input_id: str,
    kpi_ids: Iterable[str] | None = None,
) -> list[Issue]:
    """Early warnings and special-support alerts of this month as issues."""
    now = ctx.kpi[
        (ctx.kpi["period"] == ctx.period)
        & (ctx.kpi["alert"] != "")
        & (ctx.kpi["department"] != ORGANISATION)
    ]
    if kpi_ids is not None:
        now = now[now["kpi"].isin(list(kpi_ids))]
    issues = []
    for r in now.itertuples():
        spec = ctx.params.kpis[r.kpi]
        key = "review.issue.support" if r.alert == "support" else "review.issue.warning"
        issues.append(
            Issue(
                input_id,
                (90 if r.alert == "support" else 60) + int(r.miss_streak),
                ctx.t(
                    key,
                    dept=ctx.dept_name(r.department),
                    kpi=spec.name(ctx.lang),
                    months=int(r.miss_streak),
                    value=fmt_number(r.value, spec.unit),
                ),
                "red" if r.alert == "support" else "yellow",
            )
        )
    return issues


def _trend_note(ctx: PeriodContext, periods: Sequence[str]) -> str | None:
    if len(periods) >= MIN_TREND_PERIODS:
        return None
    return ctx.t("review.short_trend", found=len(periods), wanted=MIN_TREND_PERIODS)


def _lookup_name(ctx: PeriodContext, table_name: str, value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    for cat in ctx.params.organisation.complaint_categories:
        if table_name == "category" and cat.id == value:
            return cat.name(ctx.lang)
        if table_name == "subcategory" and value in cat.subcategories:
            return cat.subcategories[value](ctx.lang)
    return str(value)


# ---------------------------------------------------------------------------
# The providers, one per input of 9.3.2
# ---------------------------------------------------------------------------
def decisions_frame(ctx: PeriodContext) -> pd.DataFrame:
    """Decisions taken at reviews before this period (input a)."""
    frame = ctx.register("review_decisions")
    if frame.empty:
        return frame
    return frame[frame["review_period"].astype(str) < ctx.period].copy()


@register_input("a_previous_actions", "9.3.2 a)", 10)
def previous_actions(ctx: PeriodContext) -> Evidence:
    """Status of actions from previous management reviews."""
    rows = decisions_frame(ctx)
    if rows.empty:
        return Evidence(has_data=False)
    end = month_end(ctx.period)
    due = pd.to_datetime(rows["due"])
    rows["overdue"] = rows["status"].isin(DECISION_OPEN) & (due < end)
    closed_now = rows["closed_on"].notna() & (
        pd.to_datetime(rows["closed_on"]).dt.strftime("%Y-%m") == ctx.period
    )
    open_ = rows[rows["status"].isin(DECISION_OPEN)]
    late = rows[rows["overdue"]]
    ev = Evidence(
        has_data=True,
        headline=ctx.t(
            "review.a.headline",
            total=len(rows),
            open=len(open_),
            late=len(late),
            done=int((rows["status"] == "done").sum()),
        ),
        status="red" if len(late) else ("yellow" if len(open_) else "green"),
        facts={"decisions": len(rows), "open": len(open_), "overdue": len(late)},
    )
    for r in late.itertuples():
        ev.issues.append(
            Issue(
                "a_previous_actions",
                80,
                ctx.t(
                    "review.issue.decision_late",
                    id=r.decision_id,
                    text=r.decision,
                    due=_date(r.due),
                    review=period_label(str(r.review_period), ctx.lang),
                ),
                "red",
            )
        )
    for r in rows[closed_now].itertuples():
        ev.changes.append(ctx.t("review.change.decision_done", id=r.decision_id, text=r.decision))

    def state(r: pd.Series) -> str:
        out = badge(
            {"done": "green", "cancelled": "stale"}.get(r["status"], "yellow"),
            ctx.t(f"review.decision_status.{r['status']}"),
        )
        if r["overdue"]:
            out += " " + badge("red", ctx.t("review.overdue"))
        return out

    ordered = rows.sort_values(
        ["overdue", "review_period", "decision_id"], ascending=[False, True, True]
    )
    ev.items.append(
        table(
            ordered,
            [
                Col(
                    ctx.t("review.col.decision"),
                    lambda r: (
                        f"<strong>{escape(r['decision_id'])}</strong> " + escape(r["decision"])
                    ),
                ),
                Col(
                    ctx.t("review.col.review"),
                    lambda r: escape(period_label(str(r["review_period"]), ctx.lang)),
                ),
                Col(ctx.t("review.col.kind"), lambda r: escape(ctx.t(f"review.kind.{r['kind']}"))),
                Col(ctx.t("col.who"), lambda r: escape(r["owner"])),
                Col(ctx.t("col.by_when"), lambda r: escape(_date(r["due"]))),
                Col(ctx.t("col.status"), state),
                Col(ctx.t("review.col.result"), lambda r: _text(r.get("result"))),
            ],
            css="qm-wide",
        )
    )
    return ev


@register_input("b_issues", "9.3.2 b)", 20)
def external_internal_issues(ctx: PeriodContext) -> Evidence:
    """Changes in external and internal issues: recorded by people, never computed.

    Risks registered from external or internal issues (policy, economy, society,
    technology; strengths, weaknesses) and reviewed this month are listed as data;
    otherwise the input needs a statement for the period.
    """
    from qmsnb.contract import RISK_ISSUE_SOURCES

    risks = ctx.register("risks")
    if risks.empty or "source" not in risks:
        return Evidence(has_data=False)
    issue_rows = risks[
        risks["source"].astype("string").isin(RISK_ISSUE_SOURCES).fillna(False)
        & (pd.to_datetime(risks["review_date"]).dt.strftime("%Y-%m") == ctx.period)
    ]
    if issue_rows.empty:
        return Evidence(has_data=False)
    ev = Evidence(
        has_data=True,
        headline=ctx.t("review.b.headline", count=len(issue_rows)),
        status="info",
        facts={"issues": len(issue_rows)},
    )
    ev.items.append(
        table(
            issue_rows,
            [
                Col(ctx.t("review.col.risk"), lambda r: escape(r["risk_id"])),
                Col(
                    ctx.t("review.col.source"),
                    lambda r: escape(risk_analysis.source_label(ctx.lang, r["source"])),
                ),
                Col(ctx.t("review.col.description"), lambda r: escape(r["description"])),
                Col(ctx.t("col.department"), lambda r: escape(ctx.dept_name(r["department"]))),
            ],
        )
    )
    return ev


CUSTOMER_KPIS = (
    "ivr_satisfaction",
    "complaint_satisfaction",
    "complaint_on_time",
    "complaint_direct_resolution",
)


@register_input("c1_customer", "9.3.2 c) 1)", 31, needs_trend=True)
def customer_feedback(ctx: PeriodContext) -> Evidence:
    """Customer satisfaction and feedback: satisfaction KPIs, complaint volume, escalations."""
    periods = trend_periods(ctx)
    summary = ctx.table("complaint_summary")
    volume = complaint_volume(summary, periods)
    panels = _kpi_panels(ctx, CUSTOMER_KPIS, periods)
    if not panels and volume.empty:
        return Evidence(has_data=False)
    total = volume.sum(axis=1) if not volume.empty else pd.Series(dtype=int)
    now = int(total.get(ctx.period, 0))
    before = int(total.get(previous_period(ctx.period), 0))
    change = rise(now, before)
    ev = Evidence(
        has_data=True,
        trend_periods=len(periods),
        status="green",
        facts={
            "complaints": now,
            "complaints_change": None if change is None else round(change, 4),
        },
    )
    ev.headline = ctx.t(
        "review.c1.headline",
        count=fmt_number(now, "count"),
        change="–" if change is None else f"{100 * change:+.0f}%",
    )
    ev.issues += _alert_issues(ctx, "c1_customer", CUSTOMER_KPIS)
    if change is not None:
        ev.changes.append(
            ctx.t("review.change.complaints", before=before, now=now, pct=f"{100 * change:+.0f}%")
        )
        if change > COMPLAINT_RISE_ALERT:
            ev.status = "yellow"
            ev.issues.append(
                Issue(
                    "c1_customer",
                    65 + min(30, 100 * change / 10),
                    ctx.t("review.issue.complaints_rise", pct=f"{100 * change:+.0f}%", now=now),
                    "yellow",
                )
            )
    if len(volume.index) >= 2 and not volume.empty:
        moves = volume.iloc[-1] - volume.iloc[-2]
        top = moves.idxmax()
        if moves[top] > 0:
            ev.changes.append(
                ctx.t(
                    "review.change.category",
                    category=_lookup_name(ctx, "category", top),
                    delta=f"{int(moves[top]):+d}",
                )
            )
    if any(
        ctx.params.kpis[k].meets(float(v.value)) is False
        for k in CUSTOMER_KPIS
        if (v := _kpi_value(ctx, k, ctx.period)) is not None and pd.notna(v.value)
    ):
        ev.status = "red" if ev.status != "red" else ev.status
    note = _trend_note(ctx, periods)
    if note:
        ev.items.append(banner("yellow", note))
    if not volume.empty:
        series = {_lookup_name(ctx, "category", c): volume[c].tolist() for c in volume.columns}
        ev.items.append(
            charts.period_bars(
                _x(ctx, volume.index),
                series,
                ctx.t("review.c1.volume_title"),
            )
        )
    if panels:
        ev.items.append(
            charts.small_multiples(panels, ctx.t("review.c1.kpi_title"), _labels(ctx), columns=2)
        )
    samples = ctx.table("complaint_samples")
    if not samples.empty:
        shown = samples.head(MAX_ROWS)
        ev.items.append(
            Html(
                f'<h3 class="qm-h">{escape(ctx.t("review.c1.escalated", count=len(samples)))}</h3>'
            )
        )
        ev.items.append(
            table(
                shown,
                [
                    Col(ctx.t("review.col.ticket"), lambda r: escape(r["ticket_id"])),
                    Col(ctx.t("review.col.created"), lambda r: escape(_date(r["created_at"]))),
                    Col(ctx.t("col.department"), lambda r: escape(ctx.dept_name(r["department"]))),
                    Col(
                        ctx.t("review.col.category"),
                        lambda r: escape(_lookup_name(ctx, "category", r["category"])),
                    ),
                    Col(
                        ctx.t("review.col.channel"),
                        lambda r: escape(ctx.t(f"review.channel.{r['channel']}")),
                    ),
                    Col(ctx.t("review.col.text"), lambda r: escape(r["text"])),
                    Col(ctx.t("review.col.closed"), lambda r: escape(_date(r["closed_at"]) or "–")),
                ],
                css="qm-wide",
            )
        )
    return ev


@register_input("c2_objectives", "9.3.2 c) 2)", 32, needs_trend=True)
def objectives_met(ctx: PeriodContext) -> Evidence:
    """How far quality objectives were met: indicator status over the months, projections."""
    from qmsnb.analysis import objectives

    periods = trend_periods(ctx)
    counts = status_trend(ctx.kpi, periods, ORGANISATION)
    if counts.empty or counts.to_numpy().sum() == 0:
        return Evidence(has_data=False)
    now = counts.loc[ctx.period] if ctx.period in counts.index else counts.iloc[-1]
    ev = Evidence(
        has_data=True,
        trend_periods=len(periods),
        headline=ctx.t(
            "review.c2.headline",
            red=int(now["red"]),
            yellow=int(now["yellow"]),
            green=int(now["green"]),
        ),
        status="red" if now["red"] else ("yellow" if now["yellow"] else "green"),
        facts={"kpis": {k: int(v) for k, v in now.items()}},
    )
    # alerts of customer, provider and resource indicators are raised by their own inputs
    own = set(CUSTOMER_KPIS) | set(PROVIDER_KPIS) | set(RESOURCE_KPIS)
    ev.issues += _alert_issues(ctx, "c2_objectives", [k for k in ctx.params.kpis if k not in own])
    for r in status_changes(ctx.kpi, ctx.period, ORGANISATION).itertuples():
        spec = ctx.params.kpis[r.kpi]
        ev.changes.append(
            ctx.t(
                f"review.change.{r.change}",
                kpi=spec.name(ctx.lang),
                value=fmt_number(r.value, spec.unit),
            )
        )
    rows = objectives.objective_rows(ctx)
    off = rows[rows["verdict"] == "red"] if not rows.empty else rows
    for r in off.itertuples() if not off.empty else ():
        ev.issues.append(
            Issue(
                "c2_objectives",
                75,
                ctx.t(
                    "review.issue.objective_off",
                    id=r.objective_id,
                    kpi=ctx.kpi_name(r.kpi_id),
                    projection=fmt_number(r.projection, r.unit),
                    target=fmt_number(r.annual_target, r.unit),
                ),
                "red",
            )
        )
    note = _trend_note(ctx, periods)
    if note:
        ev.items.append(banner("yellow", note))
    ev.items.append(
        charts.period_bars(
            _x(ctx, counts.index),
            {ctx.t(f"status.{s}"): counts[s].tolist() for s in ("red", "yellow", "green")},
            ctx.t("review.c2.trend_title"),
            colours=[charts.STATUS_COLOURS[s] for s in ("red", "yellow", "green")],
        )
    )
    if not rows.empty:
        ev.items.append(
            table(
                rows,
                [
                    Col(
                        ctx.t("col.objective"),
                        lambda r: escape(
                            f"{r['objective_id']} "
                            + (ctx.kpi_name(r["kpi_id"]) if r["kpi_id"] else r["kpi"])
                        ),
                    ),
                    Col(ctx.t("col.lead"), lambda r: escape(ctx.dept_name(r["department"]))),
                    Col(
                        ctx.t("col.annual_target"),
                        lambda r: escape(fmt_number(r["annual_target"], r["unit"], 2)),
                        align="right",
                    ),
                    Col(
                        ctx.t("col.ytd"),
                        lambda r: escape(fmt_number(r["ytd"], r["unit"], 2)),
                        align="right",
                    ),
                    Col(
                        ctx.t("col.projection"),
                        lambda r: escape(fmt_number(r["projection"], r["unit"], 2)),
                        align="right",
                    ),
                    Col(
                        ctx.t("col.verdict"),
                        lambda r: badge(r["verdict"], ctx.t(f"verdict.{r['verdict']}")),
                    ),
                ],
            )
        )
    return ev


@register_input("c3_processes", "9.3.2 c) 3)", 33, needs_trend=True)
def process_conformity(ctx: PeriodContext) -> Evidence:
    """Process performance (their indicators) and conformity (their audit findings)."""
    periods = trend_periods(ctx)
    perf = process_performance(ctx.kpi, ctx.params, periods)
    if perf.empty:
        return Evidence(has_data=False)
    register = ctx.register("process_register")
    names = (
        dict(zip(register["process_id"], register["process_name"], strict=False))
        if not register.empty
        else {}
    )
    importance = (
        dict(zip(register["process_id"], register["importance"], strict=False))
        if not register.empty
        else {}
    )
    findings = ctx.register("findings")
    nc_count: dict[str, int] = {}
    if not findings.empty:
        year = findings[pd.to_datetime(findings["found_on"]).dt.year == ctx.year]
        nc = year[year["grade"].isin(["major", "minor"])]
        nc_count = nc.groupby("process_id").size().to_dict()
    processes = sorted(perf["process"].unique(), key=lambda p: (p[0] != "C", p))
    status = np.full((len(processes), len(periods)), "no_data", dtype=object)
    text = np.full((len(processes), len(periods)), "", dtype=object)
    index = {(r.process, r.period): r for r in perf.itertuples()}
    for i, process in enumerate(processes):
        for j, period in enumerate(periods):
            r = index.get((process, period))
            if r is None:
                continue
            share = r.met / r.assessed
            status[i, j] = "green" if share == 1 else ("yellow" if share >= 0.5 else "red")
            text[i, j] = f"{r.met}/{r.assessed}"
    now_col = periods.index(ctx.period) if ctx.period in periods else len(periods) - 1
    weak = [p for i, p in enumerate(processes) if status[i, now_col] == "red"]
    ev = Evidence(
        has_data=True,
        trend_periods=len(periods),
        headline=ctx.t(
            "review.c3.headline",
            processes=len(processes),
            weak=len(weak),
            nc=sum(nc_count.values()),
        ),
        status="red" if weak else "green",
        facts={"weak_processes": weak},
    )
    for p in weak:
        ev.issues.append(
            Issue(
                "c3_processes",
                55 + (10 if importance.get(p) == "A" else 0),
                ctx.t(
                    "review.issue.process_weak",
                    process=p,
                    name=names.get(p, ""),
                    grade=importance.get(p, ""),
                ),
                "red",
            )
        )
    note = _trend_note(ctx, periods)
    if note:
        ev.items.append(banner("yellow", note))
    ev.items.append(ctx.t("review.c3.note"))
    labels = [f"{p} {names.get(p, '')} ({importance.get(p, '–')})" for p in processes]
    ev.items.append(
        charts.status_heatmap(
            labels,
            _x(ctx, periods),
            status,
            text,
            ctx.t("review.c3.title"),
            {s: ctx.t(f"status.{s}") for s in ("red", "yellow", "green", "no_data", "small_base")},
        )
    )
    rows = pd.DataFrame(
        {"process": sorted(nc_count), "nc": [nc_count[p] for p in sorted(nc_count)]}
    )
    rows["name"] = rows["process"].map(names)
    if rows.empty:
        return ev
    ev.items.append(
        table(
            rows.sort_values(["nc", "process"], ascending=[False, True]),
            [
                Col(ctx.t("col.process"), lambda r: escape(f"{r['process']} {r['name'] or ''}")),
                Col(
                    ctx.t("review.col.nc_year", year=ctx.year),
                    lambda r: escape(r["nc"]),
                    align="right",
                ),
            ],
        )
    )
    return ev


@register_input("c4_nonconformities", "9.3.2 c) 4)", 34, needs_trend=True)
def nonconformities(ctx: PeriodContext) -> Evidence:
    """Nonconformities and corrective actions: raised per month, open and overdue at month end."""
    findings, actions = ctx.register("findings"), ctx.register("actions")
    if findings.empty and actions.empty:
        return Evidence(has_data=False)
    periods = trend_periods(ctx)
    ev = Evidence(has_data=True, trend_periods=len(periods), status="green")
    raised = pd.DataFrame(index=periods)
    if not findings.empty:
        nc = findings[findings["grade"].isin(["major", "minor"])].copy()
        nc["period"] = pd.to_datetime(nc["found_on"]).dt.strftime("%Y-%m")
        by = nc.groupby(["period", "grade"]).size().unstack(fill_value=0)
        raised = by.reindex(periods, fill_value=0)
        for grade in ("major", "minor"):
            if grade not in raised:
                raised[grade] = 0
        new_now = nc[nc["period"] == ctx.period]
        if len(new_now):
            ev.changes.append(ctx.t("review.change.new_nc", count=len(new_now)))
    states = pd.DataFrame()
    if not actions.empty:
        states = month_end_states(actions, periods, "raised_on", "due_date", "closed_on")
        end = month_end(ctx.period)
        open_ = actions[actions["closed_on"].isna() | (pd.to_datetime(actions["closed_on"]) >= end)]
        late = open_[pd.to_datetime(open_["due_date"]) < end]
        closed = actions[actions["status"] == "closed"]
        unchecked = (
            closed[closed["effectiveness"].isna()] if "effectiveness" in closed else closed.iloc[:0]
        )
        ev.facts.update(
            {
                "actions_open": len(open_),
                "actions_overdue": len(late),
                "closed_without_check": len(unchecked),
            }
        )
        ev.headline = ctx.t(
            "review.c4.headline", open=len(open_), late=len(late), unchecked=len(unchecked)
        )
        if len(late):
            ev.status = "red"
        elif len(unchecked):
            ev.status = "yellow"
        if len(late):  # one issue for all of them: the decision is about the backlog
            oldest = late.sort_values("due_date").iloc[0]
            days = int((end - pd.Timestamp(oldest["due_date"])).days)
            ev.issues.append(
                Issue(
                    "c4_nonconformities",
                    70 + min(20, days / 15),
                    ctx.t(
                        "review.issue.actions_late",
                        count=len(late),
                        id=oldest["action_id"],
                        dept=ctx.dept_name(oldest["department"]),
                        days=days,
                        depts="、".join(dict.fromkeys(ctx.dept_name(d) for d in late["department"]))
                        if ctx.lang == "zh"
                        else ", ".join(dict.fromkeys(ctx.dept_name(d) for d in late["department"])),
                    ),
                    "red",
                )
            )
        if len(unchecked):
            ev.issues.append(
                Issue(
                    "c4_nonconformities",
                    50,
                    ctx.t(
                        "review.issue.unchecked",
                        count=len(unchecked),
                        ids=", ".join(unchecked["action_id"].astype(str).head(6)),
                    ),
                    "yellow",
                )
            )
        if len(states) >= 2:
            became = states.iloc[-1]["overdue"] - states.iloc[-2]["overdue"]
            if became:
                ev.changes.append(
                    ctx.t(
                        "review.change.overdue",
                        delta=f"{int(became):+d}",
                        now=int(states.iloc[-1]["overdue"]),
                    )
                )
    note = _trend_note(ctx, periods)
    if note:
        ev.items.append(banner("yellow", note))
    series = {
        ctx.t(f"review.grade.{g}"): raised[g].astype(int).tolist()
        for g in ("major", "minor")
        if g in raised
    }
    lines = {}
    if not states.empty:
        lines = {
            ctx.t("review.c4.open"): states["open"].tolist(),
            ctx.t("review.c4.overdue"): states["overdue"].tolist(),
        }
    ev.items.append(
        charts.period_bars(
            _x(ctx, periods),
            series,
            ctx.t("review.c4.title"),
            colours=[charts.STATUS_COLOURS["red"], charts.STATUS_COLOURS["yellow"]],
            lines=lines,
        )
    )
    return ev


@register_input("c5_monitoring", "9.3.2 c) 5)", 35, needs_trend=True)
def monitoring(ctx: PeriodContext) -> Evidence:
    """Monitoring and measurement results: what the control charts say this month."""
    from qmsnb.analysis import objectives

    results = objectives.control_results(ctx)
    if not results:
        return Evidence(has_data=False)
    signals = [r for r in results if r.signal_now]
    periods = results[0].periods
    ev = Evidence(
        has_data=True,
        trend_periods=len(periods),
        headline=ctx.t("review.c5.headline", charts=len(results), signals=len(signals)),
        status="yellow" if signals else "green",
        facts={"signals": [r.kpi for r in signals]},
    )
    for r in signals:
        ev.changes.append(ctx.t("review.change.signal", kpi=ctx.kpi_name(r.kpi)))
        worse = (r.values[-1] < r.centre) == r.better_high
        if worse:
            ev.issues.append(
                Issue(
                    "c5_monitoring",
                    68,
                    ctx.t("review.issue.signal", kpi=ctx.kpi_name(r.kpi)),
                    "yellow",
                )
            )
    note = _trend_note(ctx, periods)
    if note:
        ev.items.append(banner("yellow", note))
    shown = signals or results[:4]
    ev.items.append(ctx.t("review.c5.note" if signals else "review.c5.none"))
    ev.items.append(
        charts.small_multiples(
            [
                charts.Panel(
                    title=ctx.kpi_name(r.kpi),
                    x=_x(ctx, r.periods),
                    y=[round(v, 2) for v in r.values],
                    status=r.status,
                    centre=round(r.centre, 2),
                    lower=[round(v, 2) for v in r.lower],
                    upper=[round(v, 2) for v in r.upper],
                    signals=r.signals,
                    unit=r.unit,
                )
                for r in shown
            ],
            ctx.t("review.c5.title"),
            _labels(ctx),
            columns=2,
        )
    )
    return ev


@register_input("c6_audits", "9.3.2 c) 6)", 36, needs_trend=True)
def audit_results(ctx: PeriodContext) -> Evidence:
    """Audit results: the programme against plan, findings by grade, this period's findings."""
    programme, findings = ctx.register("audit_programme"), ctx.register("findings")
    if programme.empty:
        return Evidence(has_data=False)
    periods = trend_periods(ctx)
    planned = programme.groupby("planned_month").size().reindex(periods, fill_value=0)
    done_rows = programme[programme["status"] == "done"]
    done = done_rows.groupby("planned_month").size().reindex(periods, fill_value=0)
    due = programme[programme["planned_month"].astype(str) <= ctx.period]
    behind = due[due["status"] == "planned"]
    ev = Evidence(
        has_data=True,
        trend_periods=len(periods),
        headline=ctx.t(
            "review.c6.headline", done=len(due) - len(behind), due=len(due), behind=len(behind)
        ),
        status="yellow" if len(behind) else "green",
        facts={"audits_due": len(due), "audits_behind": len(behind)},
    )
    if len(behind):
        ev.issues.append(
            Issue(
                "c6_audits",
                55 + len(behind),
                ctx.t(
                    "review.issue.audits_behind",
                    count=len(behind),
                    ids=", ".join(behind["audit_id"].astype(str).head(6)),
                ),
                "yellow",
            )
        )
    this_month = pd.DataFrame()
    if not findings.empty:
        found = findings.assign(period=pd.to_datetime(findings["found_on"]).dt.strftime("%Y-%m"))
        window = found[found["period"].isin(periods)]
        grades = window.groupby(["period", "grade"]).size().unstack(fill_value=0)
        grades = grades.reindex(periods, fill_value=0)
        recent = [str(Period.parse(ctx.period).shift(-k)) for k in range(3)]
        this_month = found[found["period"].isin(recent)].sort_values(
            ["found_on", "finding_id"], ascending=[False, True]
        )
        majors_open = found[found["grade"] == "major"]
        if len(found[found["period"] == ctx.period]):
            ev.changes.append(
                ctx.t("review.change.findings", count=int((found["period"] == ctx.period).sum()))
            )
        for r in majors_open[majors_open["period"] == ctx.period].itertuples():
            ev.issues.append(
                Issue(
                    "c6_audits",
                    85,
                    ctx.t(
                        "review.issue.major",
                        id=r.finding_id,
                        dept=ctx.dept_name(r.department),
                        clause=r.clause,
                    ),
                    "red",
                )
            )
            ev.status = "red"
    else:
        grades = pd.DataFrame(index=periods)
    note = _trend_note(ctx, periods)
    if note:
        ev.items.append(banner("yellow", note))
    series = {
        ctx.t(f"review.grade.{g}"): grades[g].astype(int).tolist()
        for g in ("major", "minor", "observation", "ofi")
        if g in grades
    }
    ev.items.append(
        charts.period_bars(
            _x(ctx, periods),
            series,
            ctx.t("review.c6.title"),
            colours=["#c62828", "#f9a825", "#1a73e8", "#2e7d32"],
            lines={
                ctx.t("review.c6.planned"): planned.astype(int).tolist(),
                ctx.t("review.c6.done"): done.astype(int).tolist(),
            },
        )
    )
    if not this_month.empty:
        ev.items.append(Html(f'<h3 class="qm-h">{escape(ctx.t("review.c6.recent"))}</h3>'))
        ev.items.append(
            table(
                this_month.head(MAX_ROWS),
                [
                    Col(ctx.t("review.col.finding"), lambda r: escape(r["finding_id"])),
                    Col(
                        ctx.t("review.col.grade"),
                        lambda r: badge(
                            {"major": "red", "minor": "yellow"}.get(r["grade"], "stale"),
                            ctx.t(f"review.grade.{r['grade']}"),
                        ),
                    ),
                    Col(ctx.t("col.department"), lambda r: escape(ctx.dept_name(r["department"]))),
                    Col(ctx.t("col.clause"), lambda r: escape(r["clause"])),
                    Col(ctx.t("review.col.statement"), lambda r: escape(r["statement"])),
                    Col(ctx.t("review.col.found_on"), lambda r: escape(_date(r["found_on"]))),
                ],
                css="qm-wide",
            )
        )
    return ev


PROVIDER_KPIS = ("supplier_first_pass",)


@register_input("c7_providers", "9.3.2 c) 7)", 37, needs_trend=True)
def external_providers(ctx: PeriodContext) -> Evidence:
    """Performance of external providers (supplier first-pass acceptance)."""
    periods = trend_periods(ctx)
    panels = _kpi_panels(ctx, PROVIDER_KPIS, periods)
    if not panels:
        return Evidence(has_data=False)
    now = _kpi_value(ctx, PROVIDER_KPIS[0], ctx.period)
    spec = ctx.params.kpis[PROVIDER_KPIS[0]]
    status = "no_data" if now is None else str(now.status)
    ev = Evidence(
        has_data=True,
        trend_periods=len(panels[0].x),
        status=status if status in ("red", "yellow", "green") else "info",
        headline=ctx.t(
            "review.c7.headline",
            kpi=spec.name(ctx.lang),
            value=fmt_number(None if now is None else now.value, spec.unit),
        ),
    )
    ev.issues += _alert_issues(ctx, "c7_providers", PROVIDER_KPIS)
    for r in status_changes(ctx.kpi, ctx.period, ORGANISATION).itertuples():
        if r.kpi in PROVIDER_KPIS:
            ev.changes.append(
                ctx.t(
                    f"review.change.{r.change}",
                    kpi=spec.name(ctx.lang),
                    value=fmt_number(r.value, spec.unit),
                )
            )
    note = _trend_note(ctx, periods)
    if note:
        ev.items.append(banner("yellow", note))
    ev.items.append(
        charts.small_multiples(panels, ctx.t("review.c7.title"), _labels(ctx), columns=2)
    )
    return ev


RESOURCE_KPIS = ("staff_turnover", "training_pass_rate")


def staffing_frame(ctx: PeriodContext, periods: Sequence[str]) -> pd.DataFrame:
    """Per department and period: headcount (turnover's base), leavers, turnover."""
    rows = ctx.kpi[(ctx.kpi["kpi"] == "staff_turnover") & ctx.kpi["period"].isin(periods)]
    return (
        rows[["period", "department", "denominator", "numerator", "value", "status"]]
        .rename(columns={"denominator": "headcount", "numerator": "leavers", "value": "turnover"})
        .reset_index(drop=True)
    )


@register_input("d_resources", "9.3.2 d)", 40, needs_trend=True)
def resources(ctx: PeriodContext) -> Evidence:
    """Adequacy of resources: staffing, turnover, training."""
    periods = trend_periods(ctx)
    staff = staffing_frame(ctx, periods)
    panels = _kpi_panels(ctx, RESOURCE_KPIS, periods)
    if staff.empty and not panels:
        return Evidence(has_data=False)
    org = staff[staff["department"] == ORGANISATION].set_index("period")
    head_now = org["headcount"].get(ctx.period)
    head_before = org["headcount"].get(previous_period(ctx.period))
    ev = Evidence(
        has_data=True,
        trend_periods=len(periods),
        status="green",
        headline=ctx.t(
            "review.d.headline",
            headcount=fmt_number(head_now, "count"),
            turnover=fmt_number(org["turnover"].get(ctx.period), "%"),
        ),
    )
    ev.issues += _alert_issues(ctx, "d_resources", RESOURCE_KPIS)
    if any(i.status == "red" for i in ev.issues):
        ev.status = "red"
    elif ev.issues:
        ev.status = "yellow"
    if (
        head_now is not None
        and head_before is not None
        and pd.notna(head_now)
        and pd.notna(head_before)
    ):
        ev.changes.append(
            ctx.t("review.change.headcount", before=int(head_before), now=int(head_now))
        )
    note = _trend_note(ctx, periods)
    if note:
        ev.items.append(banner("yellow", note))
    depts = staff[staff["department"] != ORGANISATION]
    if not depts.empty:
        heads = (
            depts.pivot_table(
                index="period", columns="department", values="headcount", aggfunc="sum"
            )
            .reindex(periods)
            .fillna(0)
        )
        order = [d for d in ctx.params.departments if d in heads.columns]
        ev.items.append(
            charts.period_bars(
                _x(ctx, heads.index),
                {ctx.dept_name(d): heads[d].astype(int).tolist() for d in order},
                ctx.t("review.d.headcount_title"),
            )
        )
    if panels:
        ev.items.append(
            charts.small_multiples(panels, ctx.t("review.d.title"), _labels(ctx), columns=2)
        )
    now = staff[(staff["period"] == ctx.period) & (staff["department"] != ORGANISATION)]
    if not now.empty:
        ev.items.append(
            table(
                now.sort_values("turnover", ascending=False),
                [
                    Col(ctx.t("col.department"), lambda r: escape(ctx.dept_name(r["department"]))),
                    Col(
                        ctx.t("review.d.headcount"),
                        lambda r: escape(fmt_number(r["headcount"], "count")),
                        align="right",
                    ),
                    Col(
                        ctx.t("review.col.leavers"),
                        lambda r: escape(fmt_number(r["leavers"], "count")),
                        align="right",
                    ),
                    Col(
                        ctx.kpi_name("staff_turnover"),
                        lambda r: escape(fmt_number(r["turnover"], "%", 2)),
                        align="right",
                    ),
                    Col(
                        ctx.t("col.status"),
                        lambda r: badge(r["status"], ctx.t(f"status.{r['status']}")),
                    ),
                ],
            )
        )
    return ev


def risk_frame(ctx: PeriodContext) -> pd.DataFrame:
    """Risks with their current score and band (residual where scored, else
    inherent, by each risk's own method), whether it is high, review due, and their
    process's indicators now and 3 months ago."""
    risks = ctx.register("risks")
    if risks.empty:
        return risks
    out = risk_analysis.assess(risks, ctx.params)
    out["score"] = out["current_score"]
    out["high"] = [
        risk_analysis.is_high(ctx.params, m, b)
        for m, b in zip(out["method"], out["current_band"], strict=True)
    ]
    out["review_due"] = pd.to_datetime(out["review_date"]) < month_end(ctx.period)
    earlier = str(Period.parse(ctx.period).shift(-3))
    perf = process_performance(ctx.kpi, ctx.params, [earlier, ctx.period])

    def share(process: str, period: str) -> float:
        rows = perf[(perf["process"] == process) & (perf["period"] == period)]
        return float("nan") if rows.empty else float(rows["met"].sum() / rows["assessed"].sum())

    out["met_before"] = [share(p, earlier) for p in out["process_id"]]
    out["met_now"] = [share(p, ctx.period) for p in out["process_id"]]
    return out


@register_input("e_risks", "9.3.2 e)", 50)
def risk_actions(ctx: PeriodContext) -> Evidence:
    """Effectiveness of actions on risks and opportunities.

    A treated risk's actions work when its process's indicators hold or improve:
    the share of them met now is compared with three months ago.
    """
    rows = risk_frame(ctx)
    if rows.empty:
        return Evidence(has_data=False)
    active = rows[rows["status"] != "closed"]
    high = active[active["high"]]
    worse = active[active["met_now"] < active["met_before"]]
    due = active[active["review_due"]]
    ev = Evidence(
        has_data=True,
        headline=ctx.t(
            "review.e.headline", total=len(active), high=len(high), worse=len(worse), due=len(due)
        ),
        status="red" if len(high[high["met_now"] < 1]) else ("yellow" if len(due) else "green"),
        facts={"risks_open": len(active), "high": len(high), "not_effective": len(worse)},
    )
    effects = risk_analysis.view(ctx).effects
    verdicts = {v: sum(e.verdict == v for e in effects) for v in risk_analysis.VERDICTS}
    ev.facts["actions_checked"] = verdicts
    for r in high.itertuples():
        if r.met_now < 1:
            ev.issues.append(
                Issue(
                    "e_risks",
                    60 + int(r.score),
                    ctx.t(
                        "review.issue.risk_high",
                        id=r.risk_id,
                        process=r.process_id,
                        score=scoring.number_text(r.score),
                        dept=ctx.dept_name(r.department),
                    ),
                    "red",
                )
            )
    if len(due):
        ev.issues.append(
            Issue(
                "e_risks",
                45,
                ctx.t(
                    "review.issue.risk_review_due",
                    count=len(due),
                    ids=", ".join(due["risk_id"].astype(str).head(6)),
                ),
                "yellow",
            )
        )

    def effect(r: pd.Series) -> str:
        if pd.isna(r["met_now"]) or pd.isna(r["met_before"]):
            return escape("–")
        text = f"{100 * r['met_before']:.0f}% → {100 * r['met_now']:.0f}%"
        state = "green" if r["met_now"] >= r["met_before"] else "red"
        return badge(state, text)

    ev.items.append(ctx.t("review.e.note"))
    if effects:
        ev.items.append(
            ctx.t(
                "risk.for_review",
                total=len(effects),
                effective=verdicts["effective"],
                not_effective=verdicts["not_effective"],
                waiting=verdicts["not_enough_data"],
            )
        )
    ev.items.append(
        table(
            active.sort_values("score", ascending=False, na_position="last"),
            [
                Col(ctx.t("review.col.risk"), lambda r: escape(r["risk_id"])),
                Col(
                    ctx.t("review.col.type"),
                    lambda r: escape(ctx.t(f"review.risk_type.{r['type']}")),
                ),
                Col(ctx.t("col.process"), lambda r: escape(r["process_id"])),
                Col(ctx.t("col.department"), lambda r: escape(ctx.dept_name(r["department"]))),
                Col(ctx.t("review.col.description"), lambda r: escape(str(r["description"])[:120])),
                Col(ctx.t("review.col.score"), lambda r: risk_analysis.score_badge(ctx, r)),
                Col(
                    ctx.t("review.col.review_date"),
                    lambda r: (
                        badge("red", _date(r["review_date"]))
                        if r["review_due"]
                        else escape(_date(r["review_date"]))
                    ),
                ),
                Col(ctx.t("review.col.effect"), effect),
            ],
            css="qm-wide",
        )
    )
    return ev


@register_input("f_improvement", "9.3.2 f)", 60)
def improvement(ctx: PeriodContext) -> Evidence:
    """Opportunities for improvement: OFI findings and registered opportunities."""
    findings, risks = ctx.register("findings"), ctx.register("risks")
    ofi = findings[findings["grade"] == "ofi"] if not findings.empty else findings
    if not ofi.empty:
        ofi = ofi[pd.to_datetime(ofi["found_on"]).dt.year == ctx.year]
    opps = (
        risks[(risks["type"] == "opportunity") & (risks["status"] != "closed")]
        if not risks.empty
        else risks
    )
    if ofi.empty and opps.empty:
        return Evidence(has_data=False)
    ev = Evidence(
        has_data=True,
        status="info",
        headline=ctx.t("review.f.headline", ofi=len(ofi), opportunities=len(opps)),
        facts={"ofi": len(ofi), "opportunities": len(opps)},
    )
    rows = [
        {
            "id": r.finding_id,
            "source": ctx.t("review.f.ofi"),
            "dept": r.department,
            "text": r.statement,
            "date": _date(r.found_on),
        }
        for r in ofi.itertuples()
    ] + [
        {
            "id": r.risk_id,
            "source": ctx.t("review.risk_type.opportunity"),
            "dept": r.department,
            "text": r.description,
            "date": _date(r.review_date),
        }
        for r in opps.itertuples()
    ]
    rows.sort(key=lambda r: r["date"], reverse=True)
    ev.items.append(
        table(
            rows[:MAX_ROWS],
            [
                Col("ID", key="id"),
                Col(ctx.t("review.col.source"), key="source"),
                Col(ctx.t("col.department"), lambda r: escape(ctx.dept_name(r["dept"]))),
                Col(ctx.t("review.col.description"), lambda r: escape(r["text"])),
                Col(ctx.t("review.col.date"), key="date"),
            ],
            css="qm-wide",
        )
    )
    return ev


@register_input("gate", "9.1.3", 70)
def data_quality(ctx: PeriodContext) -> Evidence:
    """The data-quality gate's result for the period (``gate.json`` of the run)."""
    gate = ctx.gate
    if not gate:
        return Evidence(has_data=False)
    datasets = gate.get("datasets", {})
    if isinstance(datasets, list):
        datasets = {str(d.get("dataset") or d.get("id")): d for d in datasets}
    rows = [
        {
            "dataset": name,
            "status": str((info or {}).get("status", "unknown")),
            "problems": len((info or {}).get("failures", (info or {}).get("problems", [])) or []),
        }
        for name, info in datasets.items()
    ]
    worst = {s["status"] for s in rows} | {str(gate.get("status", ""))}
    status = (
        "red"
        if worst & {"fail", "failed", "blocked"}
        else ("yellow" if worst & {"warn", "warning"} else "green")
    )
    ev = Evidence(
        has_data=True,
        status=status,
        headline=ctx.t(f"review.gate.{status}", count=len(rows)),
        facts={"gate_status": status},
    )
    if status == "red":
        ev.issues.append(
            Issue(
                "gate",
                100,
                ctx.t(
                    "review.issue.gate",
                    datasets=", ".join(
                        r["dataset"] for r in rows if r["status"] in ("fail", "failed", "blocked")
                    ),
                ),
                "red",
            )
        )
    ev.items.append(
        table(
            rows,
            [
                Col(ctx.t("review.col.dataset"), key="dataset"),
                Col(
                    ctx.t("col.status"),
                    lambda r: badge(
                        {
                            "pass": "green",
                            "ok": "green",
                            "passed": "green",
                            "warn": "yellow",
                            "warning": "yellow",
                        }.get(r["status"], "red"),
                        r["status"],
                    ),
                ),
                Col(ctx.t("review.col.problems"), key="problems", align="right"),
            ],
        )
    )
    return ev


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------
COMPLETENESS_COLOURS = {"data": "green", "statement": "yellow", "missing": "red"}


def missing_hint(ctx: PeriodContext, input_id: str) -> str:
    """What to do about a missing input (the input's own hint, else the general one)."""
    from qmsnb.i18n import catalogue

    key = f"review.missing_hint.{input_id}"
    return ctx.t(key if key in catalogue() else "review.missing_hint")


def summary(pack: ReviewPack) -> Section:
    """The one-page executive summary: missing inputs first, status counts, top five, changes."""
    ctx = pack.ctx
    section = Section(ctx.t("review.summary"), anchor="summary", level=0)
    sub = ctx.t(
        "report.subtitle",
        org=ctx.params.organisation.name(ctx.lang),
        dept=ctx.department_name,
        period=ctx.period_label,
    )
    section.add(
        Html(
            f'<div class="qm-header"><h1>{escape(ctx.t("review.title"))}</h1>'
            f'<p class="qm-sub">{escape(sub)}</p></div>'
        )
    )
    if pack.missing:
        section.add(
            banner(
                "red",
                ctx.t("review.missing_banner", count=len(pack.missing)),
                [
                    f"{s.input.clause} {s.input.title(ctx)} — "
                    + (s.error or missing_hint(ctx, s.input.id))
                    for s in pack.missing
                ],
            )
        )
    else:
        section.add(banner("info", ctx.t("review.complete_banner", count=len(pack.states))))
    if pack.unknown_statements:
        section.add(
            banner(
                "yellow", ctx.t("review.unknown_statements", ids=", ".join(pack.unknown_statements))
            )
        )
    section.add(Facts(facts(pack)))
    # status counts
    kpis = ctx.kpi[(ctx.kpi["period"] == ctx.period) & (ctx.kpi["department"] == ORGANISATION)]
    counts = kpis["status"].value_counts()
    alerts = ctx.kpi[
        (ctx.kpi["period"] == ctx.period)
        & (ctx.kpi["alert"] != "")
        & (ctx.kpi["department"] != ORGANISATION)
    ]
    complete = sum(not s.missing for s in pack.states.values())
    chips = [
        badge("red", f"{ctx.t('status.red')} {int(counts.get('red', 0))}"),
        badge("yellow", f"{ctx.t('status.yellow')} {int(counts.get('yellow', 0))}"),
        badge("green", f"{ctx.t('status.green')} {int(counts.get('green', 0))}"),
        badge(
            "red" if (alerts["alert"] == "support").any() else "yellow",
            ctx.t("review.alert_count", count=len(alerts)),
        ),
        badge(
            "red" if pack.missing else "green",
            ctx.t("review.inputs_count", done=complete, total=len(pack.states)),
        ),
    ]
    section.add(Html(f'<p class="qm-chips">{" ".join(chips)}</p>'))
    section.add(Html(f'<h3 class="qm-h">{escape(ctx.t("review.top_issues"))}</h3>'))
    issues = pack.issues
    if issues:
        items = "".join(
            f"<li>{badge(i.status, ctx.t(f'status.{i.status}'))} {escape(i.text)} "
            f'<span class="qm-clause">{escape(INPUTS[i.input].clause if i.input in INPUTS else "")}'
            "</span></li>"
            for i in issues
        )
        section.add(Html(f'<ol class="qm-issues">{items}</ol>'))
    else:
        section.add(ctx.t("review.no_issues"))
    section.add(Html(f'<h3 class="qm-h">{escape(ctx.t("review.changes"))}</h3>'))
    changes = [c for s in pack.states.values() for c in s.evidence.changes]
    section.add(bullet_list(changes) if changes else ctx.t("review.no_changes"))
    section.add(Html(f'<h3 class="qm-h">{escape(ctx.t("review.inputs"))}</h3>'))
    section.add(
        table(
            list(pack.states.values()),
            [
                Col(ctx.t("review.col.clause"), lambda s: escape(s.input.clause)),
                Col(
                    ctx.t("review.col.input"),
                    lambda s: f'<a href="#{escape(s.input.id)}">{escape(s.input.title(ctx))}</a>',
                ),
                Col(
                    ctx.t("review.col.completeness"),
                    lambda s: badge(
                        COMPLETENESS_COLOURS[s.completeness],
                        ctx.t(f"review.completeness.{s.completeness}"),
                    ),
                ),
                Col(
                    ctx.t("col.status"),
                    lambda s: (
                        badge(s.evidence.status, ctx.t(f"review.status.{s.evidence.status}"))
                        if s.completeness == "data"
                        else ""
                    ),
                ),
                Col(
                    ctx.t("review.col.headline"),
                    lambda s: escape(
                        s.evidence.headline if s.completeness == "data" else "; ".join(s.statements)
                    ),
                ),
            ],
        )
    )
    return section


def section(pack: ReviewPack, input_id: str) -> Section:
    """The section of one input: its evidence, the statements recorded, or a red 'missing'."""
    ctx = pack.ctx
    state = pack.states.get(input_id)
    if state is None:
        raise UsageError("error.review.unknown_input", value=input_id, known=", ".join(INPUTS))
    spec = state.input
    out = Section(f"{spec.clause} {spec.title(ctx)}", anchor=spec.id)
    if state.missing:
        lines = [state.error or missing_hint(ctx, spec.id)]
        return out.add(banner("red", ctx.t("review.missing_input"), lines))
    for text in state.statements:
        out.add(banner("info", ctx.t("review.statement"), [text]))
    if state.completeness == "data":
        if spec.needs_trend and state.evidence.trend_periods < MIN_TREND_PERIODS:
            out.add(
                banner(
                    "yellow",
                    ctx.t(
                        "review.short_trend",
                        found=state.evidence.trend_periods,
                        wanted=MIN_TREND_PERIODS,
                    ),
                )
            )
        if state.evidence.headline:
            out.add(
                Html(f'<p class="qm-text"><strong>{escape(state.evidence.headline)}</strong></p>')
            )
        out.add(*state.evidence.items)
    return out


def outputs(pack: ReviewPack) -> Section:
    """9.3.3: decisions and actions recorded at this review (carried into next month's a)."""
    ctx = pack.ctx
    out = Section(ctx.t("review.outputs"), anchor="outputs")
    frame = ctx.register("review_decisions")
    rows = frame[frame["review_period"].astype(str) == ctx.period] if not frame.empty else frame
    out.add(ctx.t("review.outputs_note"))
    if rows.empty:
        return out.add(banner("yellow", ctx.t("review.no_decisions")))
    for kind in ("improvement", "qms_change", "resources"):
        part = rows[rows["kind"] == kind]
        out.add(Html(f'<h3 class="qm-h">{escape(ctx.t(f"review.kind.{kind}"))}</h3>'))
        if part.empty:
            out.add(ctx.t("review.none_of_kind"))
            continue
        out.add(
            table(
                part,
                [
                    Col(
                        ctx.t("review.col.decision"),
                        lambda r: (
                            f"<strong>{escape(r['decision_id'])}</strong> " + escape(r["decision"])
                        ),
                    ),
                    Col(
                        ctx.t("review.col.input"),
                        lambda r: escape(
                            INPUTS[r["input"]].clause
                            if pd.notna(r.get("input")) and r["input"] in INPUTS
                            else ""
                        ),
                    ),
                    Col(ctx.t("col.who"), lambda r: escape(r["owner"])),
                    Col(
                        ctx.t("col.department"),
                        lambda r: escape(
                            ctx.dept_name(r["department"]) if pd.notna(r.get("department")) else ""
                        ),
                    ),
                    Col(ctx.t("col.by_when"), lambda r: escape(_date(r["due"]))),
                ],
            )
        )
    return out


_register_tables()


def decision_form(ctx: PeriodContext, **kwargs: Any) -> Any:
    """The form that records this review's decisions, follow-ups and statements.

    See :class:`qmsnb.review_widgets.ReviewForm` (ipywidgets, for JupyterLab).
    """
    from qmsnb.review_widgets import ReviewForm

    return ReviewForm(ctx, **kwargs)
