"""What a report shows: sections, escaped tables, narrative, badges and banners.

Analysis functions return :class:`Section` objects (pure values a test can
inspect); displaying one in a notebook renders its heading and items in order.
Every string that may come from data is escaped here, at the source, because the
exported HTML is not sanitised afterwards (nbconvert's sanitiser breaks tables
and plotly). Plotly figures are displayed with two representations: plotly's own
JSON for JupyterLab, and a ``<div>`` + script without plotly.js for the HTML
report, which loads one shared local copy of plotly.js.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

STATUS_COLOURS = {
    "red": "#c62828",
    "yellow": "#f9a825",
    "green": "#2e7d32",
    "no_data": "#9e9e9e",
    "small_base": "#bdbdbd",
    "blocked": "#c62828",
    "failed": "#c62828",
    "ok": "#2e7d32",
    "warning": "#f9a825",
    "stale": "#9e9e9e",
}

#: Plotly config for every chart: no logo, no cloud buttons, responsive.
PLOTLY_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["sendDataToCloud"],
}


def escape(value: Any) -> str:
    """HTML-escape anything (None → empty)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Html:
    """A fragment of HTML that qmsnb built itself (its data parts already escaped)."""

    markup: str

    def _repr_html_(self) -> str:
        return self.markup

    def __str__(self) -> str:
        return self.markup


def paragraph(text: str, css: str = "qm-text") -> Html:
    """A paragraph of (escaped) text."""
    return Html(f'<p class="{css}">{escape(text)}</p>')


def bullet_list(items: Iterable[str]) -> Html:
    lis = "".join(f"<li>{escape(i)}</li>" for i in items)
    return Html(f'<ul class="qm-list">{lis}</ul>')


def badge(status: str, label: str) -> str:
    """A coloured status badge (markup string; ``label`` is escaped)."""
    colour = STATUS_COLOURS.get(status, "#616161")
    text_colour = "#212121" if status in ("yellow", "warning") else "#ffffff"
    return (
        f'<span class="qm-badge qm-{escape(status)}" style="background:{colour};'
        f"color:{text_colour};padding:1px 8px;border-radius:10px;font-size:0.85em;"
        f'white-space:nowrap">{escape(label)}</span>'
    )


def banner(kind: str, title: str, lines: Sequence[str] = ()) -> Html:
    """A red / yellow / grey banner with a title and optional lines (all escaped)."""
    colour = {"red": "#fdecea", "yellow": "#fff8e1", "info": "#e8f0fe"}.get(kind, "#f5f5f5")
    border = {"red": "#c62828", "yellow": "#f9a825", "info": "#1a73e8"}.get(kind, "#9e9e9e")
    body = "".join(f"<li>{escape(x)}</li>" for x in lines)
    return Html(
        f'<div class="qm-banner qm-banner-{escape(kind)}" style="background:{colour};'
        f'border-left:6px solid {border};padding:10px 14px;margin:10px 0">'
        f"<strong>{escape(title)}</strong>{f'<ul>{body}</ul>' if body else ''}</div>"
    )


def progress_bar(percent: float) -> str:
    pct = max(0.0, min(100.0, float(percent or 0)))
    return (
        '<div style="background:#e0e0e0;border-radius:4px;width:90px;height:10px;'
        f'display:inline-block;vertical-align:middle"><div style="background:#1a73e8;'
        f'width:{pct:.0f}%;height:10px;border-radius:4px"></div></div> {pct:.0f}%'
    )


@dataclass(frozen=True)
class Col:
    """A table column: header text and how to turn a row into cell markup.

    ``render`` returns markup; use :func:`escape` for any data it includes.
    ``text`` is a shortcut: render the row's value of that key as escaped text.
    """

    header: str
    render: Callable[[Any], str] | None = None
    key: str | None = None
    align: str = "left"

    def cell(self, row: Any) -> str:
        if self.render is not None:
            return self.render(row)
        return escape(row[self.key] if self.key is not None else "")


def table(rows: pd.DataFrame | Sequence[Any], columns: Sequence[Col], css: str = "") -> Html:
    """An HTML table; headers and text cells are escaped, renderers return markup."""
    records: Iterable[Any] = (
        (r for _, r in rows.iterrows()) if isinstance(rows, pd.DataFrame) else rows
    )
    head = "".join(f'<th style="text-align:{c.align}">{escape(c.header)}</th>' for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f'<td style="text-align:{c.align}">{c.cell(r)}</td>' for c in columns)
        + "</tr>"
        for r in records
    )
    return Html(
        f'<table class="qm-table {escape(css)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


#: Mime type of the facts a report hands to the batch for the manifest.
FACTS_MIME = "application/vnd.qmsnb.facts+json"


@dataclass(frozen=True)
class Facts:
    """JSON-native facts a report hands to the batch (recorded in the manifest).

    Displayed, it is an output of its own mime type that the HTML report does not
    show; :func:`qmsnb.publish.report_facts` reads it from the executed notebook.
    """

    data: dict[str, Any]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # an empty text/html: the HTML report shows nothing (not the text/plain repr)
        return {FACTS_MIME: self.data, "text/html": ""}


def figure_bundle(fig: Any) -> dict[str, Any]:
    """Both representations of a plotly figure (JupyterLab JSON and report HTML)."""
    import plotly.io as pio

    spec = json.loads(pio.to_json(fig, validate=False))
    div = pio.to_html(
        fig, include_plotlyjs=False, full_html=False, config=PLOTLY_CONFIG, validate=False
    )
    return {"application/vnd.plotly.v1+json": {**spec, "config": PLOTLY_CONFIG}, "text/html": div}


def show(item: Any) -> None:
    """Display one item of a section in the running notebook."""
    from IPython.display import HTML, display

    if isinstance(item, Section):
        item._ipython_display_()
    elif isinstance(item, Html):
        display(HTML(item.markup))
    elif isinstance(item, str):
        display(HTML(paragraph(item).markup))
    elif hasattr(item, "to_plotly_json"):
        display(figure_bundle(item), raw=True)
    else:
        display(item)


@dataclass
class Section:
    """A titled part of a report: heading, then items (text, tables, figures).

    Attributes:
        title: heading text (escaped when shown).
        items: paragraphs (str), :class:`Html`, plotly figures or nested sections.
        level: heading level (2 for report sections; 0 shows no heading).
        anchor: id for links from the summary.
    """

    title: str
    items: list[Any] = field(default_factory=list)
    level: int = 2
    anchor: str | None = None

    def add(self, *items: Any) -> Section:
        self.items.extend(i for i in items if i is not None)
        return self

    @property
    def figures(self) -> list[Any]:
        """Every plotly figure in the section (nested sections included)."""
        found = []
        for item in self.items:
            if isinstance(item, Section):
                found.extend(item.figures)
            elif hasattr(item, "to_plotly_json"):
                found.append(item)
        return found

    @property
    def text(self) -> str:
        """All text of the section (markup included), for tests and search."""
        parts = [self.title]
        for item in self.items:
            if isinstance(item, Section):
                parts.append(item.text)
            elif isinstance(item, Html | str):
                parts.append(str(item))
        return "\n".join(parts)

    def heading_html(self) -> str:
        if self.level == 0:  # a section without a visible heading (e.g. the title block)
            return ""
        anchor = f' id="{escape(self.anchor)}"' if self.anchor else ""
        return f'<h{self.level}{anchor} class="qm-h">{escape(self.title)}</h{self.level}>'

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        if self.level:
            display(HTML(self.heading_html()))
        for item in self.items:
            show(item)
