"""ipywidgets form of the management review: decisions (9.3.3), follow-up, statements.

``qmsnb.review.decision_form(ctx)`` shows three tabs, each saving to the records
store (:mod:`qmsnb.records`):

* **Decision**: a decision or action of this review (improvement, change to the
  QMS, resource need), with the 9.3.2 input it answers, owner, department and due
  date; it becomes input a) of the following reviews;
* **Follow-up**: update a decision of an earlier review (status, completion date,
  result);
* **Statement**: record, for an input without data this month, the statement that
  makes the review complete (e.g. "no change in external issues this month").

A refused save shows the store's message (which field and why) and saves
nothing. Follow-up updates carry the version they were read at, so a change
saved meanwhile by someone else is never silently overwritten. The form is plain
widgets with public attributes: tests set ``.value`` and call ``.click()``.
"""

from __future__ import annotations

import getpass
import os
from datetime import date
from typing import Any

import ipywidgets as w
import pandas as pd

from qmsnb.analysis import review
from qmsnb.context import PeriodContext
from qmsnb.contract import DECISION_KINDS, DECISION_STATUS
from qmsnb.display import Col, badge, escape, table
from qmsnb.exceptions import QmsnbError
from qmsnb.periods import Period
from qmsnb.records import RecordsStore, open_store

_WIDE = w.Layout(width="95%")
_TEXT = w.Layout(width="95%", height="80px")


def _who() -> str:
    try:
        return os.environ.get("QMSNB_USER") or getpass.getuser()
    except Exception:  # no user database in some containers
        return ""


def _blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class ReviewForm:
    """The review's forms (see the module docstring).

    Args:
        ctx: the organisation's context of the review month.
        store: the records store (the project's store by default).
        who: the name recorded with every save (editable in the form).
        missing: inputs without data or statement (default: as the pack finds them).
    """

    def __init__(
        self,
        ctx: PeriodContext,
        store: RecordsStore | None = None,
        who: str | None = None,
        missing: list[str] | None = None,
    ) -> None:
        if not ctx.is_organisation:
            from qmsnb.exceptions import UsageError

            raise UsageError("error.review.organisation_only", value=ctx.department)
        self.ctx = ctx
        self.store = store or open_store(ctx.params)
        t = ctx.t
        self._versions: dict[str, int] = {}
        self._from_file = False
        self.last_saved: str | None = None
        inputs = [(f"{i.clause} {i.title(ctx)}", i.id) for i in review.inputs()]
        if missing is None:
            missing = [s.input.id for s in review.assemble(ctx).missing]

        self.message = w.HTML()
        self.who = w.Text(
            value=who if who is not None else _who(), description=t("review.form.who")
        )
        # -- decision ------------------------------------------------------------
        self.kind = w.Dropdown(
            description=t("review.col.kind"),
            options=[(t(f"review.kind.{k}"), k) for k in DECISION_KINDS],
        )
        self.input = w.Dropdown(
            description=t("review.col.input"), options=[("–", None), *inputs], layout=_WIDE
        )
        self.decision = w.Textarea(description=t("review.col.decision"), layout=_TEXT)
        self.owner = w.Text(description=t("col.who"))
        self.department = w.Dropdown(
            description=t("col.department"),
            options=[("–", None)]
            + [(d.name(ctx.lang), d.id) for d in ctx.params.organisation.departments],
        )
        next_month = Period.parse(ctx.period).shift(1)
        self.due = w.DatePicker(description=t("col.by_when"), value=next_month.end)
        self.save_decision = w.Button(
            description=t("review.form.save_decision"), icon="save", button_style="primary"
        )
        self.decisions_view = w.HTML()
        # -- follow-up ------------------------------------------------------------
        self.pick = w.Dropdown(description=t("review.col.decision"), layout=_WIDE)
        self.status = w.Dropdown(
            description=t("col.status"),
            options=[(t(f"review.decision_status.{s}"), s) for s in DECISION_STATUS],
        )
        self.closed_on = w.DatePicker(description=t("review.form.closed_on"))
        self.result = w.Textarea(description=t("review.col.result"), layout=_TEXT)
        self.save_followup = w.Button(
            description=t("review.form.save_followup"), icon="check", button_style="primary"
        )
        # -- statement ----------------------------------------------------------------
        self.statement_input = w.Dropdown(
            description=t("review.col.input"),
            options=inputs,
            layout=_WIDE,
            value=missing[0] if missing else inputs[0][1],
        )
        self.statement = w.Textarea(description=t("review.statement"), layout=_TEXT)
        self.save_statement = w.Button(
            description=t("review.form.save_statement"), icon="save", button_style="primary"
        )

        self.save_decision.on_click(self._on_decision)
        self.save_followup.on_click(self._on_followup)
        self.save_statement.on_click(self._on_statement)
        self.pick.observe(self._on_pick, names="value")
        self.refresh()

    # -- helpers -----------------------------------------------------------------------
    def _say(self, ok: bool, text: str) -> None:
        self.message.value = (
            badge(
                "green" if ok else "red",
                self.ctx.t("review.form.saved" if ok else "review.form.refused"),
            )
            + " "
            + escape(text)
        )

    def _save(self, action: Any) -> str | None:
        try:
            saved = action()
        except QmsnbError as exc:
            self._say(False, exc.message(self.ctx.lang))
            return None
        self.last_saved = saved
        self._say(True, saved)
        self.refresh()
        return saved

    def decisions(self) -> pd.DataFrame:
        """The decisions register now: the store's, or its file until the store adopts it."""
        frame = self.store.frame("review_decisions")
        self._from_file = frame.empty
        if frame.empty:
            frame = self.ctx.register("review_decisions")
        return frame

    # -- actions -----------------------------------------------------------------------
    def _on_decision(self, _: Any = None) -> None:
        record = {
            "review_period": self.ctx.period,
            "kind": self.kind.value,
            "input": self.input.value,
            "decision": _blank(self.decision.value),
            "owner": _blank(self.owner.value),
            "department": self.department.value,
            "due": self.due.value.isoformat() if self.due.value else None,
            "status": "open",
        }
        if self._save(lambda: self.store.insert("review_decisions", record, self.who.value)):
            self.decision.value = ""

    def _on_followup(self, _: Any = None) -> None:
        decision_id = self.pick.value
        if not decision_id:
            self._say(False, self.ctx.t("review.form.nothing_picked"))
            return
        changes = {
            "status": self.status.value,
            "closed_on": self.closed_on.value.isoformat() if self.closed_on.value else None,
            "result": _blank(self.result.value),
        }

        def update() -> str:
            self.store.update(
                "review_decisions",
                decision_id,
                changes,
                self.who.value,
                expected_version=self._versions.get(decision_id),
            )
            return decision_id

        self._save(update)

    def _on_statement(self, _: Any = None) -> None:
        record = {
            "period": self.ctx.period,
            "input": self.statement_input.value,
            "statement": _blank(self.statement.value),
            "recorded_by": _blank(self.who.value),
            "recorded_on": date.today().isoformat(),
        }
        if self._save(lambda: self.store.insert("review_statements", record, self.who.value)):
            self.statement.value = ""

    def _on_pick(self, change: Any = None) -> None:
        rows = self.decisions()
        if rows.empty or not self.pick.value:
            return
        row = rows[rows["decision_id"] == self.pick.value]
        if row.empty:
            return
        r = row.iloc[0]
        self.status.value = r["status"]
        self.closed_on.value = (
            pd.Timestamp(r["closed_on"]).date() if pd.notna(r["closed_on"]) else None
        )
        self.result.value = "" if pd.isna(r["result"]) else str(r["result"])

    def refresh(self) -> None:
        """Reload the lists from the store."""
        ctx = self.ctx
        rows = self.decisions()
        earlier = rows[rows["review_period"].astype(str) < ctx.period] if not rows.empty else rows
        self._versions = {}
        for decision_id in earlier["decision_id"] if not earlier.empty else ():
            # a record the store adopts from the file starts at version 1
            self._versions[str(decision_id)] = (
                1
                if self._from_file
                else self.store.get("review_decisions", str(decision_id)).version
            )
        keep = self.pick.value
        options = (
            [(f"{r.decision_id} {r.decision}"[:80], r.decision_id) for r in earlier.itertuples()]
            if not earlier.empty
            else []
        )
        self.pick.options = options
        values = [o[1] for o in options]
        self.pick.value = keep if keep in values else (values[0] if values else None)
        now = rows[rows["review_period"].astype(str) == ctx.period] if not rows.empty else rows
        if now.empty:
            self.decisions_view.value = escape(ctx.t("review.no_decisions"))
            return
        self.decisions_view.value = table(
            now,
            [
                Col(
                    ctx.t("review.col.decision"),
                    lambda r: (
                        f"<strong>{escape(r['decision_id'])}</strong> {escape(r['decision'])}"
                    ),
                ),
                Col(ctx.t("review.col.kind"), lambda r: escape(ctx.t(f"review.kind.{r['kind']}"))),
                Col(ctx.t("col.who"), lambda r: escape(r["owner"])),
                Col(ctx.t("col.by_when"), lambda r: escape(review._date(r["due"]))),
            ],
        ).markup

    # -- display -----------------------------------------------------------------------
    @property
    def widget(self) -> w.Widget:
        t = self.ctx.t
        tabs = w.Tab(
            children=[
                w.VBox(
                    [
                        self.kind,
                        self.input,
                        self.decision,
                        self.owner,
                        self.department,
                        self.due,
                        self.save_decision,
                        self.decisions_view,
                    ]
                ),
                w.VBox([self.pick, self.status, self.closed_on, self.result, self.save_followup]),
                w.VBox([self.statement_input, self.statement, self.save_statement]),
            ]
        )
        for index, key in enumerate(
            ("review.form.tab_decision", "review.form.tab_followup", "review.form.tab_statement")
        ):
            tabs.set_title(index, t(key))
        return w.VBox([self.who, self.message, tabs])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
