"""Internal audit (ISO 9001 9.2, 10.2): the risk-based programme, its schedule and
auditors, clause coverage, checklists, findings and corrective actions.

The sections of ``notebooks/internal_audit.ipynb`` (per department and for the
organisation): summary and narrative; the programme (audits a year per process ×
department, each explained in one sentence); the 12-month schedule with impartial,
competent auditors; the clause × department coverage with gaps; checklists for the
planned audits; findings statistics and repeat findings; corrective-action ageing.

Pure computations take frames (the process register, the audit programme,
findings, actions, assessed KPIs) and plain parameters and return frames:
:func:`process_departments`, :func:`audit_frequency`, :func:`schedule`,
:func:`assign_auditors`, :func:`coverage`, :func:`checklist`,
:func:`repeat_findings`, :func:`action_ageing`. The section functions turn them into
:class:`~qmsnb.display.Section` objects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qmsnb import charts
from qmsnb.config import ORGANISATION, Auditor, FrequencyRules, Params, PlannedChange
from qmsnb.context import PeriodContext
from qmsnb.contract import ACTION_STATUS, AUDIT_STATUS, GRADES
from qmsnb.display import Col, Html, Section, badge, banner, bullet_list, escape, table
from qmsnb.i18n import fmt_number, period_short, pick, t
from qmsnb.periods import Period
from qmsnb.record_rules import split_clauses

#: Process-register category of customer-facing processes (complaints weigh on them).
CUSTOMER = "customer"
#: Alert levels of the KPI engine, weakest first.
ALERTS = ("", "warning", "support")
#: Coverage states, shown as the status colours grey / red / yellow / green.
COVERAGE_STATUS = {
    "not_applicable": "no_data",
    "gap": "red",
    "planned": "yellow",
    "covered": "green",
}
#: Action ageing colours (closed actions are grey).
RAG = ("red", "yellow", "green", "closed")

_NAME_SPLIT = re.compile(r"[、/／,，;；\n]+")
_STEP_SPLIT = re.compile(r"(?:\d+[、.．)）]\s*)|[—–→]+|-{2,}|-(?=\S)|;|；|。")
_DOC_SPLIT = re.compile(r"[/／;；、\n]+|—{2,}|-{2,}")


# ---------------------------------------------------------------------------
# The register: who takes part in which process
# ---------------------------------------------------------------------------
def split_names(text: Any) -> list[str]:
    """``"热线运营部、品质部/投诉中心"`` → ``["热线运营部", "品质部", "投诉中心"]``."""
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return []
    return [p.strip() for p in _NAME_SPLIT.split(str(text)) if p.strip()]


def map_departments(text: Any, aliases: Mapping[str, str]) -> list[str]:
    """Department ids named in a register cell, in order, without repeats.

    The whole cell is tried first (``客服部、一中心`` may itself be an alias), then
    each name separated by 、 / , ;. Names that are not departments (总经理,
    各部门负责人) are ignored.
    """
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return []
    whole = str(text).strip()
    found = [aliases[whole]] if whole in aliases else []
    if not found:
        for name in split_names(whole):
            dept = aliases.get(name) or aliases.get(name.lower())
            if dept and dept not in found:
                found.append(dept)
    return found


def process_departments(processes: pd.DataFrame, aliases: Mapping[str, str]) -> pd.DataFrame:
    """Process × department pairs of the register: the owner departments and the
    departments among the performers.

    Returns:
        Columns ``process_id``, ``department``, ``role`` (``owner`` or
        ``performer``; owner wins), one row per pair, in register order.
    """
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for proc in processes.itertuples():
        for role, cell in (("owner", proc.owner_department), ("performer", proc.performers)):
            for dept in map_departments(cell, aliases):
                key = (str(proc.process_id), dept)
                if key not in seen:
                    seen.add(key)
                    rows.append({"process_id": key[0], "department": dept, "role": role})
    return pd.DataFrame(rows, columns=["process_id", "department", "role"])


def unmapped_processes(processes: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    """Process ids the register gives no department for (they cannot be planned)."""
    return [p for p in processes["process_id"].astype(str) if p not in set(pairs["process_id"])]


def clause_group(clause: str) -> str:
    """``"8.5.1"`` → ``"8.5"``: coverage is shown at the second level of ISO 9001."""
    parts = clause.split(".")
    return ".".join(parts[:2])


def clause_key(clause: str) -> tuple[int, ...]:
    """Sort key for clause numbers (``8.10`` after ``8.9``)."""
    return tuple(int(p) if p.isdigit() else 0 for p in clause.split("."))


# ---------------------------------------------------------------------------
# Risk-based frequency
# ---------------------------------------------------------------------------
def complaint_kpi(params: Params) -> str | None:
    """The catalogue KPI counted on every complaint ticket (its base is the volume)."""
    for kpi in params.catalogue.kpis:
        measure = kpi.measure
        if getattr(measure, "dataset", None) == "complaints" and not getattr(measure, "where", {}):
            return kpi.id
    return None


def complaint_volume(kpi: pd.DataFrame, kpi_id: str | None) -> pd.DataFrame:
    """Complaints per department and month (the base of ``kpi_id``)."""
    if kpi_id is None or kpi.empty:
        return pd.DataFrame(columns=["period", "department", "complaints"])
    rows = kpi[(kpi["kpi"] == kpi_id) & (kpi["department"] != ORGANISATION)]
    return pd.DataFrame(
        {
            "period": rows["period"].astype(str).to_numpy(),
            "department": rows["department"].astype(str).to_numpy(),
            "complaints": pd.to_numeric(rows["denominator"]).astype(float).to_numpy(),
        }
    )


def complaint_rise(volume: pd.DataFrame, period: str, months: int) -> dict[str, float]:
    """Department → % change of ``period``'s complaints over the mean of the
    ``months`` months before (departments without a previous mean are left out)."""
    now = Period.parse(period)
    before = {str(p) for p in now.shift(-1).back(months)}
    out: dict[str, float] = {}
    for dept, rows in volume.groupby("department"):
        current = rows.loc[rows["period"] == period, "complaints"]
        previous = rows.loc[rows["period"].isin(before), "complaints"]
        if current.empty or previous.empty or previous.mean() <= 0:
            continue
        out[str(dept)] = float(100.0 * (current.sum() / previous.mean() - 1.0))
    return out


def kpi_alerts(
    kpi: pd.DataFrame, period: str, kpi_processes: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """The strongest alert of each process × department this period.

    Returns:
        Columns ``process_id``, ``department``, ``alert`` (``warning`` or
        ``support``), ``kpi`` (the indicator behind it) and ``months`` (its run of
        missed months).
    """
    if kpi.empty:
        return pd.DataFrame(columns=["process_id", "department", "alert", "kpi", "months"])
    now = kpi[
        (kpi["period"] == period) & (kpi["alert"] != "") & (kpi["department"] != ORGANISATION)
    ]
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for row in now.itertuples():
        for process in kpi_processes.get(row.kpi, ()):
            key = (process, str(row.department))
            rank = (ALERTS.index(row.alert), int(row.miss_streak))
            if key not in best or rank > best[key]["rank"]:
                best[key] = {
                    "rank": rank,
                    "alert": row.alert,
                    "kpi": row.kpi,
                    "months": int(row.miss_streak),
                }
    return pd.DataFrame(
        [
            {"process_id": p, "department": d, **{k: v for k, v in b.items() if k != "rank"}}
            for (p, d), b in best.items()
        ],
        columns=["process_id", "department", "alert", "kpi", "months"],
    )


def lookback_window(period: str, months: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of the ``months`` months ending with ``period``."""
    now = Period.parse(period)
    return pd.Timestamp(now.shift(-(months - 1)).start), pd.Timestamp(now.end)


def audit_frequency(
    pairs: pd.DataFrame,
    processes: pd.DataFrame,
    findings: pd.DataFrame,
    alerts: pd.DataFrame,
    rises: Mapping[str, float],
    changes: Sequence[PlannedChange],
    rules: FrequencyRules,
    period: str,
) -> pd.DataFrame:
    """Audits a year for every process × department, and the reasons.

    Args:
        pairs: from :func:`process_departments`.
        processes: the process register (``process_id``, ``importance``, ``category``).
        findings: the findings register (``process_id``, ``department``, ``grade``,
            ``found_on``); only those in the look-back window count.
        alerts: from :func:`kpi_alerts`.
        rises: department → complaint change in % (:func:`complaint_rise`).
        changes: declared changes (``params/audit.yaml``).
        rules: the frequency rules.
        period: the report's month; the look-back window ends with it.

    Returns:
        One row per pair: ``process_id``, ``department``, ``importance``, ``category``,
        ``base``, ``major``, ``minor``, ``finding_extra``, ``alert``, ``alert_kpi``,
        ``alert_months``, ``kpi_extra``, ``complaint_rise``, ``complaint_extra``,
        ``changes`` (list of PlannedChange), ``change_extra``, ``raw`` (before the
        cap), ``frequency`` (audits a year) and ``interval`` (months between audits).
    """
    info = processes.set_index(processes["process_id"].astype(str))
    start, end = lookback_window(period, rules.lookback_months)
    recent = findings
    if not findings.empty:
        found = pd.to_datetime(findings["found_on"])
        recent = findings[(found >= start) & (found < end)]
    counts: dict[tuple[str, str, str], int] = {}
    if not recent.empty:
        grouped = recent.groupby(["process_id", "department", "grade"]).size()
        counts = {(str(p), str(d), str(g)): int(n) for (p, d, g), n in grouped.items()}
    alert_at = {(r.process_id, r.department): r for r in alerts.itertuples()}
    first = str(Period.parse(period).shift(-(rules.lookback_months - 1)))
    rows = []
    for pair in pairs.itertuples():
        process, dept = str(pair.process_id), str(pair.department)
        importance = str(info.at[process, "importance"]) if process in info.index else "D"
        category = str(info.at[process, "category"]) if process in info.index else ""
        base = rules.base.get(importance, 1)  # type: ignore[call-overload]
        major = counts.get((process, dept, "major"), 0)
        minor = counts.get((process, dept, "minor"), 0)
        finding_extra = min(rules.findings_cap, major * rules.major + minor * rules.minor)
        alert = alert_at.get((process, dept))
        alert_level = alert.alert if alert is not None else ""
        kpi_extra = {"": 0, "warning": rules.kpi_warning, "support": rules.kpi_support}[alert_level]
        rise = rises.get(dept)
        complaint_extra = (
            rules.complaint_rise
            if category == CUSTOMER and rise is not None and rise > rules.complaint_rise_percent
            else 0
        )
        relevant = [
            c
            for c in changes
            if first <= c.month <= period
            and (c.process is None or c.process == process)
            and (c.department is None or c.department == dept)
        ]
        change_extra = rules.change if relevant else 0
        raw = base + finding_extra + kpi_extra + complaint_extra + change_extra
        frequency = min(rules.maximum, raw)
        rows.append(
            {
                "process_id": process,
                "department": dept,
                "importance": importance,
                "category": category,
                "base": base,
                "major": major,
                "minor": minor,
                "finding_extra": finding_extra,
                "alert": alert_level,
                "alert_kpi": alert.kpi if alert is not None else None,
                "alert_months": alert.months if alert is not None else 0,
                "kpi_extra": kpi_extra,
                "complaint_rise": rise if complaint_extra else None,
                "complaint_extra": complaint_extra,
                "changes": relevant,
                "change_extra": change_extra,
                "raw": raw,
                "frequency": frequency,
                "interval": 12 / frequency,
            }
        )
    return pd.DataFrame(rows)


def frequency_sentence(
    row: Mapping[str, Any], names: Mapping[str, str], lang: str, rules: FrequencyRules
) -> str:
    """One sentence saying why a process × department gets its frequency.

    Args:
        row: a row of :func:`audit_frequency`.
        names: ``process`` (id and name), ``department``, ``kpi`` (the alert KPI's
            name, if any) in ``lang``.
    """
    reasons = []
    if row["finding_extra"]:
        reasons.append(
            t(
                "audit.reason.findings",
                lang,
                major=row["major"],
                minor=row["minor"],
                months=rules.lookback_months,
                extra=row["finding_extra"],
            )
        )
    if row["kpi_extra"]:
        reasons.append(
            t(
                f"audit.reason.kpi_{row['alert']}",
                lang,
                kpi=names.get("kpi", ""),
                months=row["alert_months"],
                extra=row["kpi_extra"],
            )
        )
    if row["complaint_extra"]:
        reasons.append(
            t(
                "audit.reason.complaints",
                lang,
                rise=fmt_number(row["complaint_rise"], "%", 0),
                months=rules.complaint_months,
                extra=row["complaint_extra"],
            )
        )
    for change in row["changes"]:
        reasons.append(
            t(
                "audit.reason.change",
                lang,
                month=change.month,
                change=change.description(lang),
                extra=row["change_extra"],
            )
        )
    if row["raw"] > row["frequency"]:
        reasons.append(t("audit.reason.capped", lang, maximum=rules.maximum))
    key = "audit.sentence" if reasons else "audit.sentence_base"
    joiner = t("audit.reason.joiner", lang)
    return t(
        key,
        lang,
        process=names["process"],
        department=names["department"],
        frequency=row["frequency"],
        importance=row["importance"],
        base=row["base"],
        reasons=joiner.join(reasons),
    )


# ---------------------------------------------------------------------------
# Schedule and auditors
# ---------------------------------------------------------------------------
def last_audits(audits: pd.DataFrame, period: str) -> dict[tuple[str, str], str]:
    """(process, department) → month of the last audit done up to ``period``."""
    if audits.empty:
        return {}
    done = audits[(audits["status"] == "done") & (audits["planned_month"] <= period)]
    last = done.groupby(["process_id", "department"])["planned_month"].max()
    return {(str(p), str(d)): str(m) for (p, d), m in last.items()}


def _months_between(first: str, second: str) -> int:
    a, b = Period.parse(first), Period.parse(second)
    return (b.year - a.year) * 12 + b.month - a.month


def schedule(
    freq: pd.DataFrame, audits: pd.DataFrame, period: str, months: int = 12
) -> pd.DataFrame:
    """Spread each pair's audits over the ``months`` months after ``period``.

    The first audit of a pair falls one interval after its last audit (at once if
    that is overdue or it was never audited); later ones follow at its interval.
    A pair that is due "now" is placed, within its first interval, in the least
    loaded month, so the programme does not pile up in month one. Pairs with the
    highest frequency are placed first.

    Returns:
        Columns ``month``, ``process_id``, ``department``, ``frequency``, ``seq``
        (1 for the pair's first audit in the window), sorted by month.
    """
    start = Period.parse(period)
    window = [str(start.shift(i)) for i in range(1, months + 1)]
    load = dict.fromkeys(window, 0)
    last = last_audits(audits, period)
    rows: list[dict[str, Any]] = []
    order = freq.sort_values(
        ["frequency", "process_id", "department"], ascending=[False, True, True], kind="stable"
    )
    for pair in order.itertuples():
        interval = 12 / pair.frequency
        step = max(1, round(interval))
        previous = last.get((pair.process_id, pair.department))
        # months after ``period`` the next audit is due (at once when never audited)
        due = 1 if previous is None else _months_between(period, previous) + round(interval)
        if due <= 1:  # overdue or never audited: least loaded month within one interval
            candidates = window[: max(1, min(step, months))]
            first = min(range(len(candidates)), key=lambda i: (load[candidates[i]], i)) + 1
        else:
            first = due
        seq, offset = 1, float(first)
        while round(offset) <= months:
            month = window[round(offset) - 1]
            rows.append(
                {
                    "month": month,
                    "process_id": pair.process_id,
                    "department": pair.department,
                    "frequency": pair.frequency,
                    "seq": seq,
                }
            )
            load[month] += 1
            seq += 1
            offset += interval
    out = pd.DataFrame(rows, columns=["month", "process_id", "department", "frequency", "seq"])
    return out.sort_values(["month", "process_id", "department"], kind="stable").reset_index(
        drop=True
    )


def eligible(auditor: Auditor, process: str, category: str, department: str) -> bool:
    """Impartial (not from the audited department) and competent for the process."""
    return auditor.department != department and auditor.competent_for(process, category)


def assign_auditors(
    plan: pd.DataFrame, auditors: Sequence[Auditor], categories: Mapping[str, str]
) -> pd.DataFrame:
    """Give each planned audit an impartial, competent auditor with room that month.

    The least loaded eligible auditor that month wins (then the least loaded over
    the year, then the order in ``audit.yaml``).

    Returns:
        ``plan`` with ``auditor``, ``auditor_department`` and ``problem`` (``""``,
        ``no_auditors``, ``none_eligible``: nobody impartial and competent,
        ``all_busy``: every eligible auditor at their monthly maximum).
    """
    month_load: dict[tuple[str, str], int] = {}
    year_load: dict[str, int] = {}
    names, depts, problems = [], [], []
    for row in plan.itertuples():
        category = categories.get(row.process_id, "")
        if not auditors:
            names.append(None)
            depts.append(None)
            problems.append("no_auditors")
            continue
        fit = [a for a in auditors if eligible(a, row.process_id, category, row.department)]
        free = [a for a in fit if month_load.get((a.name, row.month), 0) < a.max_per_month]
        if not free:
            names.append(None)
            depts.append(None)
            problems.append("none_eligible" if not fit else "all_busy")
            continue
        rank = {a.name: i for i, a in enumerate(auditors)}
        best = min(
            free,
            key=lambda a: (
                month_load.get((a.name, row.month), 0),
                year_load.get(a.name, 0),
                rank[a.name],
            ),
        )
        month_load[(best.name, row.month)] = month_load.get((best.name, row.month), 0) + 1
        year_load[best.name] = year_load.get(best.name, 0) + 1
        names.append(best.name)
        depts.append(best.department)
        problems.append("")
    out = plan.copy()
    # object columns: an unassigned audit has None (not NaN, which reads as a name)
    out["auditor"] = pd.Series(names, index=out.index, dtype=object)
    out["auditor_department"] = pd.Series(depts, index=out.index, dtype=object)
    out["problem"] = problems
    return out


# ---------------------------------------------------------------------------
# Coverage
# ---------------------------------------------------------------------------
def coverage(
    processes: pd.DataFrame,
    pairs: pd.DataFrame,
    audits: pd.DataFrame,
    plan: pd.DataFrame,
    period: str,
    months: int = 12,
) -> pd.DataFrame:
    """ISO 9001 clause (second level) × department: relevant? audited? planned?

    A clause is relevant to a department when a process it takes part in names
    the clause; covered when such an audit was done in the ``months`` months up to
    ``period``; planned when one is in ``plan``; a gap when relevant and neither.

    Returns:
        Columns ``clause``, ``department``, ``relevant``, ``audited`` (count),
        ``planned`` (count), ``status`` (``not_applicable``, ``gap``, ``planned``,
        ``covered``), sorted by clause.
    """
    clauses_of = {
        str(p): sorted({clause_group(c) for c in split_clauses(text)}, key=clause_key)
        for p, text in zip(processes["process_id"], processes["iso_clauses"], strict=True)
    }
    first = str(Period.parse(period).shift(-(months - 1)))
    done = audits
    if not audits.empty:
        done = audits[
            (audits["status"] == "done")
            & (audits["planned_month"] >= first)
            & (audits["planned_month"] <= period)
        ]
    relevant: set[tuple[str, str]] = set()
    audited: dict[tuple[str, str], int] = {}
    planned: dict[tuple[str, str], int] = {}
    for pair in pairs.itertuples():
        for clause in clauses_of.get(pair.process_id, []):
            relevant.add((clause, pair.department))
    for frame, counter in ((done, audited), (plan, planned)):
        for row in frame.itertuples():
            for clause in clauses_of.get(str(row.process_id), []):
                key = (clause, str(row.department))
                counter[key] = counter.get(key, 0) + 1
    all_clauses = sorted({c for cs in clauses_of.values() for c in cs}, key=clause_key)
    departments = list(dict.fromkeys(pairs["department"]))
    rows = []
    for clause in all_clauses:
        for dept in departments:
            key = (clause, dept)
            is_relevant = key in relevant
            a, p = audited.get(key, 0), planned.get(key, 0)
            status = (
                ("covered" if a else "planned" if p else "gap")
                if is_relevant
                else ("not_applicable")
            )
            rows.append(
                {
                    "clause": clause,
                    "department": dept,
                    "relevant": is_relevant,
                    "audited": a,
                    "planned": p,
                    "status": status,
                }
            )
    return pd.DataFrame(
        rows, columns=["clause", "department", "relevant", "audited", "planned", "status"]
    )


# ---------------------------------------------------------------------------
# Checklists
# ---------------------------------------------------------------------------
def split_steps(text: Any) -> list[str]:
    """A register cell of numbered or arrowed steps → the steps."""
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return []
    parts = [p.strip(" \t\n-—:：,，") for p in _STEP_SPLIT.split(str(text))]
    return [p for p in parts if p]


def split_documents(text: Any) -> list[str]:
    """The QMS documents cell → document names (《》 kept as written)."""
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return []
    return [p.strip() for p in _DOC_SPLIT.split(str(text)) if p.strip()]


CHECKLIST_COLUMNS = ["section", "item", "reference", "prompt", "status"]
CHECKLIST_SECTIONS = (
    "clauses",
    "activities",
    "outputs",
    "indicators",
    "failure_modes",
    "documents",
)


def checklist(
    process: Mapping[str, Any], kpi_rows: pd.DataFrame, params: Params, lang: str
) -> pd.DataFrame:
    """The checklist of one audit, generated from the process register.

    Args:
        process: the process's register row.
        kpi_rows: this period's assessed KPI rows of the audited department for the
            indicators of the process.

    Returns:
        Columns :data:`CHECKLIST_COLUMNS`: ``section`` (one of
        :data:`CHECKLIST_SECTIONS`), ``item`` (what to look at), ``reference`` (clause
        title, target and value, consequence), ``prompt`` (what to ask or sample),
        ``status`` (the indicator's status for indicators, else ``""``).
    """
    rows: list[dict[str, str]] = []

    def add(section: str, item: str, reference: str, status: str = "") -> None:
        rows.append(
            {
                "section": section,
                "item": item,
                "reference": reference,
                "prompt": t(f"audit.prompt.{section}", lang),
                "status": status,
            }
        )

    for clause in split_clauses(process.get("iso_clauses")):
        add("clauses", clause, clause_title(clause, lang))
    for step in split_steps(process.get("activities")):
        add("activities", step, "")
    for output in split_steps(process.get("outputs")):
        add("outputs", output, "")
    for row in kpi_rows.itertuples():
        kpi = params.kpis[row.kpi]
        sign = "≥" if kpi.direction == ">=" else "≤"
        add(
            "indicators",
            kpi.name(lang),
            t(
                "audit.checklist.kpi_ref",
                lang,
                target=f"{sign}{fmt_number(kpi.target, kpi.unit, 2)}",
                value=fmt_number(row.value, kpi.unit, 2),
                status=t(f"status.{row.status}", lang),
            ),
            status=str(row.status),
        )
    if kpi_rows.empty and _present(process.get("kpi_text")):
        add("indicators", str(process.get("kpi_text")), "")
    consequences = split_steps(process.get("consequences"))
    for index, mode in enumerate(split_steps(process.get("failure_modes"))):
        add("failure_modes", mode, consequences[index] if index < len(consequences) else "")
    for document in split_documents(process.get("qms_documents")):
        add("documents", document, "")
    return pd.DataFrame(rows, columns=CHECKLIST_COLUMNS)


def _present(value: Any) -> bool:
    return not (
        value is None
        or value is pd.NA
        or (isinstance(value, float) and math.isnan(value))
        or not str(value).strip()
    )


def clause_title(clause: str, lang: str) -> str:
    """``"7.1.1"`` → ``"7.1.1 资源 · 总则"`` from the ISO 9001 titles in the catalogue."""
    from qmsnb.i18n import catalogue

    entries = catalogue()
    own = entries.get(f"iso.{clause}")
    if own is None:
        return clause
    title = pick(own, lang)
    parent = entries.get(f"iso.{clause.rsplit('.', 1)[0]}") if "." in clause else None
    general = {"总则", "General"}
    if parent is not None and title in general:
        title = f"{pick(parent, lang)} · {title}"
    return f"{clause} {title}"


def process_kpis(params: Params, process: str) -> list[str]:
    """Catalogue indicators that measure ``process``."""
    return [k.id for k in params.catalogue.kpis if process in k.processes]


# ---------------------------------------------------------------------------
# Findings and actions
# ---------------------------------------------------------------------------
def repeat_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings that repeat an earlier one: same department and clause, found
    earlier in a different audit.

    Returns:
        ``findings`` with ``repeat_of`` (the earliest earlier finding's id, or None).
    """
    out = findings.copy()
    out["repeat_of"] = None
    if findings.empty:
        return out
    ordered = out.assign(_when=pd.to_datetime(out["found_on"])).sort_values(
        ["_when", "finding_id"], kind="stable"
    )
    first_seen: dict[tuple[str, str], tuple[Any, str, str]] = {}
    repeats: dict[Any, str] = {}
    for index, row in ordered.iterrows():
        key = (str(row["department"]), str(row["clause"]))
        earlier = first_seen.get(key)
        if earlier is not None and earlier[1] != row["audit_id"] and earlier[0] < row["_when"]:
            repeats[index] = earlier[2]
        elif earlier is None:
            first_seen[key] = (row["_when"], row["audit_id"], row["finding_id"])
    out.loc[list(repeats), "repeat_of"] = list(repeats.values())
    return out


def as_of(period: str) -> date:
    """The last day of ``period``: the date actions are aged against."""
    return Period.parse(period).end - timedelta(days=1)


def action_ageing(actions: pd.DataFrame, today: date, due_soon_days: int) -> pd.DataFrame:
    """Red (overdue), yellow (due within ``due_soon_days``), green (on track) or
    closed, for every action; closed ones without an effectiveness check flagged.

    Returns:
        ``actions`` with ``rag``, ``age_days`` (since raised, or until closed),
        ``days_left`` (to the due date, negative when overdue; None when closed),
        ``closed_late`` and ``no_effectiveness_check`` (bools).
    """
    out = actions.copy()
    stamp = pd.Timestamp(today)
    raised = pd.to_datetime(out["raised_on"])
    due = pd.to_datetime(out["due_date"])
    closed_on = pd.to_datetime(out["closed_on"])
    closed = (out["status"] == "closed").fillna(False).astype(bool)
    left = (due - stamp).dt.days
    out["days_left"] = left.where(~closed).astype("Int64")
    out["age_days"] = ((closed_on.where(closed, stamp)) - raised).dt.days.astype("Int64")
    out["rag"] = np.select(
        [closed, left < 0, left <= due_soon_days], ["closed", "red", "yellow"], default="green"
    )
    check = out["effectiveness"].astype("string").str.strip().fillna("")
    out["no_effectiveness_check"] = closed & (check == "")
    out["closed_late"] = closed & (closed_on > due).fillna(False)
    return out


def grade_counts(
    findings: pd.DataFrame, by: str, order: Sequence[str] | None = None
) -> pd.DataFrame:
    """Findings counted by ``by`` (rows) and grade (columns, in contract order)."""
    if findings.empty:
        return pd.DataFrame(columns=list(GRADES))
    table = findings.pivot_table(
        index=by, columns="grade", values="finding_id", aggfunc="count", fill_value=0
    )
    table = table.reindex(columns=list(GRADES), fill_value=0)
    if order is not None:
        table = table.reindex([o for o in order if o in table.index])
    return table.astype(int)


# ---------------------------------------------------------------------------
# Everything the sections need, computed once per context
# ---------------------------------------------------------------------------
@dataclass
class AuditView:
    """The audit picture of one period and scope (department or organisation)."""

    processes: pd.DataFrame
    pairs: pd.DataFrame
    frequency: pd.DataFrame
    plan: pd.DataFrame
    coverage: pd.DataFrame
    audits: pd.DataFrame
    findings: pd.DataFrame
    actions: pd.DataFrame


def _scope(frame: pd.DataFrame, ctx: PeriodContext, column: str = "department") -> pd.DataFrame:
    if ctx.is_organisation or frame.empty or column not in frame:
        return frame
    return frame[frame[column] == ctx.department]


def register_frame(ctx: PeriodContext, name: str) -> pd.DataFrame:
    from qmsnb.contract import DATASETS

    frame = ctx.register(name)
    if frame.empty and not len(frame.columns):
        return pd.DataFrame(columns=[c.name for c in DATASETS[name].columns])
    return frame


def view(ctx: PeriodContext) -> AuditView:
    """The programme, schedule, coverage and registers of ``ctx`` (cached on it)."""
    cached = getattr(ctx, "_audit_view", None)
    if cached is not None:
        return cached
    params, rules = ctx.params, ctx.params.audit.frequency
    processes = register_frame(ctx, "process_register")
    audits = register_frame(ctx, "audit_programme")
    findings = register_frame(ctx, "findings")
    actions = register_frame(ctx, "actions")
    pairs = process_departments(processes, params.department_aliases)
    kpi_processes = {k.id: k.processes for k in params.catalogue.kpis}
    alerts = kpi_alerts(ctx.kpi, ctx.period, kpi_processes)
    rises = complaint_rise(
        complaint_volume(ctx.kpi, complaint_kpi(params)), ctx.period, rules.complaint_months
    )
    freq = audit_frequency(
        pairs, processes, findings, alerts, rises, params.audit.changes, rules, ctx.period
    )
    categories = dict(
        zip(processes["process_id"].astype(str), processes["category"].astype(str), strict=True)
    )
    plan = assign_auditors(schedule(freq, audits, ctx.period), params.audit.auditors, categories)
    # an audit nobody can carry out (no impartial, competent auditor) covers nothing
    cover = coverage(processes, pairs, audits, plan[plan["problem"] == ""], ctx.period)
    result = AuditView(
        processes=processes,
        pairs=pairs,
        frequency=freq,
        plan=plan,
        coverage=cover,
        audits=audits,
        findings=repeat_findings(findings),
        actions=action_ageing(actions, as_of(ctx.period), params.audit.action_due_soon_days),
    )
    object.__setattr__(ctx, "_audit_view", result)
    return result


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------
def process_label(ctx: PeriodContext, process_id: str, processes: pd.DataFrame) -> str:
    """``process_id`` and the name of its first row in ``processes``."""
    # a report labels hundreds of rows: the names are looked up in a dict made once
    # per processes frame (kept on the context), not by filtering the frame each time
    cached = getattr(ctx, "_process_names", None)
    if cached is None or cached[0] is not processes:
        names: dict[str, str] = {}
        for pid, name in zip(
            processes["process_id"].astype(str), processes["process_name"], strict=True
        ):
            names.setdefault(pid, str(name))
        cached = (processes, names)
        object.__setattr__(ctx, "_process_names", cached)
    return f"{process_id} {cached[1].get(process_id, '')}".strip()


def _grade_label(ctx: PeriodContext, grade: str) -> str:
    zh, en = GRADES.get(grade, (grade, grade))
    return zh if ctx.lang == "zh" else en


def _dept(ctx: PeriodContext, dept: Any) -> str:
    if dept is None or dept is pd.NA or dept not in ctx.params.departments:
        return "" if dept is None or dept is pd.NA else str(dept)
    return ctx.dept_name(str(dept))


def date_text(value: Any) -> str:
    if (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    ):
        return ""
    return pd.Timestamp(value).date().isoformat()


def _department_column(ctx: PeriodContext) -> list[Col]:
    """The department column, for the organisation only (a department's report is its own)."""
    if not ctx.is_organisation:
        return []
    return [Col(ctx.t("col.department"), lambda r: escape(_dept(ctx, r["department"])))]


def header(ctx: PeriodContext) -> Html:
    """The report title block."""
    sub = ctx.t(
        "report.subtitle",
        org=ctx.params.organisation.name(ctx.lang),
        dept=ctx.department_name,
        period=ctx.period_label,
    )
    return Html(
        f'<div class="qm-header"><h1>{escape(ctx.t("audit.title"))}</h1>'
        f'<p class="qm-sub">{escape(sub)}</p></div>'
    )


def narrative(ctx: PeriodContext) -> list[str]:
    """The sentences of the summary, in the report's language."""
    v = view(ctx)
    year_start = f"{ctx.year}-01"
    audits = _scope(v.audits, ctx)
    done = audits[
        (audits["status"] == "done")
        & (audits["planned_month"] >= year_start)
        & (audits["planned_month"] <= ctx.period)
    ]
    late = audits[(audits["status"] == "planned") & (audits["planned_month"] < ctx.period)]
    findings = _scope(v.findings, ctx)
    year_findings = findings[pd.to_datetime(findings["found_on"]) >= pd.Timestamp(year_start)]
    counts = year_findings["grade"].value_counts()
    actions = _scope(v.actions, ctx)
    lines = [
        ctx.t(
            "audit.narrative.audits",
            done=len(done),
            year=ctx.year,
            planned=len(_scope(v.plan, ctx)),
        ),
        ctx.t(
            "audit.narrative.findings",
            year=ctx.year,
            total=len(year_findings),
            major=int(counts.get("major", 0)),
            minor=int(counts.get("minor", 0)),
            observation=int(counts.get("observation", 0)),
            ofi=int(counts.get("ofi", 0)),
        ),
    ]
    if len(late):
        lines.append(ctx.t("audit.narrative.late_audits", count=len(late)))
    open_actions = actions[actions["rag"] != "closed"]
    red = int((open_actions["rag"] == "red").sum())
    lines.append(
        ctx.t(
            "audit.narrative.actions",
            open=len(open_actions),
            red=red,
            yellow=int((open_actions["rag"] == "yellow").sum()),
        )
    )
    unchecked = int(actions["no_effectiveness_check"].sum())
    if unchecked:
        lines.append(ctx.t("audit.narrative.unchecked", count=unchecked))
    repeats = int(findings["repeat_of"].notna().sum())
    if repeats:
        lines.append(ctx.t("audit.narrative.repeats", count=repeats))
    gaps = _scope(v.coverage, ctx)
    gap_count = int((gaps["status"] == "gap").sum())
    lines.append(
        ctx.t("audit.narrative.gaps", count=gap_count)
        if gap_count
        else ctx.t("audit.narrative.no_gaps")
    )
    raised = _scope(v.frequency, ctx)
    raised = raised[raised["frequency"] > raised["base"]]
    if len(raised):
        lines.append(ctx.t("audit.narrative.raised", count=len(raised)))
    return lines


def summary(ctx: PeriodContext) -> Section:
    """Title, key figures and the narrative."""
    v = view(ctx)
    actions = _scope(v.actions, ctx)
    chips = " ".join(
        badge(rag, f"{ctx.t(f'audit.rag.{rag}')} {int((actions['rag'] == rag).sum())}")
        for rag in ("red", "yellow", "green")
    )
    section = Section(ctx.t("audit.summary"), anchor="summary", level=0)
    section.add(
        header(ctx),
        Html(f'<p class="qm-chips">{ctx.t("audit.actions_chips")} {chips}</p>'),
        bullet_list(narrative(ctx)),
    )
    return section


def programme(ctx: PeriodContext) -> Section:
    """Audits a year per process × department, with the reason for each frequency."""
    v = view(ctx)
    section = Section(ctx.t("audit.programme"), anchor="programme")
    freq = _scope(v.frequency, ctx).sort_values(
        ["frequency", "process_id"], ascending=[False, True], kind="stable"
    )
    rules = ctx.params.audit.frequency
    section.add(
        ctx.t(
            "audit.programme_note",
            A=rules.base["A"],
            B=rules.base["B"],
            C=rules.base["C"],
            D=rules.base["D"],
            months=rules.lookback_months,
        )
    )
    if freq.empty:
        return section.add(ctx.t("audit.no_processes"))

    def sentence(r: pd.Series) -> str:
        names = {
            "process": process_label(ctx, r["process_id"], v.processes),
            "department": _dept(ctx, r["department"]),
            "kpi": ctx.kpi_name(r["alert_kpi"]) if isinstance(r["alert_kpi"], str) else "",
        }
        return escape(frequency_sentence(r, names, ctx.lang, rules))

    def level(r: pd.Series) -> str:
        colour = "red" if r["frequency"] > r["base"] else "green"
        return badge(colour, str(int(r["frequency"])))

    columns = [
        Col(
            ctx.t("col.process"),
            lambda r: escape(process_label(ctx, r["process_id"], v.processes)),
        ),
        *_department_column(ctx),
        Col(ctx.t("audit.col.importance"), key="importance", align="center"),
        Col(ctx.t("audit.col.per_year"), level, align="right"),
        Col(ctx.t("audit.col.why"), sentence),
    ]
    section.add(table(freq, columns, css="qm-auto"))
    missing = unmapped_processes(v.processes, v.pairs)
    if missing and ctx.is_organisation:
        section.add(
            banner(
                "yellow",
                ctx.t("audit.unmapped", count=len(missing)),
                [process_label(ctx, p, v.processes) for p in missing],
            )
        )
    return section


def schedule_section(ctx: PeriodContext) -> Section:
    """The next 12 months: audits per month and department, with their auditors."""
    v = view(ctx)
    section = Section(ctx.t("audit.schedule"), anchor="schedule")
    plan = _scope(v.plan, ctx)
    if plan.empty:
        return section.add(ctx.t("audit.no_plan"))
    months = [str(Period.parse(ctx.period).shift(i)) for i in range(1, 13)]
    depts = [d for d in ctx.params.departments if d in set(plan["department"])]
    grid = np.zeros((len(depts), len(months)), dtype=int)
    for row in plan.itertuples():
        grid[depts.index(row.department), months.index(row.month)] += 1
    section.add(
        ctx.t("audit.schedule_note"),
        charts.count_heatmap(
            [ctx.dept_name(d) for d in depts],
            [period_short(m, ctx.lang) for m in months],
            grid,
            ctx.t("audit.schedule_title", scope=ctx.department_name),
            ctx.t("audit.schedule_hover"),
        ),
    )
    if not ctx.params.audit.auditors:
        section.add(banner("info", ctx.t("audit.no_auditors")))

    def auditor(r: pd.Series) -> str:
        if r["auditor"] and not ctx.is_organisation:
            # a department's report names no other department (its bundle is checked for it)
            return escape(r["auditor"])
        if r["auditor"]:
            return escape(
                f"{r['auditor']}({_dept(ctx, r['auditor_department'])})"
                if ctx.lang == "zh"
                else f"{r['auditor']} ({_dept(ctx, r['auditor_department'])})"
            )
        return badge("red", ctx.t(f"audit.problem.{r['problem']}"))

    columns = [
        Col(ctx.t("audit.col.month"), lambda r: escape(period_short(r["month"], ctx.lang))),
        Col(
            ctx.t("col.process"),
            lambda r: escape(process_label(ctx, r["process_id"], v.processes)),
        ),
        *_department_column(ctx),
        Col(ctx.t("audit.col.auditor"), auditor),
    ]
    section.add(table(plan, columns, css="qm-auto"))
    stuck = plan[plan["problem"].isin(["none_eligible", "all_busy"])]
    if len(stuck):
        section.add(
            banner(
                "red",
                ctx.t("audit.unassigned", count=len(stuck)),
                [
                    " · ".join(
                        (
                            period_short(r.month, ctx.lang),
                            process_label(ctx, r.process_id, v.processes),
                            _dept(ctx, r.department),
                        )
                    )
                    + f": {ctx.t(f'audit.problem.{r.problem}')}"
                    for r in stuck.itertuples()
                ],
            )
        )
    return section


def coverage_section(ctx: PeriodContext) -> Section:
    """ISO 9001 clauses × departments: audited in the last 12 months, planned, or a gap."""
    v = view(ctx)
    section = Section(ctx.t("audit.coverage"), anchor="coverage")
    cover = v.coverage
    if cover.empty:
        return section.add(ctx.t("audit.no_processes"))
    if ctx.is_organisation:
        depts = [d for d in ctx.params.departments if d in set(cover["department"])]
    else:
        depts = [ctx.department] if ctx.department in set(cover["department"]) else []
    if not depts:
        return section.add(ctx.t("audit.no_processes"))
    cover = cover[cover["department"].isin(depts)]
    clauses = sorted(set(cover.loc[cover["relevant"], "clause"]), key=clause_key)
    if not ctx.is_organisation:
        cover = cover[cover["clause"].isin(clauses)]
    else:
        clauses = sorted(set(cover["clause"]), key=clause_key)
    status = np.full((len(clauses), len(depts)), "no_data", dtype=object)
    text = np.full((len(clauses), len(depts)), "", dtype=object)
    for row in cover.itertuples():
        i, j = clauses.index(row.clause), depts.index(row.department)
        status[i, j] = COVERAGE_STATUS[row.status]
        text[i, j] = {
            "covered": str(row.audited),
            "planned": "→" + str(row.planned),
            "gap": "!",
            "not_applicable": "",
        }[row.status]
    labels = {c: ctx.t(f"audit.coverage.{s}") for s, c in COVERAGE_STATUS.items()}
    section.add(
        ctx.t("audit.coverage_note"),
        charts.status_heatmap(
            [clause_title(c, ctx.lang) for c in clauses],
            [ctx.dept_name(d) for d in depts],
            status,
            text,
            ctx.t("audit.coverage_title", scope=ctx.department_name),
            labels,
        ),
    )
    gaps = cover[cover["status"] == "gap"]
    if len(gaps):
        section.add(
            banner(
                "red",
                ctx.t("audit.gaps", count=len(gaps)),
                [
                    f"{clause_title(r.clause, ctx.lang)} · {ctx.dept_name(r.department)}"
                    for r in gaps.itertuples()
                ],
            )
        )
    return section


def planned_audits(ctx: PeriodContext) -> pd.DataFrame:
    """Audits of the programme register still planned in scope (overdue ones first),
    up to the month after the report's."""
    audits = _scope(view(ctx).audits, ctx)
    horizon = str(Period.parse(ctx.period).shift(1))
    planned = audits[(audits["status"] == "planned") & (audits["planned_month"] <= horizon)]
    return planned.sort_values(["planned_month", "audit_id"], kind="stable")


def audit_checklist(ctx: PeriodContext, audit: Mapping[str, Any]) -> pd.DataFrame:
    """The checklist of one audit of the programme (see :func:`checklist`)."""
    v = view(ctx)
    hit = v.processes[v.processes["process_id"].astype(str) == str(audit["process_id"])]
    if hit.empty:
        return pd.DataFrame(columns=CHECKLIST_COLUMNS)
    kpis = process_kpis(ctx.params, str(audit["process_id"]))
    rows = (
        ctx.kpi[
            (ctx.kpi["period"] == ctx.period)
            & (ctx.kpi["department"] == audit["department"])
            & (ctx.kpi["kpi"].isin(kpis))
        ]
        if not ctx.kpi.empty
        else ctx.kpi
    )
    return checklist(hit.iloc[0].to_dict(), rows, ctx.params, ctx.lang)


def checklist_table(ctx: PeriodContext, items: pd.DataFrame) -> Html:
    """A checklist as an HTML table (sections as labels, indicator status as badges)."""

    def item(r: pd.Series) -> str:
        mark = f" {badge(r['status'], ctx.t('status.' + r['status']))}" if r["status"] else ""
        return escape(r["item"]) + mark

    columns = [
        Col(ctx.t("audit.col.section"), lambda r: escape(ctx.t(f"audit.section.{r['section']}"))),
        Col(ctx.t("audit.col.item"), item),
        Col(ctx.t("audit.col.reference"), key="reference"),
        Col(ctx.t("audit.col.prompt"), key="prompt"),
    ]
    return table(items, columns, css="qm-auto")


def export_checklist(ctx: PeriodContext, audit: Mapping[str, Any], path: Path) -> Path:
    """Write one audit's checklist to an XLSX file for field use.

    The sheet has the audit's heading above the checklist and empty columns for
    the result, the evidence seen and notes. Text that could run as a formula is
    neutralised (:func:`qmsnb.io.write_xlsx`).
    """
    from qmsnb import io

    items = audit_checklist(ctx, audit)
    v = view(ctx)
    heading = ctx.t(
        "audit.checklist_title",
        audit=audit["audit_id"],
        process=process_label(ctx, str(audit["process_id"]), v.processes),
        month=period_short(str(audit["planned_month"]), ctx.lang),
        auditor=audit["auditor"],
    )
    sheet = io.Sheet(
        title=str(audit["audit_id"]),
        headers=[
            ctx.t("audit.col.section"),
            ctx.t("audit.col.item"),
            ctx.t("audit.col.reference"),
            ctx.t("audit.col.prompt"),
            ctx.t("audit.col.result"),
            ctx.t("audit.col.evidence_seen"),
            ctx.t("audit.col.notes"),
        ],
        rows=[
            [ctx.t(f"audit.section.{r.section}"), r.item, r.reference, r.prompt, None, None, None]
            for r in items.itertuples()
        ],
        widths=[12, 50, 36, 36, 12, 40, 24],
        title_rows=[
            f"{ctx.t('audit.title')} · {heading}",
            f"{ctx.dept_name(str(audit['department']))} · {ctx.period_label}",
        ],
    )
    return io.write_xlsx(path, [sheet])


def checklists(ctx: PeriodContext) -> Section:
    """Checklists of the planned audits (per department); the list (organisation)."""
    v = view(ctx)
    section = Section(ctx.t("audit.checklists"), anchor="checklists")
    planned = planned_audits(ctx)
    if planned.empty:
        return section.add(ctx.t("audit.no_planned", period=ctx.period_label))
    section.add(ctx.t("audit.checklists_note"))
    if ctx.is_organisation:

        def size(r: pd.Series) -> str:
            return escape(len(audit_checklist(ctx, r)))

        columns = [
            Col(ctx.t("audit.col.audit"), key="audit_id"),
            Col(
                ctx.t("audit.col.month"),
                lambda r: escape(period_short(r["planned_month"], ctx.lang)),
            ),
            Col(
                ctx.t("col.process"),
                lambda r: escape(process_label(ctx, r["process_id"], v.processes)),
            ),
            *_department_column(ctx),
            Col(ctx.t("audit.col.auditor"), key="auditor"),
            Col(ctx.t("audit.col.items"), size, align="right"),
        ]
        return section.add(table(planned, columns))
    for _, audit in planned.iterrows():
        late = audit["planned_month"] < ctx.period
        title = ctx.t(
            "audit.checklist_title",
            audit=audit["audit_id"],
            process=process_label(ctx, audit["process_id"], v.processes),
            month=period_short(audit["planned_month"], ctx.lang),
            auditor=audit["auditor"],
        )
        sub = Section(title, level=3)
        if late:
            sub.add(Html(badge("red", ctx.t("audit.overdue_audit"))))
        sub.add(checklist_table(ctx, audit_checklist(ctx, audit)))
        section.add(sub)
    return section


def findings_section(ctx: PeriodContext) -> Section:
    """Findings by grade, clause, process (and department); repeat findings."""
    v = view(ctx)
    section = Section(ctx.t("audit.findings"), anchor="findings")
    findings = _scope(v.findings, ctx)
    start, _ = lookback_window(ctx.period, 12)
    findings = findings[pd.to_datetime(findings["found_on"]) >= start]
    if findings.empty:
        return section.add(ctx.t("audit.no_findings"))
    grades = {g: _grade_label(ctx, g) for g in GRADES}
    section.add(ctx.t("audit.findings_note"))
    by_clause = grade_counts(
        findings.assign(clause2=findings["clause"].astype(str).map(clause_group)), "clause2"
    )
    by_clause = by_clause.loc[sorted(by_clause.index, key=clause_key)]
    section.add(
        charts.stacked_bars(
            [clause_title(c, ctx.lang) for c in by_clause.index],
            {grades[g]: by_clause[g].tolist() for g in GRADES},
            [GRADE_COLOURS[g] for g in GRADES],
            ctx.t("audit.by_clause"),
            horizontal=True,
        )
    )
    by_process = grade_counts(
        findings, "process_id", order=list(v.processes["process_id"].astype(str))
    )
    section.add(
        charts.stacked_bars(
            [process_label(ctx, p, v.processes) for p in by_process.index],
            {grades[g]: by_process[g].tolist() for g in GRADES},
            [GRADE_COLOURS[g] for g in GRADES],
            ctx.t("audit.by_process"),
            horizontal=True,
        )
    )
    if ctx.is_organisation:
        by_dept = grade_counts(findings, "department", order=list(ctx.params.departments))
        section.add(
            charts.stacked_bars(
                [ctx.dept_name(d) for d in by_dept.index],
                {grades[g]: by_dept[g].tolist() for g in GRADES},
                [GRADE_COLOURS[g] for g in GRADES],
                ctx.t("audit.by_department"),
            )
        )
    repeats = findings[findings["repeat_of"].notna()]
    sub = Section(ctx.t("audit.repeats"), level=3)
    if repeats.empty:
        sub.add(ctx.t("audit.no_repeats"))
    else:
        columns = [
            Col(ctx.t("audit.col.finding"), key="finding_id"),
            Col(ctx.t("audit.col.repeat_of"), key="repeat_of"),
            Col(ctx.t("col.clause"), lambda r: escape(clause_title(str(r["clause"]), ctx.lang))),
            *_department_column(ctx),
            Col(
                ctx.t("audit.col.grade"),
                lambda r: badge(GRADE_STATUS[r["grade"]], _grade_label(ctx, r["grade"])),
            ),
            Col(ctx.t("audit.col.found_on"), lambda r: escape(date_text(r["found_on"]))),
            Col(ctx.t("audit.col.statement"), key="statement"),
        ]
        sub.add(ctx.t("audit.repeats_note"), table(repeats, columns, css="qm-auto"))
    section.add(sub)
    return section


#: Colours of the grades in charts (severity from red to blue).
GRADE_COLOURS = {"major": "#c62828", "minor": "#ef6c00", "observation": "#f9a825", "ofi": "#1a73e8"}
#: Status badge used for each grade in tables.
GRADE_STATUS = {"major": "red", "minor": "red", "observation": "yellow", "ofi": "stale"}


def actions_section(ctx: PeriodContext) -> Section:
    """Corrective actions: ageing red / yellow / green; closed without an effectiveness check."""
    v = view(ctx)
    section = Section(ctx.t("audit.actions"), anchor="actions")
    actions = _scope(v.actions, ctx)
    if actions.empty:
        return section.add(ctx.t("audit.no_actions"))
    days = ctx.params.audit.action_due_soon_days
    section.add(ctx.t("audit.actions_note", days=days, date=as_of(ctx.period).isoformat()))
    depts = [d for d in ctx.params.departments if d in set(actions["department"])]
    if ctx.is_organisation and depts:
        section.add(
            charts.stacked_bars(
                [ctx.dept_name(d) for d in depts],
                {
                    ctx.t(f"audit.rag.{rag}"): [
                        int(((actions["department"] == d) & (actions["rag"] == rag)).sum())
                        for d in depts
                    ]
                    for rag in RAG
                },
                [charts.STATUS_COLOURS[r] if r != "closed" else "#9e9e9e" for r in RAG],
                ctx.t("audit.actions_by_department"),
            )
        )
    open_ = actions[actions["rag"] != "closed"].sort_values(
        ["days_left", "action_id"], kind="stable"
    )

    def rag(r: pd.Series) -> str:
        days_left = r["days_left"]
        text = ctx.t(f"audit.rag.{r['rag']}")
        if r["rag"] == "red":
            text = ctx.t("audit.overdue_days", days=-int(days_left))
        elif r["rag"] == "yellow":
            text = ctx.t("audit.due_in_days", days=int(days_left))
        return badge(r["rag"], text)

    columns = [
        Col(ctx.t("audit.col.action"), key="action_id"),
        Col(ctx.t("audit.col.finding"), key="finding_id"),
        *_department_column(ctx),
        Col(ctx.t("audit.col.description"), key="description"),
        Col(ctx.t("audit.col.owner"), key="owner"),
        Col(ctx.t("audit.col.due"), lambda r: escape(date_text(r["due_date"]))),
        Col(ctx.t("col.status"), lambda r: escape(_action_status(ctx, r["status"]))),
        Col(ctx.t("audit.col.age"), lambda r: escape(r["age_days"]), align="right"),
        Col(ctx.t("audit.col.rag"), rag),
    ]
    if open_.empty:
        section.add(ctx.t("audit.no_open_actions"))
    else:
        section.add(table(open_, columns, css="qm-auto"))
    red = open_[open_["rag"] == "red"]
    if len(red):
        section.add(
            banner(
                "red",
                ctx.t("audit.overdue_banner", count=len(red)),
                [
                    f"{r.action_id}:{r.description}({r.owner})"
                    if ctx.lang == "zh"
                    else f"{r.action_id}: {r.description} ({r.owner})"
                    for r in red.itertuples()
                ],
            )
        )
    unchecked = actions[actions["no_effectiveness_check"]]
    if len(unchecked):
        section.add(
            banner(
                "yellow",
                ctx.t("audit.unchecked_banner", count=len(unchecked)),
                [
                    ctx.t(
                        "audit.unchecked_line",
                        action=r.action_id,
                        closed=date_text(r.closed_on),
                        owner=r.owner,
                    )
                    for r in unchecked.itertuples()
                ],
            )
        )
    return section


def _action_status(ctx: PeriodContext, status: Any) -> str:
    zh, en = ACTION_STATUS.get(str(status), (str(status), str(status)))
    return zh if ctx.lang == "zh" else en


def audit_status_label(lang: str, status: Any) -> str:
    """An audit's status in ``lang``."""
    zh, en = AUDIT_STATUS.get(str(status), (str(status), str(status)))
    return zh if lang == "zh" else en


def grade_label(lang: str, grade: Any) -> str:
    """A finding grade in ``lang``."""
    zh, en = GRADES.get(str(grade), (str(grade), str(grade)))
    return zh if lang == "zh" else en


def register_clause_options(processes: pd.DataFrame, process_id: str | None = None) -> list[str]:
    """Clauses the register names: the process's own first, then all others."""
    own = (
        split_clauses(
            processes.loc[processes["process_id"].astype(str) == process_id, "iso_clauses"].iloc[0]
        )
        if process_id is not None and (processes["process_id"].astype(str) == process_id).any()
        else []
    )
    rest = sorted(
        {c for text in processes["iso_clauses"] for c in split_clauses(text)} - set(own),
        key=clause_key,
    )
    return list(dict.fromkeys([*own, *rest]))


def iter_rows(frame: pd.DataFrame) -> Iterable[dict[str, Any]]:
    """Rows of a frame as dicts (for widgets and exports)."""
    for _, row in frame.iterrows():
        yield row.to_dict()
