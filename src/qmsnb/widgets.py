"""ipywidgets forms in JupyterLab that write to the records store.

``qmsnb.widgets.risk_scorer(ctx)`` scores or re-scores a risk or opportunity of
the department (or of the whole organisation) with the *active* scoring method
of ``params/risk.yaml``: one slider per factor (its readout says what the level
means), the score and its band shown live as the sliders move (and, for FMEA,
the action priority), the inherent score beside a residual one, and a reason
field that a residual score above the inherent one needs. Saving updates the
record in the records store (:mod:`qmsnb.records`), whose history keeps every
earlier score, who changed it, when and why; the record's last changes are
listed under the form. A refused save shows the store's message (which field
and why) and saves nothing. Updates carry the version the form was filled from,
so a change someone else saved meanwhile is never silently overwritten.

The forms are plain widgets with public attributes: tests set ``.value`` and call
``.click()`` without a browser or kernel.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

import ipywidgets as w
import pandas as pd

from qmsnb import scoring
from qmsnb.analysis import risk as risk_analysis
from qmsnb.config import ORGANISATION
from qmsnb.context import PeriodContext
from qmsnb.contract import RISKS
from qmsnb.display import escape
from qmsnb.exceptions import QmsnbError
from qmsnb.i18n import catalogue, pick
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
    def _risks(self) -> pd.DataFrame:
        if "risks" not in self.store.registers():
            return pd.DataFrame()
        frame = self.store.frame("risks")
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
        record = self.store.get("risks", self.risk.value)
        self._record, self._version = dict(record), record.version
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
        if not self.risk.value:
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
