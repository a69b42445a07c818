"""Rules the records store checks on management-review records (ISO 9001 9.3).

* a decision (9.3.3) or a statement names a 9.3.2 input the review knows (the
  registry of :mod:`qmsnb.analysis.review`), when it names one;
* a decision is not due before the month of the review that took it; a decision
  marked done has its completion date, not before that month.

Each rule raises :class:`~qmsnb.exceptions.RecordsError` naming the field.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from qmsnb.periods import Period
from qmsnb.records import RuleContext, field_error, register_rule


def _known_inputs() -> list[str]:
    from qmsnb.analysis.review import INPUTS

    return list(INPUTS)


def _input_known(register: str, doc: dict[str, Any]) -> None:
    value = doc.get("input")
    if value is None or str(value).strip() == "":
        return
    known = _known_inputs()
    if str(value) not in known:
        raise field_error(
            "error.records.review_input", register, "input", value=value, known=", ".join(known)
        )


@register_rule("review_decisions")
def decision_input_known(doc: dict[str, Any], ctx: RuleContext) -> None:
    """The related input, if given, is one of the review's inputs."""
    _input_known("review_decisions", doc)


@register_rule("review_statements")
def statement_input_known(doc: dict[str, Any], ctx: RuleContext) -> None:
    """A statement stands in for one of the review's inputs."""
    _input_known("review_statements", doc)


@register_rule("review_decisions")
def decision_dates(doc: dict[str, Any], ctx: RuleContext) -> None:
    """Due and done dates not before the review month; done needs its date."""
    start = pd.Timestamp(Period.parse(str(doc["review_period"])).start)
    month = {"zh": "评审月份", "en": "review month"}
    for name in ("due", "closed_on"):
        value = doc.get(name)
        if value is not None and pd.Timestamp(value) < start:
            raise field_error(
                "error.records.date_before",
                "review_decisions",
                name,
                value=value,
                other=month,
                other_value=str(doc["review_period"]),
            )
    if doc.get("status") == "done" and doc.get("closed_on") is None:
        raise field_error("error.records.review_done_without_date", "review_decisions", "closed_on")
