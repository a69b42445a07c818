"""ipywidgets forms in JupyterLab that write to the records store.

``qmsnb.widgets.audit_workbench(ctx)``, the auditors' workbench, shows, for one
department (or all):

* **Audit**: choose an audit of the programme; mark it done; plan a new audit
  (the store refuses an auditor from the audited department or one not competent
  for the process);
* **Checklist**: walk the audit's checklist item by item, export it to Excel for
  field use, start a finding from the current item;
* **Finding**: grade, clause (the register's clauses, the process's own first),
  statement, evidence (required for nonconformities), date;
* **Corrective actions**: raise one for a finding (owner, due date not before the
  finding), update status, closing date and effectiveness check.

Every save goes to the records store (:mod:`qmsnb.records`); the refused ones show
the store's message (which field and why) and save nothing; after a save the
lists refresh. Updates carry the version the form was filled from, so a change
someone else saved meanwhile is never silently overwritten.

``qmsnb.widgets.root_cause_workbench(ctx)`` (the last cell of
``notebooks/root_cause.ipynb`` in JupyterLab) puts, under a picker of the month's
complaint hotspots that fills in problem, department, category and evidence:

* :class:`FishboneCauseForm`: add causes (人机料法环测) to a problem's fishbone;
* :class:`FiveWhysForm`: build a five-whys chain, with gaps and causes that stop
  at a person flagged while typing; save it, or continue a saved one (an update
  of the version loaded).

``qmsnb.widgets.risk_scorer(ctx)`` (``notebooks/risk_scoring.ipynb``) scores or
re-scores a risk or opportunity of the department (or of the whole organisation)
with the *active* scoring method of ``params/risk.yaml``: one slider per factor
(its readout says what the level means), the score and its band shown live as the
sliders move (and, for FMEA, the action priority), the inherent score beside a
residual one, and a reason field that a residual score above the inherent one
needs; the record's last changes are listed under the form.

The forms are plain widgets with public attributes: tests set ``.value`` and call
``.click()`` without a browser or kernel.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd

from qmsnb import scoring
from qmsnb.analysis import audit as audit_analysis
from qmsnb.analysis import risk as risk_analysis
from qmsnb.config import ORGANISATION
from qmsnb.context import PeriodContext
from qmsnb.contract import ACTION_STATUS, BONES, GRADES, HOTSPOT_KINDS, MAX_WHYS, RISKS
from qmsnb.display import Col, badge, escape, table
from qmsnb.exceptions import QmsnbError, RecordsError
from qmsnb.i18n import catalogue, period_short, pick, t
from qmsnb.periods import Period
from qmsnb.records import RecordsStore, open_store

_WIDE = w.Layout(width="95%")
_TEXT = w.Layout(width="95%", height="70px")


def _default_who() -> str:
    try:
        return os.environ.get("QMSNB_USER") or getpass.getuser()
    except Exception:  # no user database in some containers
        return ""


def _set_options(dropdown: w.Dropdown, options: list[Any], keep: Any = None) -> None:
    """New options; keep the chosen value if still offered, else the first one."""
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    dropdown.options = options
    dropdown.value = keep if keep in values else (values[0] if values else None)


def _none(value: Any) -> Any:
    """Empty text → None (so the store sees a missing value, not a blank)."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


class AuditWorkbench:
    """The auditors' forms (see the module docstring).

    Args:
        ctx: the period context (department scope, language, KPI values).
        store: the records store (the project's store by default).
        who: the auditor's name recorded with every save (editable in the form).
    """

    def __init__(
        self, ctx: PeriodContext, store: RecordsStore | None = None, who: str | None = None
    ) -> None:
        self.ctx = ctx
        self.store = store or open_store(ctx.params)
        self.lang = ctx.lang
        t = ctx.t
        self._item = 0
        self._items = pd.DataFrame(columns=audit_analysis.CHECKLIST_COLUMNS)
        self._action_version: int | None = None
        self._select: str | None = None
        self.last_saved: str | None = None

        self.message = w.HTML()
        self.who = w.Text(
            value=who if who is not None else _default_who(), description=t("widget.who")
        )
        # -- audit -------------------------------------------------------------
        self.audit = w.Dropdown(description=t("widget.audit"), layout=_WIDE)
        self.audit_info = w.HTML()
        self.audit_date = w.DatePicker(description=t("widget.audit_date"), value=date.today())
        self.mark_done = w.Button(description=t("widget.mark_done"), icon="check")
        self.plan_process = w.Dropdown(description=t("col.process"))
        self.plan_department = w.Dropdown(description=t("col.department"))
        self.plan_month = w.Text(
            description=t("widget.month"), value=str(Period.parse(ctx.period).shift(1))
        )
        self.plan_auditor = w.Dropdown(description=t("audit.col.auditor"))
        self.plan_button = w.Button(description=t("widget.plan"), icon="calendar")
        # -- checklist -----------------------------------------------------------
        self.item_view = w.HTML()
        self.previous_item = w.Button(description=t("widget.previous"), icon="arrow-left")
        self.next_item = w.Button(description=t("widget.next"), icon="arrow-right")
        self.use_item = w.Button(description=t("widget.use_item"), icon="pencil")
        self.export_path = w.Text(description=t("widget.export_to"), layout=_WIDE)
        self.export_button = w.Button(description=t("widget.export"), icon="download")
        self.checklist_view = w.HTML()
        # -- finding -------------------------------------------------------------
        self.grade = w.Dropdown(
            description=t("audit.col.grade"),
            options=[(audit_analysis.grade_label(self.lang, g), g) for g in GRADES],
        )
        self.clause = w.Dropdown(description=t("col.clause"))
        self.statement = w.Textarea(description=t("audit.col.statement"), layout=_TEXT)
        self.evidence = w.Textarea(description=t("widget.evidence"), layout=_TEXT)
        self.found_on = w.DatePicker(description=t("audit.col.found_on"), value=date.today())
        self.save_finding = w.Button(
            description=t("widget.save_finding"), icon="save", button_style="primary"
        )
        self.findings_view = w.HTML()
        # -- actions -------------------------------------------------------------
        self.action_finding = w.Dropdown(description=t("audit.col.finding"))
        self.action_description = w.Textarea(description=t("audit.col.description"), layout=_TEXT)
        self.action_owner = w.Text(description=t("audit.col.owner"))
        self.action_raised = w.DatePicker(description=t("widget.raised_on"), value=date.today())
        self.action_due = w.DatePicker(description=t("audit.col.due"))
        self.raise_action = w.Button(
            description=t("widget.raise_action"), icon="plus", button_style="primary"
        )
        self.action_pick = w.Dropdown(description=t("audit.col.action"))
        self.action_status = w.Dropdown(
            description=t("col.status"),
            options=[(zh if self.lang == "zh" else en, s) for s, (zh, en) in ACTION_STATUS.items()],
        )
        self.action_closed_on = w.DatePicker(description=t("widget.closed_on"))
        self.action_effectiveness = w.Textarea(description=t("widget.effectiveness"), layout=_TEXT)
        self.update_action = w.Button(description=t("widget.update_action"), icon="save")
        self.actions_view = w.HTML()

        self.audit.observe(lambda _: self._audit_changed(), names="value")
        self.plan_process.observe(lambda _: self._plan_departments(), names="value")
        self.plan_department.observe(lambda _: self._plan_auditors(), names="value")
        self.action_pick.observe(lambda _: self._action_changed(), names="value")
        self.mark_done.on_click(lambda _: self._save(self._mark_done))
        self.plan_button.on_click(lambda _: self._save(self._plan))
        self.previous_item.on_click(lambda _: self._walk(-1))
        self.next_item.on_click(lambda _: self._walk(1))
        self.use_item.on_click(lambda _: self._use_item())
        self.export_button.on_click(lambda _: self._save(self._export))
        self.save_finding.on_click(lambda _: self._save(self._finding))
        self.raise_action.on_click(lambda _: self._save(self._raise_action))
        self.update_action.on_click(lambda _: self._save(self._update_action))

        self.widget = self._layout()
        self.refresh()

    # -- data -------------------------------------------------------------------
    def _frame(self, register: str) -> pd.DataFrame:
        """A register from the store when it keeps it, else the prepared snapshot."""
        if register in self.store.registers():
            return self.store.frame(register)
        return audit_analysis.register_frame(self.ctx, register)

    def _scope(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.ctx.department == ORGANISATION or frame.empty:
            return frame
        return frame[frame["department"] == self.ctx.department]

    @property
    def current_audit(self) -> dict[str, Any] | None:
        """The chosen audit's record (None when there is none)."""
        audits = self._frame("audit_programme")
        hit = audits[audits["audit_id"] == self.audit.value]
        return hit.iloc[0].to_dict() if len(hit) else None

    # -- refresh ------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the lists from the store (after every save)."""
        t = self.ctx.t
        audits = self._scope(self._frame("audit_programme"))
        audits = audits.sort_values(
            ["planned_month", "audit_id"], ascending=[False, True], kind="stable"
        )
        processes = self._frame("process_register")
        self._processes = processes
        options = [
            (
                f"{r.audit_id} · {r.process_id} · {self.ctx.dept_name(r.department)} · "
                f"{period_short(r.planned_month, self.lang)} · "
                f"{audit_analysis.audit_status_label(self.lang, r.status)}",
                r.audit_id,
            )
            for r in audits.itertuples()
        ]
        chosen = self._select or self.audit.value
        self._select: str | None = None
        _set_options(self.audit, options, chosen)
        _set_options(
            self.plan_process,
            [(f"{r.process_id} {r.process_name}", r.process_id) for r in processes.itertuples()],
            self.plan_process.value,
        )
        self._audit_changed()
        if not options:
            self._say("info", t("widget.no_audits"))

    def _plan_departments(self) -> None:
        pairs = audit_analysis.process_departments(
            self._processes, self.ctx.params.department_aliases
        )
        depts = pairs.loc[pairs["process_id"] == self.plan_process.value, "department"].tolist()
        if self.ctx.department != ORGANISATION:
            depts = [d for d in depts if d == self.ctx.department] or [self.ctx.department]
        _set_options(
            self.plan_department,
            [(self.ctx.dept_name(d), d) for d in depts],
            self.plan_department.value,
        )
        self._plan_auditors()

    def _plan_auditors(self) -> None:
        auditors = self.ctx.params.audit.auditors
        _set_options(
            self.plan_auditor,
            [(f"{a.name}({self.ctx.dept_name(a.department)})", a.name) for a in auditors],
            self.plan_auditor.value,
        )

    def _audit_changed(self) -> None:
        t = self.ctx.t
        record = self.current_audit
        if record is None:
            self.audit_info.value = ""
            self._items = pd.DataFrame(columns=audit_analysis.CHECKLIST_COLUMNS)
            self._show_item()
            self.findings_view.value = ""
            self.actions_view.value = ""
            _set_options(self.action_finding, [])
            _set_options(self.action_pick, [])
            return
        label = audit_analysis.process_label(self.ctx, record["process_id"], self._processes)
        self.audit_info.value = (
            f"<b>{escape(record['audit_id'])}</b> · "
            f"{escape(label)}"
            f" · {escape(self.ctx.dept_name(record['department']))} · "
            f"{escape(t('audit.col.auditor'))} {escape(record['auditor'])} · "
            f"{escape(audit_analysis.audit_status_label(self.lang, record['status']))}"
        )
        _set_options(
            self.clause,
            audit_analysis.register_clause_options(self._processes, str(record["process_id"])),
            self.clause.value,
        )
        self._items = audit_analysis.audit_checklist(self.ctx, record)
        self._item = 0
        self._show_item()
        self.checklist_view.value = str(audit_analysis.checklist_table(self.ctx, self._items))
        self.export_path.value = str(
            self.ctx.params.output_dir / "checklists" / f"{record['audit_id']}.xlsx"
        )
        findings = self._frame("findings")
        findings = findings[findings["audit_id"] == record["audit_id"]]
        self.findings_view.value = str(self._findings_table(findings))
        # the newest finding is preselected: actions are raised right after a finding
        _set_options(
            self.action_finding,
            [
                (
                    f"{r.finding_id} · {audit_analysis.grade_label(self.lang, r.grade)}"
                    f" · {r.clause}",
                    r.finding_id,
                )
                for r in findings.itertuples()
            ],
            self.last_saved
            if self.last_saved in set(findings["finding_id"])
            else (findings["finding_id"].iloc[-1] if len(findings) else None),
        )
        actions = self._frame("actions")
        actions = actions[actions["finding_id"].isin(list(findings["finding_id"]))]
        aged = audit_analysis.action_ageing(
            actions, date.today(), self.ctx.params.audit.action_due_soon_days
        )
        self.actions_view.value = str(self._actions_table(aged))
        _set_options(
            self.action_pick,
            [(f"{r.action_id} · {r.description}", r.action_id) for r in actions.itertuples()],
            self.last_saved
            if self.last_saved in set(actions["action_id"])
            else self.action_pick.value,
        )
        self._action_changed()

    def _action_changed(self) -> None:
        if not self.action_pick.value:
            self._action_version = None
            return
        record = self.store.get("actions", self.action_pick.value)
        self._action_version = record.version
        self.action_status.value = record["status"]
        self.action_closed_on.value = (
            date.fromisoformat(record["closed_on"]) if record.get("closed_on") else None
        )
        self.action_effectiveness.value = record.get("effectiveness") or ""

    # -- checklist walk -------------------------------------------------------------
    def _walk(self, step: int) -> None:
        if len(self._items):
            self._item = max(0, min(len(self._items) - 1, self._item + step))
        self._show_item()

    def _show_item(self) -> None:
        t = self.ctx.t
        if not len(self._items):
            self.item_view.value = escape(t("widget.no_checklist"))
            return
        row = self._items.iloc[self._item]
        mark = f" {badge(row['status'], t('status.' + row['status']))}" if row["status"] else ""
        self.item_view.value = (
            f"<p><b>{self._item + 1} / {len(self._items)} · "
            f"{escape(t('audit.section.' + row['section']))}</b></p>"
            f"<p>{escape(row['item'])}{mark}</p>"
            f"<p><i>{escape(row['reference'])}</i></p><p>{escape(row['prompt'])}</p>"
        )

    @property
    def current_item(self) -> dict[str, Any] | None:
        """The checklist item being looked at."""
        return self._items.iloc[self._item].to_dict() if len(self._items) else None

    def _use_item(self) -> None:
        item = self.current_item
        if item is None:
            return
        if item["section"] == "clauses" and item["item"] in self.clause.options:
            self.clause.value = item["item"]
        label = self.ctx.t("audit.section." + item["section"])
        self.statement.value = (
            f"{label}:{item['item']}" if self.lang == "zh" else (f"{label}: {item['item']}")
        )

    # -- saving -------------------------------------------------------------------
    def _say(self, kind: str, text: str) -> None:
        colour = {"ok": "#2e7d32", "error": "#c62828", "info": "#1a73e8"}[kind]
        self.message.value = (
            f'<div style="border-left:5px solid {colour};padding:4px 10px">{escape(text)}</div>'
        )

    def _save(self, action: Any) -> None:
        try:
            text = action()
        except RecordsError as exc:
            self._say("error", exc.message(self.lang))
            return
        except QmsnbError as exc:
            self._say("error", exc.message(self.lang))
            return
        self.refresh()
        self._say("ok", text)

    def _mark_done(self) -> str:
        record = self.current_audit
        if record is None:
            raise RecordsError("error.records.no_audit")
        self.store.update(
            "audit_programme",
            record["audit_id"],
            {"status": "done", "audit_date": self.audit_date.value},
            self.who.value,
            reason=self.ctx.t("widget.reason_done"),
        )
        return self.ctx.t("widget.saved_audit", audit=record["audit_id"])

    def _plan(self) -> str:
        name = self.plan_auditor.value
        listed = self.ctx.params.audit.auditor(name) if name else None
        new_id = self.store.insert(
            "audit_programme",
            {
                "process_id": self.plan_process.value,
                "department": self.plan_department.value,
                "planned_month": self.plan_month.value,
                "auditor": name,
                "auditor_department": listed.department if listed else None,
                "status": "planned",
            },
            self.who.value,
        )
        self._select = new_id
        return self.ctx.t("widget.saved_plan", audit=new_id)

    def _export(self) -> str:
        record = self.current_audit
        if record is None:
            return ""
        path = audit_analysis.export_checklist(self.ctx, record, Path(self.export_path.value))
        return self.ctx.t("widget.exported", file=str(path))

    def _finding(self) -> str:
        record = self.current_audit
        if record is None:
            raise RecordsError("error.records.no_audit")
        new_id = self.store.insert(
            "findings",
            {
                "audit_id": record["audit_id"],
                "grade": self.grade.value,
                "clause": self.clause.value,
                "process_id": record["process_id"],
                "department": record["department"],
                "statement": _none(self.statement.value),
                "evidence": _none(self.evidence.value),
                "auditor": record["auditor"],
                "found_on": self.found_on.value,
            },
            self.who.value,
        )
        self.statement.value = ""
        self.evidence.value = ""
        self.last_saved = new_id
        return self.ctx.t("widget.saved_finding", finding=new_id)

    def _raise_action(self) -> str:
        record = self.current_audit
        if record is None:
            raise RecordsError("error.records.no_audit")
        finding = self.action_finding.value
        new_id = self.store.insert(
            "actions",
            {
                "source": "audit",
                "finding_id": finding,
                "department": record["department"],
                "description": _none(self.action_description.value),
                "owner": _none(self.action_owner.value),
                "raised_on": self.action_raised.value,
                "due_date": self.action_due.value,
                "status": "open",
            },
            self.who.value,
        )
        self.action_description.value = ""
        self.last_saved = new_id
        return self.ctx.t("widget.saved_action", action=new_id)

    def _update_action(self) -> str:
        action_id = self.action_pick.value
        if not action_id:
            return ""
        self.store.update(
            "actions",
            action_id,
            {
                "status": self.action_status.value,
                "closed_on": self.action_closed_on.value,
                "effectiveness": _none(self.action_effectiveness.value),
            },
            self.who.value,
            expected_version=self._action_version,
        )
        return self.ctx.t("widget.saved_action", action=action_id)

    # -- views --------------------------------------------------------------------
    def _findings_table(self, findings: pd.DataFrame) -> Any:
        t = self.ctx.t
        if findings.empty:
            return escape(t("widget.no_findings"))
        columns = [
            Col(t("audit.col.finding"), key="finding_id"),
            Col(
                t("audit.col.grade"),
                lambda r: badge(
                    audit_analysis.GRADE_STATUS[r["grade"]],
                    audit_analysis.grade_label(self.lang, r["grade"]),
                ),
            ),
            Col(t("col.clause"), key="clause"),
            Col(t("audit.col.statement"), key="statement"),
            Col(t("widget.evidence"), key="evidence"),
            Col(t("audit.col.found_on"), lambda r: escape(audit_analysis.date_text(r["found_on"]))),
        ]
        return table(findings, columns)

    def _actions_table(self, actions: pd.DataFrame) -> Any:
        t = self.ctx.t
        if actions.empty:
            return escape(t("widget.no_actions"))
        columns = [
            Col(t("audit.col.action"), key="action_id"),
            Col(t("audit.col.finding"), key="finding_id"),
            Col(t("audit.col.description"), key="description"),
            Col(t("audit.col.owner"), key="owner"),
            Col(t("audit.col.due"), lambda r: escape(audit_analysis.date_text(r["due_date"]))),
            Col(t("audit.col.rag"), lambda r: badge(r["rag"], t(f"audit.rag.{r['rag']}"))),
        ]
        return table(actions, columns)

    def _layout(self) -> w.Widget:
        t = self.ctx.t
        audit_box = w.VBox(
            [
                self.audit,
                self.audit_info,
                w.HBox([self.audit_date, self.mark_done]),
                w.HTML(f"<h4>{escape(t('widget.plan_title'))}</h4>"),
                w.HBox([self.plan_process, self.plan_department]),
                w.HBox([self.plan_month, self.plan_auditor, self.plan_button]),
            ]
        )
        checklist_box = w.VBox(
            [
                self.item_view,
                w.HBox([self.previous_item, self.next_item, self.use_item]),
                w.HBox([self.export_path, self.export_button]),
                self.checklist_view,
            ]
        )
        finding_box = w.VBox(
            [
                self.grade,
                self.clause,
                self.statement,
                self.evidence,
                self.found_on,
                self.save_finding,
                w.HTML(f"<h4>{escape(t('audit.findings'))}</h4>"),
                self.findings_view,
            ]
        )
        action_box = w.VBox(
            [
                w.HTML(f"<h4>{escape(t('widget.raise_title'))}</h4>"),
                self.action_finding,
                self.action_description,
                self.action_owner,
                self.action_raised,
                self.action_due,
                self.raise_action,
                w.HTML(f"<h4>{escape(t('widget.update_title'))}</h4>"),
                self.action_pick,
                self.action_status,
                self.action_closed_on,
                self.action_effectiveness,
                self.update_action,
                self.actions_view,
            ]
        )
        tabs = w.Tab(children=[audit_box, checklist_box, finding_box, action_box])
        for index, key in enumerate(
            ("widget.tab_audit", "widget.tab_checklist", "widget.tab_finding", "widget.tab_actions")
        ):
            tabs.set_title(index, t(key))
        return w.VBox([self.who, self.message, tabs])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def audit_workbench(
    ctx: PeriodContext, store: RecordsStore | None = None, who: str | None = None
) -> AuditWorkbench:
    """The auditors' workbench for ``ctx`` (displays itself in a notebook)."""
    return AuditWorkbench(ctx, store=store, who=who)


# ---------------------------------------------------------------------------
# Root-cause analysis: fishbone causes and five-whys chains
# ---------------------------------------------------------------------------


def _label(pair: tuple[str, str], lang: str) -> str:
    zh, en = pair
    return zh if lang == "zh" else en


def _ok(text: str) -> str:
    return f'<span style="color:#2e7d32">✔ {escape(text)}</span>'


def _error(text: str) -> str:
    return f'<span style="color:#c62828">✖ {escape(text)}</span>'


class _ComplaintFields:
    """Problem, department, complaint category and subcategory, hotspot and month:
    the fields every root-cause record shares, with the subcategory list following
    the category."""

    def __init__(self, ctx: PeriodContext) -> None:
        self.ctx = ctx
        lang = ctx.lang
        params = ctx.params
        self.problem = w.Text(description=t("rca.form.problem", lang), layout=_WIDE)
        self.department = w.Dropdown(
            options=[(d.name(lang), d.id) for d in params.organisation.departments],
            value=None if ctx.is_organisation else ctx.department,
            description=t("rca.form.department", lang),
        )
        self._categories = {c.id: c for c in params.organisation.complaint_categories}
        self.category = w.Dropdown(
            options=[(c.name(lang), c.id) for c in params.organisation.complaint_categories],
            value=None,
            description=t("rca.form.category", lang),
        )
        self.subcategory = w.Dropdown(
            options=[("–", None)], value=None, description=t("rca.form.subcategory", lang)
        )
        self.hotspot = w.Dropdown(
            options=[("–", None)] + [(_label(v, lang), k) for k, v in HOTSPOT_KINDS.items()],
            value=None,
            description=t("rca.form.hotspot", lang),
        )
        self.period = w.Text(value=ctx.period, description=t("rca.form.period", lang))
        self.category.observe(self._category_changed, names="value")

    def _category_changed(self, change: Mapping[str, Any]) -> None:
        category = self._categories.get(change["new"])
        subs = category.subcategories.items() if category else ()
        self.subcategory.options = [("–", None)] + [(n(self.ctx.lang), k) for k, n in subs]
        self.subcategory.value = None

    def fill(self, values: Mapping[str, Any]) -> None:
        """Set the fields from a record or a hotspot (missing keys left as they are)."""
        if "problem" in values:
            self.problem.value = values.get("problem") or ""
        if values.get("department"):
            self.department.value = values["department"]
        if values.get("complaint_category"):
            self.category.value = values["complaint_category"]
        if "complaint_subcategory" in values:
            self.subcategory.value = values.get("complaint_subcategory") or None
        if "hotspot" in values:
            self.hotspot.value = values.get("hotspot") or None
        if values.get("period"):
            self.period.value = str(values["period"])

    def record(self) -> dict[str, Any]:
        return {
            "problem": self.problem.value,
            "department": self.department.value,
            "complaint_category": self.category.value,
            "complaint_subcategory": self.subcategory.value,
            "hotspot": self.hotspot.value,
            "period": _none(self.period.value),
        }

    @property
    def widgets(self) -> list[w.Widget]:
        return [
            self.problem,
            w.HBox([self.department, self.hotspot, self.period]),
            w.HBox([self.category, self.subcategory]),
        ]


def hotspot_record(ctx: PeriodContext, hotspot: Mapping[str, Any]) -> dict[str, Any]:
    """The shared fields of a root-cause record started from a hotspot option
    (:func:`qmsnb.analysis.rca.hotspot_options`)."""
    return {
        "problem": f"{ctx.period} {hotspot['label']}",
        "department": hotspot["department"],
        "complaint_category": hotspot["category"],
        "complaint_subcategory": hotspot.get("subcategory"),
        "hotspot": hotspot["kind"],
        "period": hotspot["period"],
    }


class FishboneCauseForm:
    """Add a cause to a problem's fishbone (one record of ``fishbone_causes``)."""

    def __init__(self, ctx: PeriodContext, store: RecordsStore, who: str = "") -> None:
        self.ctx, self.store = ctx, store
        lang = ctx.lang
        self.fields = _ComplaintFields(ctx)
        self.bone = w.Dropdown(
            options=[(f"{zh} {en}", k) for k, (zh, en) in BONES.items()],
            value="method",
            description=t("rca.form.bone", lang),
        )
        self.cause = w.Textarea(description=t("rca.form.cause", lang), layout=_TEXT)
        self.evidence_count = w.BoundedIntText(
            value=0, min=0, max=10**7, description=t("rca.form.evidence_count", lang)
        )
        self.evidence = w.Text(description=t("rca.form.evidence", lang), layout=_WIDE)
        self.who = w.Text(value=who, description=t("rca.form.who", lang))
        self.save = w.Button(description=t("rca.form.save_cause", lang), button_style="primary")
        self.message = w.HTML()
        self.saved: list[str] = []
        self.save.on_click(self._save)
        self.widget = w.VBox(
            [
                *self.fields.widgets,
                w.HBox([self.bone, self.evidence_count]),
                self.cause,
                self.evidence,
                w.HBox([self.who, self.save]),
                self.message,
            ]
        )

    def use_hotspot(self, hotspot: Mapping[str, Any]) -> None:
        """Start from a hotspot: its problem, department, category; its tickets as evidence."""
        self.fields.fill(hotspot_record(self.ctx, hotspot))
        self.evidence_count.value = int(hotspot.get("tickets", 0))

    def record(self) -> dict[str, Any]:
        from datetime import date

        return {
            **self.fields.record(),
            "bone": self.bone.value,
            "cause": self.cause.value,
            "evidence_count": self.evidence_count.value,
            "evidence": _none(self.evidence.value),
            "recorded_by": self.who.value,
            "recorded_on": date.today().isoformat(),
        }

    def _save(self, _button: Any = None) -> None:
        try:
            cause_id = self.store.insert("fishbone_causes", self.record(), who=self.who.value)
        except RecordsError as exc:
            self.message.value = _error(exc.message(self.ctx.lang))
            return
        self.saved.append(cause_id)
        self.message.value = _ok(t("rca.form.saved", self.ctx.lang, id=cause_id))
        self.cause.value, self.evidence.value = "", ""  # ready for the next cause


class FiveWhysForm:
    """Build a five-whys chain, see what is wrong with it while typing, save it.

    Pick an existing chain to continue it (saved as an update of the version
    loaded, so a colleague's change in between is merged or named as a conflict),
    or ``new`` to start one.
    """

    def __init__(self, ctx: PeriodContext, store: RecordsStore, who: str = "") -> None:
        self.ctx, self.store = ctx, store
        lang = ctx.lang
        self.chain = w.Dropdown(description=t("rca.form.chain", lang))
        self.fields = _ComplaintFields(ctx)
        self.whys = [
            w.Text(description=t("rca.chain.why", lang, n=i), layout=_WIDE)
            for i in range(1, MAX_WHYS + 1)
        ]
        self.root_cause = w.Text(description=t("rca.chain.root", lang), layout=_WIDE)
        self.bone = w.Dropdown(
            options=[("–", None)] + [(f"{zh} {en}", k) for k, (zh, en) in BONES.items()],
            value=None,
            description=t("rca.form.bone", lang),
        )
        self.action = w.Text(description=t("rca.chain.action", lang), layout=_WIDE)
        self.action_owner = w.Text(description=t("rca.form.owner", lang))
        self.action_due = w.Text(description=t("rca.form.due", lang), placeholder="2026-12-31")
        self.action_done_on = w.Text(
            description=t("rca.form.done_on", lang), placeholder="2026-12-31"
        )
        self.who = w.Text(value=who, description=t("rca.form.who", lang))
        self.save = w.Button(description=t("rca.form.save_chain", lang), button_style="primary")
        self.check = w.HTML()
        self.message = w.HTML()
        self.version: int | None = None
        self.recorded_on: str | None = None
        self.save.on_click(self._save)
        for box in (*self.whys, self.root_cause, self.action):
            box.observe(self._recheck, names="value")
        self.refresh()
        self.chain.observe(self._load, names="value")
        self.widget = w.VBox(
            [
                self.chain,
                *self.fields.widgets,
                *self.whys,
                w.HBox([self.root_cause]),
                self.bone,
                self.action,
                w.HBox([self.action_owner, self.action_due, self.action_done_on]),
                self.check,
                w.HBox([self.who, self.save]),
                self.message,
            ]
        )

    # -- loading ---------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the chains of the store into the picker."""
        frame = self.store.frame("five_whys") if "five_whys" in self.store.registers() else None
        options: list[tuple[str, str | None]] = [(t("rca.form.new_chain", self.ctx.lang), None)]
        if frame is not None and not frame.empty:
            if not self.ctx.is_organisation:
                frame = frame[frame["department"] == self.ctx.department]
            options += [(f"{r.chain_id} {r.problem}", r.chain_id) for r in frame.itertuples()]
        current = self.chain.value
        self.chain.options = options
        self.chain.value = current if current in dict(options).values() else None

    def _load(self, change: Mapping[str, Any]) -> None:
        chain_id = change["new"]
        if chain_id is None:
            self.version, self.recorded_on = None, None
            return
        record = self.store.get("five_whys", chain_id)
        self.version, self.recorded_on = record.version, record.get("recorded_on")
        self.fields.fill(record)
        for i, box in enumerate(self.whys, 1):
            box.value = record.get(f"why_{i}") or ""
        self.root_cause.value = record.get("root_cause") or ""
        self.bone.value = record.get("bone")
        self.action.value = record.get("action") or ""
        self.action_owner.value = record.get("action_owner") or ""
        self.action_due.value = record.get("action_due") or ""
        self.action_done_on.value = record.get("action_done_on") or ""
        self.message.value = ""

    def use_hotspot(self, hotspot: Mapping[str, Any]) -> None:
        """Start a new chain from a hotspot."""
        self.chain.value = None
        self.fields.fill(hotspot_record(self.ctx, hotspot))

    # -- checking and saving -------------------------------------------------
    def record(self) -> dict[str, Any]:
        from datetime import date

        record = {
            **self.fields.record(),
            **{f"why_{i}": _none(box.value) for i, box in enumerate(self.whys, 1)},
            "root_cause": _none(self.root_cause.value),
            "bone": self.bone.value,
            "action": _none(self.action.value),
            "action_owner": _none(self.action_owner.value),
            "action_due": _none(self.action_due.value),
            "action_done_on": _none(self.action_done_on.value),
            "analyst": self.who.value,
            "recorded_on": self.recorded_on or date.today().isoformat(),
        }
        return record

    def issues(self) -> list[str]:
        """What is wrong with the chain as typed, in words."""
        from qmsnb.analysis.rca import chain_issues

        lang = self.ctx.lang
        out = []
        for issue in chain_issues(self.record(), self.ctx.params.rca.person_patterns):
            facts = dict(issue.facts)
            if "missing" in facts:
                facts["missing"] = ("、" if lang == "zh" else ", ").join(map(str, facts["missing"]))
            out.append(t(f"rca.issue.{issue.code}", lang, **facts))
        return out

    def _recheck(self, _change: Any = None) -> None:
        issues = self.issues()
        self.check.value = "".join(
            f'<div style="color:#8d6e00">⚠ {escape(text)}</div>' for text in issues
        )

    def _save(self, _button: Any = None) -> None:
        lang = self.ctx.lang
        try:
            if self.chain.value is None:
                chain_id = self.store.insert("five_whys", self.record(), who=self.who.value)
            else:
                chain_id = self.chain.value
                record = self.record()
                self.store.update(
                    "five_whys", chain_id, record, who=self.who.value, expected_version=self.version
                )
        except RecordsError as exc:
            self.message.value = _error(exc.message(lang))
            return
        self.refresh()
        self.chain.value = chain_id
        self.version = self.store.get("five_whys", chain_id).version
        self.message.value = _ok(t("rca.form.saved", lang, id=chain_id))
        self._recheck()


class RootCauseWorkbench:
    """A hotspot picker over the fishbone and five-whys forms.

    Args:
        ctx: the period context (its month's hotspots are offered).
        store: the records store (the project's own by default).
        who: the name to record changes under (editable in the forms).
    """

    def __init__(
        self, ctx: PeriodContext, store: RecordsStore | None = None, who: str = ""
    ) -> None:
        from qmsnb.analysis.rca import hotspot_options

        self.ctx = ctx
        self.store = store or open_store(ctx.params)
        self.options: Sequence[dict[str, Any]] = hotspot_options(ctx)
        lang = ctx.lang
        self.hotspot = w.Dropdown(
            options=[(t("rca.form.no_hotspot", lang), None)]
            + [(o["label"], i) for i, o in enumerate(self.options)],
            value=None,
            description=t("rca.form.from_hotspot", lang),
            layout=_WIDE,
        )
        self.fishbone = FishboneCauseForm(ctx, self.store, who)
        self.five_whys = FiveWhysForm(ctx, self.store, who)
        self.hotspot.observe(self._picked, names="value")
        tabs = w.Tab(children=[self.fishbone.widget, self.five_whys.widget])
        tabs.set_title(0, t("rca.form.tab_fishbone", lang))
        tabs.set_title(1, t("rca.form.tab_five_whys", lang))
        self.widget = w.VBox([self.hotspot, tabs])

    def _picked(self, change: Mapping[str, Any]) -> None:
        if change["new"] is None:
            return
        option = self.options[change["new"]]
        self.fishbone.use_hotspot(option)
        self.five_whys.use_hotspot(option)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def root_cause_workbench(
    ctx: PeriodContext, store: RecordsStore | None = None, who: str | None = None
) -> RootCauseWorkbench:
    """The root-cause forms for ``ctx`` (displays itself in a notebook)."""
    return RootCauseWorkbench(ctx, store=store, who=who if who is not None else _default_who())


def _text(value: Any) -> str:
    """A stored value for a history line (``4.0`` → ``4``, None → ``–``)."""
    if value is None:
        return "–"
    return scoring.number_text(value) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------
# Risk scoring
# ---------------------------------------------------------------------------
def level_label(lang: str, method: scoring.Method, field: str, value: float) -> str:
    """``4 · 很可能``: a factor value and what it means (the nearest level described
    at or below it; FMEA describes groups of ratings)."""
    text = scoring.number_text(value)
    described = [
        v
        for v in method.factor(field).values
        if v <= value and f"risk.level.{method.id}.{field}.{scoring.number_text(v)}" in catalogue()
    ]
    if not described:
        return text
    key = f"risk.level.{method.id}.{field}.{scoring.number_text(max(described))}"
    return f"{text} · {pick(catalogue()[key], lang)}"


class RiskScorer:
    """Score or re-score a risk with the active method (see the module docstring).

    Args:
        ctx: the period context (department scope, language, params).
        store: the records store (the project's store by default).
        who: the name recorded with every save (editable in the form).
    """

    def __init__(
        self, ctx: PeriodContext, store: RecordsStore | None = None, who: str | None = None
    ) -> None:
        self.ctx = ctx
        self.store = store or open_store(ctx.params)
        self.lang = ctx.lang
        self.method = scoring.METHODS[ctx.params.risk.method]
        t = ctx.t
        self._version: int | None = None
        self._record: dict[str, Any] | None = None

        self.message = w.HTML()
        self.who = w.Text(
            value=who if who is not None else _default_who(), description=t("risk.widget.who")
        )
        self.risk = w.Dropdown(description=t("risk.widget.risk"), layout=_WIDE)
        self.info = w.HTML()
        self.stage = w.ToggleButtons(
            description=t("risk.widget.stage"),
            options=[(t(f"risk.stage.{s}"), s) for s in ("inherent", "residual")],
            value="inherent",
        )
        self.sliders: dict[str, w.SelectionSlider] = {
            factor.field: w.SelectionSlider(
                description=t(f"risk.factor.{self.method.id}.{factor.field}"),
                options=[
                    (level_label(self.lang, self.method, factor.field, v), v) for v in factor.values
                ],
                value=factor.values[0],
                continuous_update=True,
                layout=w.Layout(width="70%"),
                style={"description_width": "160px"},
            )
            for factor in self.method.factors
        }
        self.result = w.HTML()
        self.reason = w.Textarea(description=t("risk.widget.reason"), layout=_TEXT)
        self.note = w.Text(description=t("risk.widget.note"), layout=_WIDE)
        self.save = w.Button(description=t("risk.widget.save"), icon="save", button_style="primary")
        self.history_view = w.HTML()

        self.risk.observe(lambda _: self._load(), names="value")
        self.stage.observe(lambda _: self._fill(), names="value")
        for slider in self.sliders.values():
            slider.observe(lambda _: self._show(), names="value")
        self.save.on_click(lambda _: self._save())

        self.widget = self._layout()
        self.refresh()

    # -- data -----------------------------------------------------------------------
    def _file_risks(self) -> pd.DataFrame:
        """The register kept in its file (the store adopts it on the first save)."""
        from qmsnb import io

        table = io.load(self.ctx.params.registers_dir, "risks", self.ctx.params, required=False)
        return table.frame if table is not None else pd.DataFrame()

    def _risks(self) -> pd.DataFrame:
        kept = "risks" in self.store.registers()
        frame = self.store.frame("risks") if kept else self._file_risks()
        if frame.empty:
            return frame
        if self.ctx.department != ORGANISATION:
            frame = frame[frame["department"] == self.ctx.department]
        return frame

    def refresh(self) -> None:
        """Reload the list from the store (after every save)."""
        frame = self._risks()
        options = [
            (
                f"{r['risk_id']} · {r['process_id'] or '–'} · {str(r['description'])[:40]}",
                r["risk_id"],
            )
            for r in frame.to_dict("records")
        ]
        chosen = self.risk.value
        _set_options(self.risk, options, chosen)
        if chosen == self.risk.value:
            self._load()  # the same record: reload its new version
        if not options:
            self._say("info", self.ctx.t("risk.widget.no_risks"))

    def _load(self) -> None:
        if not self.risk.value:
            self._record, self._version = None, None
            self.info.value = ""
            self.history_view.value = ""
            return
        if "risks" in self.store.registers():
            record = self.store.get("risks", self.risk.value)
            self._record, self._version = dict(record), record.version
        else:  # still in its file: no version yet; the save adopts the file first
            rows = self._file_risks()
            hit = rows[rows["risk_id"].astype("string") == self.risk.value]
            record = {
                k: (None if v is pd.NA or (isinstance(v, float) and pd.isna(v)) else v)
                for k, v in hit.iloc[0].to_dict().items()
            }
            self._record, self._version = record, None
        lang = self.lang
        old = scoring.method_of(record)
        note = ""
        if old is not None and old.id != self.method.id:
            text = self.ctx.t(
                "risk.widget.other_method",
                old=risk_analysis.method_label(lang, old),
                new=risk_analysis.method_label(lang, self.method),
            )
            note = f"<br><i>{escape(text)}</i>"
        self.info.value = (
            f"<b>{escape(record['risk_id'])}</b> · "
            f"{escape(risk_analysis.source_label(lang, record.get('source')))} · "
            f"{escape(self.ctx.dept_name(record['department']))}<br>"
            f"{escape(record['description'])}"
            + (
                f"<br><small>{escape(record.get('consequence'))}</small>"
                if record.get("consequence")
                else ""
            )
            + note
        )
        self.reason.value = record.get("residual_reason") or ""
        self._fill()
        self._history()

    def _fill(self) -> None:
        """Set the sliders from the record's chosen stage: an unscored residual starts
        from the inherent score; unscored (or another method's) from the lowest levels."""
        record = self._record or {}
        same = scoring.method_of(record) is self.method
        values = scoring.stage_values(record, self.stage.value) if same else {}
        if same and self.stage.value == "residual" and self.method.problem(values) is not None:
            values = scoring.stage_values(record, "inherent")
        for factor in self.method.factors:
            value = values.get(factor.field)
            slider = self.sliders[factor.field]
            slider.value = value if value is not None and factor.on_scale(value) else factor.low
        self._show()

    # -- live score -----------------------------------------------------------------------
    @property
    def values(self) -> dict[str, float]:
        """The factor values the sliders show."""
        return {name: float(slider.value) for name, slider in self.sliders.items()}

    @property
    def score(self) -> float:
        return self.method.score(self.values)

    @property
    def band(self) -> str:
        """The band id of the sliders' values."""
        params = self.ctx.params
        return self.method.band(
            self.values, params.risk.bands(self.method.id), params.risk.band_by(self.method.id)
        )

    def _inherent_score(self) -> float | None:
        record = self._record or {}
        if scoring.method_of(record) is not self.method:
            return None
        return scoring.stage_score(record, "inherent")

    def _show(self) -> None:
        t, lang = self.ctx.t, self.lang
        _, band = risk_analysis.band_info(self.ctx.params, self.method.id, self.band)
        formula = " × ".join(
            f"{self.method.factor(n).symbol}{scoring.number_text(v)}"
            for n, v in self.values.items()
        )
        line = t(
            "risk.widget.score_line",
            stage=t(f"risk.stage.{self.stage.value}"),
            formula=formula,
            score=scoring.number_text(self.score),
        )
        html = (
            f"<p>{escape(line)} "
            f"{risk_analysis.band_badge(band, risk_analysis.band_label(lang, band))}</p>"
        )
        if self.method.id == "fmea":
            values = self.values
            letter = scoring.action_priority(
                values["severity"], values["likelihood"], values["detection"]
            )
            html += f"<p>{escape(t('risk.widget.priority', priority=letter))}</p>"
        inherent = self._inherent_score()
        if self.stage.value == "residual" and inherent is not None:
            html += f"<p>{escape(t('risk.widget.compare', inherent=scoring.number_text(inherent)))}"
            if self.score > inherent:
                html += f" · <b>{escape(t('risk.widget.needs_reason'))}</b>"
            html += "</p>"
        self.result.value = html

    # -- saving -----------------------------------------------------------------------
    def _say(self, kind: str, text: str) -> None:
        colour = {"ok": "#2e7d32", "error": "#c62828", "info": "#1a73e8"}[kind]
        self.message.value = (
            f'<div style="border-left:5px solid {colour};padding:4px 10px">{escape(text)}</div>'
        )

    def _changes(self) -> tuple[dict[str, Any], str | None]:
        """The fields to save and an extra message (None, or why residual was cleared)."""
        record = self._record or {}
        stage = self.stage.value
        switching = scoring.method_of(record) is not self.method
        changes: dict[str, Any] = {"method": self.method.id}
        for name in scoring.FACTOR_FIELDS:
            value = self.values.get(name)
            changes[scoring.STAGES[stage] + name] = value
        extra = None
        if switching:
            if stage == "residual":
                raise QmsnbError(
                    "risk.widget.inherent_first",
                    method=risk_analysis.method_label(self.lang, self.method),
                )
            if any(record.get(f) is not None for f in scoring.factor_fields("residual")):
                extra = self.ctx.t(
                    "risk.widget.cleared_residual",
                    method=risk_analysis.method_label(self.lang, self.method),
                )
            changes.update(dict.fromkeys(scoring.factor_fields("residual")))
        changes["residual_reason"] = _none(self.reason.value)
        return changes, extra

    def _save(self) -> None:
        risk_id = self.risk.value
        if not risk_id:
            return
        try:
            changes, extra = self._changes()
            self.store.update(
                "risks",
                risk_id,
                changes,
                self.who.value,
                reason=_none(self.note.value) or self.ctx.t("risk.widget.note_default"),
                expected_version=self._version,
            )
        except QmsnbError as exc:
            self._say("error", exc.message(self.lang))
            return
        _, band = risk_analysis.band_info(self.ctx.params, self.method.id, self.band)
        text = self.ctx.t(
            "risk.widget.saved",
            risk=risk_id,
            stage=self.ctx.t(f"risk.stage.{self.stage.value}"),
            score=scoring.number_text(self.score),
            band=risk_analysis.band_label(self.lang, band),
        )
        self.note.value = ""
        self.refresh()
        self._say("ok", f"{text} {extra}" if extra else text)

    def _history(self) -> None:
        if not self.risk.value or "risks" not in self.store.registers():
            self.history_view.value = ""
            return
        history = self.store.history("risks", self.risk.value).tail(5)
        lines = []
        for row in reversed(list(history.itertuples())):
            changes = (
                ", ".join(
                    f"{self._field(name)}: {_text(row.before.get(name))} → "
                    f"{_text(row.after.get(name))}"
                    for name in row.changed
                    if row.before is not None and row.after is not None
                )
                or row.action
            )
            lines.append(
                self.ctx.t(
                    "risk.widget.history_line",
                    when=row.when.tz_convert(None).strftime("%Y-%m-%d %H:%M"),
                    who=row.who,
                    changes=changes,
                    reason=f" ({row.reason})" if isinstance(row.reason, str) else "",
                )
            )
        body = "".join(f"<li>{escape(line)}</li>" for line in lines)
        self.history_view.value = (
            f"<b>{escape(self.ctx.t('risk.widget.history'))}</b><ul>{body}</ul>" if body else ""
        )

    def _field(self, name: str) -> str:
        try:
            column = RISKS.column(name)
        except KeyError:
            return name
        return column.zh if self.lang == "zh" else column.en

    # -- layout ---------------------------------------------------------------------------
    def _layout(self) -> w.Widget:
        return w.VBox(
            [
                self.who,
                self.message,
                self.risk,
                self.info,
                self.stage,
                *self.sliders.values(),
                self.result,
                self.reason,
                self.note,
                self.save,
                self.history_view,
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def risk_scorer(
    ctx: PeriodContext, store: RecordsStore | None = None, who: str | None = None
) -> RiskScorer:
    """The risk-scoring form for ``ctx`` (displays itself in a notebook)."""
    return RiskScorer(ctx, store=store, who=who)
