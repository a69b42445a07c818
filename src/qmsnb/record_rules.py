"""Rules the records store checks on every save, beyond the data contract.

The contract (:mod:`qmsnb.contract`) says what a field may hold; these rules say
what a record must make sense as (ISO 9001 9.2 / 10.2):

* a finding graded as a nonconformity carries objective evidence; its clause is
  one the process register names;
* an audit is never assigned to an auditor from the audited department, and,
  when ``params/audit.yaml`` lists the auditors, only to a listed auditor who is
  competent for the process (and whose department is the one listed);
* a corrective action that comes from an audit names its finding; it is not due
  before it was raised nor before the finding was made; a closed action has a
  closing date, not before it was raised;
* a root-cause record's complaint subcategory belongs to its category; a
  five-whys chain's action completion date needs an action and lies between
  the analysis date and today.

Each rule raises :class:`~qmsnb.exceptions.RecordsError` naming the field. Rules
register themselves with :func:`qmsnb.records.register_rule`; other registers
add theirs in their own module listed in :data:`qmsnb.records.RULE_MODULES`.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from qmsnb.records import RuleContext, field_error, register_rule

#: Grades that are nonconformities (evidence required, corrective action due).
NONCONFORMITIES = ("major", "minor")

_CLAUSE_SPLIT = re.compile(r"[;；,，、\s]+")


def split_clauses(text: Any) -> list[str]:
    """``"4.1;4.2；5.1"`` → ``["4.1", "4.2", "5.1"]`` (empty for no text)."""
    if text is None or (isinstance(text, float) and pd.isna(text)) or text is pd.NA:
        return []
    return [c for c in (part.strip().rstrip(".") for part in _CLAUSE_SPLIT.split(str(text))) if c]


def register_clauses(processes: pd.DataFrame) -> dict[str, list[str]]:
    """Process id → the ISO 9001 clauses the process register names for it."""
    if processes.empty or "iso_clauses" not in processes:
        return {}
    return {
        str(pid): split_clauses(text)
        for pid, text in zip(processes["process_id"], processes["iso_clauses"], strict=True)
    }


def _dept_facts(ctx: RuleContext, dept: str) -> dict[str, dict[str, str]]:
    try:
        department = ctx.params.department(dept)
    except Exception:  # an unknown id was already refused by the contract
        return {"dept": {"zh": dept, "en": dept}}
    return {"dept": {"zh": department.name.zh, "en": department.name.en}}


# ---------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------
@register_rule("findings")
def evidence_for_nonconformities(doc: dict[str, Any], ctx: RuleContext) -> None:
    """A major or minor nonconformity without objective evidence is refused."""
    if doc.get("grade") in NONCONFORMITIES and not (doc.get("evidence") or "").strip():
        raise field_error(
            "error.records.evidence_required", "findings", "evidence", grade=doc["grade"]
        )


@register_rule("findings")
def clause_in_register(doc: dict[str, Any], ctx: RuleContext) -> None:
    """The clause must be one the process register names (any process)."""
    if not ctx.has_register("process_register"):
        return
    by_process = register_clauses(ctx.table("process_register"))
    known = {c for clauses in by_process.values() for c in clauses}
    clause = str(doc.get("clause") or "").strip()
    if known and clause not in known:
        suggestions = by_process.get(str(doc.get("process_id")), []) or sorted(known)[:12]
        raise field_error(
            "error.records.clause_unknown",
            "findings",
            "clause",
            value=clause,
            known="、".join(suggestions),
        )


# ---------------------------------------------------------------------------
# Audit programme
# ---------------------------------------------------------------------------
@register_rule("audit_programme")
def impartial_auditor(doc: dict[str, Any], ctx: RuleContext) -> None:
    """Nobody audits their own department (ISO 9001 9.2.2 c, ISO 19011)."""
    if doc.get("auditor_department") and doc.get("auditor_department") == doc.get("department"):
        raise field_error(
            "error.records.own_department",
            "audit_programme",
            "auditor",
            value=doc.get("auditor"),
            **_dept_facts(ctx, doc["department"]),
        )


@register_rule("audit_programme")
def competent_auditor(doc: dict[str, Any], ctx: RuleContext) -> None:
    """With auditors listed in ``params/audit.yaml``: a listed, competent auditor."""
    audit = getattr(ctx.params, "audit", None)
    if audit is None or not audit.auditors:
        return
    name = str(doc.get("auditor") or "").strip()
    auditor = audit.auditor(name)
    if auditor is None:
        raise field_error(
            "error.records.unknown_auditor",
            "audit_programme",
            "auditor",
            value=name,
            known="、".join(a.name for a in audit.auditors),
        )
    if doc.get("auditor_department") != auditor.department:
        raise field_error(
            "error.records.auditor_department",
            "audit_programme",
            "auditor_department",
            value=name,
            **_dept_facts(ctx, auditor.department),
        )
    process = str(doc.get("process_id") or "")
    category = ""
    if ctx.has_register("process_register"):
        processes = ctx.table("process_register")
        hit = processes[processes["process_id"].astype("string") == process]
        if len(hit):
            category = str(hit.iloc[0]["category"])
    if not auditor.competent_for(process, category):
        raise field_error(
            "error.records.not_competent",
            "audit_programme",
            "auditor",
            value=name,
            process=process,
            competences="、".join(auditor.competences) or "–",
        )


# ---------------------------------------------------------------------------
# Corrective actions
# ---------------------------------------------------------------------------
def _date(value: Any) -> pd.Timestamp | None:
    return None if value in (None, "") else pd.Timestamp(value)


@register_rule("actions")
def action_dates(doc: dict[str, Any], ctx: RuleContext) -> None:
    """Due and closing dates not before the action was raised nor the finding made."""
    raised, due, closed = (
        _date(doc.get("raised_on")),
        _date(doc.get("due_date")),
        _date(doc.get("closed_on")),
    )
    if doc.get("source") == "audit" and not doc.get("finding_id"):
        raise field_error("error.records.finding_required", "actions", "finding_id")
    if doc.get("finding_id"):
        finding = ctx.lookup("findings", str(doc["finding_id"]))
        found = _date(finding.get("found_on")) if finding else None
        if found is not None and due is not None and due < found:
            raise field_error(
                "error.records.date_before",
                "actions",
                "due_date",
                value=doc["due_date"],
                other={"zh": "发现日期", "en": "finding date"},
                other_value=found.date().isoformat(),
            )
    if raised is not None and due is not None and due < raised:
        raise field_error(
            "error.records.date_before",
            "actions",
            "due_date",
            value=doc["due_date"],
            other={"zh": "提出日期", "en": "date raised"},
            other_value=raised.date().isoformat(),
        )
    if doc.get("status") == "closed" and closed is None:
        raise field_error("error.records.closed_without_date", "actions", "closed_on")
    if closed is not None and raised is not None and closed < raised:
        raise field_error(
            "error.records.date_before",
            "actions",
            "closed_on",
            value=doc["closed_on"],
            other={"zh": "提出日期", "en": "date raised"},
            other_value=raised.date().isoformat(),
        )


# ---------------------------------------------------------------------------
# Root-cause records (fishbone causes, five-whys chains)
# ---------------------------------------------------------------------------
def _subcategory_of_category(doc: dict[str, Any], ctx: RuleContext) -> None:
    """The complaint subcategory is one of the complaint category's own."""
    sub, cat = doc.get("complaint_subcategory"), doc.get("complaint_category")
    if not sub or not cat:
        return
    for category in ctx.params.organisation.complaint_categories:
        if category.id == cat and sub not in category.subcategories:
            raise field_error(
                "error.records.subcategory_mismatch",
                ctx.register,
                "complaint_subcategory",
                value=sub,
                category={"zh": category.name.zh, "en": category.name.en},
                known="、".join(n.zh for n in category.subcategories.values()) or "–",
            )


register_rule("fishbone_causes")(_subcategory_of_category)
register_rule("five_whys")(_subcategory_of_category)


@register_rule("five_whys")
def completed_action(doc: dict[str, Any], ctx: RuleContext) -> None:
    """A completion date needs an action, and is neither in the future nor before
    the analysis was recorded (the "did the fix hold" check counts from it)."""
    done = _date(doc.get("action_done_on"))
    if done is None:
        return
    if not (doc.get("action") or "").strip():
        raise field_error("error.records.action_required", "five_whys", "action")
    if done.date() > pd.Timestamp.now().date():
        raise field_error(
            "error.records.done_in_future",
            "five_whys",
            "action_done_on",
            value=doc["action_done_on"],
        )
    recorded = _date(doc.get("recorded_on"))
    if recorded is not None and done < recorded:
        raise field_error(
            "error.records.date_before",
            "five_whys",
            "action_done_on",
            value=doc["action_done_on"],
            other={"zh": "分析日期", "en": "analysis date"},
            other_value=recorded.date().isoformat(),
        )
