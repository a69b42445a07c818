"""ipywidgets forms that write to the records store, testable without a browser.

Each form is a plain class holding its widgets as attributes (``form.cause``,
``form.save``, ...) and the assembled ``form.widget``; a test sets ``.value``
and calls ``.click()`` on buttons, then reads ``form.message.value`` and the
store. Saves go through :class:`~qmsnb.records.RecordsStore` (validated, with
history); refused saves show the store's message in the report language and
keep what was typed.

Root-cause analysis (``notebooks/root_cause.ipynb``):

* :class:`FishboneCauseForm` adds causes (人机料法环测) to a problem's fishbone;
* :class:`FiveWhysForm` builds a five-whys chain, flags gaps and causes that stop
  at a person while typing, and saves or updates it (optimistic: the version it
  loaded);
* :class:`RootCauseWorkbench` puts both under a picker of the month's complaint
  hotspots, which fills in problem, department, category and evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from qmsnb.contract import BONES, HOTSPOT_KINDS, MAX_WHYS
from qmsnb.display import escape
from qmsnb.exceptions import RecordsError
from qmsnb.i18n import t

if TYPE_CHECKING:
    from qmsnb.context import PeriodContext
    from qmsnb.records import RecordsStore

_WIDE = w.Layout(width="95%")
_TEXT = w.Layout(width="95%", height="60px")


def _label(pair: tuple[str, str], lang: str) -> str:
    zh, en = pair
    return zh if lang == "zh" else en


def _ok(text: str) -> str:
    return f'<span style="color:#2e7d32">✔ {escape(text)}</span>'


def _error(text: str) -> str:
    return f'<span style="color:#c62828">✖ {escape(text)}</span>'


def _blank(value: Any) -> Any:
    """An empty text box saves as nothing (None), not as an empty string."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


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
            "period": _blank(self.period.value),
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
            "evidence": _blank(self.evidence.value),
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
            **{f"why_{i}": _blank(box.value) for i, box in enumerate(self.whys, 1)},
            "root_cause": _blank(self.root_cause.value),
            "bone": self.bone.value,
            "action": _blank(self.action.value),
            "action_owner": _blank(self.action_owner.value),
            "action_due": _blank(self.action_due.value),
            "action_done_on": _blank(self.action_done_on.value),
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
        from qmsnb.records import open_store

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
