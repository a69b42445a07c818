"""Plotly figure factories in one house style.

Factories take plain data (frames, lists) and already-translated labels and
return ``go.Figure`` objects; they never read files or know about periods. The
style: white background, a CJK-capable font stack, status colours shared with
the tables, targets as dashed grey lines.

Figures are assembled as plain dicts (traces and layout) and handed to
``go.Figure`` once: every ``add_trace`` / ``update_*`` call on a figure validates
and copies its whole state again (a 9-panel grid took ~150 ms that way, ~20 ms in
one go), and is the bulk of a report's own work. The grid of a set of small
multiples is plotly's own (``make_subplots``), computed once per shape.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qmsnb.display import STATUS_COLOURS

FONT = "Noto Sans CJK SC, Source Han Sans SC, PingFang SC, Microsoft YaHei, Arial, sans-serif"
LINE = "#1a73e8"
TARGET = "#616161"
LIMIT = "#9e9e9e"


def style(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """Apply the house style to a figure built elsewhere."""
    fig.update_layout(
        template="plotly_white",
        font={"family": FONT, "size": 12},
        title={"text": title, "x": 0, "xanchor": "left"} if title else None,
        margin={"l": 50, "r": 20, "t": 60 if title else 30, "b": 40},
        height=height,
        legend={"orientation": "h", "y": -0.12},
        hoverlabel={"font": {"family": FONT}},
    )
    return fig


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    # as a plain dict: validating it into a figure is ~40 % cheaper than copying
    # the registered template object (the figure's JSON is the same)
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


def house_layout(title: str | None = None, height: int | None = None) -> dict[str, Any]:
    """The house style as a layout dict (what :func:`style` sets), for :func:`figure`."""
    layout: dict[str, Any] = {
        "template": _template(),
        "font": {"family": FONT, "size": 12},
        "margin": {"l": 50, "r": 20, "t": 60 if title else 30, "b": 40},
        "legend": {"orientation": "h", "y": -0.12},
        "hoverlabel": {"font": {"family": FONT}},
    }
    if title:
        layout["title"] = {"text": title, "x": 0, "xanchor": "left"}
    if height is not None:
        layout["height"] = height
    return layout


def _attach_house_template(fig: go.Figure) -> None:
    """Give ``fig`` plotly's registered ``plotly_white`` template without validating
    it again: plotly itself trusts registered templates so (it sets its default
    template on every new figure this way). Validating the template took 14 ms of
    a figure's 15 ms; a report has a dozen figures or more."""
    import plotly.io as pio

    layout = fig._layout_obj
    layout._validate = False
    try:
        layout.template = pio.templates["plotly_white"]
    finally:
        layout._validate = fig._validate


def figure(
    traces: Sequence[dict[str, Any]],
    layout: dict[str, Any],
    title: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """A styled figure from trace dicts (each with its ``type``) and layout entries.

    ``layout`` is laid over the house style key by key (one level deep for
    dicts, as ``update_layout`` merges them), then the figure is validated once.
    """
    merged = house_layout(title, height)
    for key, value in layout.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    house_template = merged.get("template") is _template()
    if house_template:
        del merged["template"]
    fig = go.Figure(data=list(traces), layout=merged)
    if house_template:
        _attach_house_template(fig)
    if not title and "title" not in layout:
        fig.update_layout(title=None)  # an empty title object, as style() leaves it
    return fig


@lru_cache(maxsize=64)
def _grid_layout(
    rows: int, cols: int, titled: tuple[bool, ...], vertical: float, horizontal: float
) -> dict[str, Any]:
    blank = ["t" if t else "" for t in titled]
    grid = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=blank,
        vertical_spacing=vertical,
        horizontal_spacing=horizontal,
    )
    layout = grid.layout.to_plotly_json()
    layout.pop("template", None)
    return layout


def grid_layout(
    rows: int,
    cols: int,
    titles: Sequence[str],
    vertical_spacing: float,
    horizontal_spacing: float,
    title_font: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The axes and subplot-title annotations ``make_subplots`` would lay out.

    Returns a fresh dict (``xaxis``, ``yaxis2``, ..., ``annotations``); the
    traces of the panel in row ``r``, column ``c`` go on :func:`axis_refs`.
    """
    titles = [str(t) if t is not None else "" for t in titles]
    layout = copy.deepcopy(
        _grid_layout(
            rows, cols, tuple(bool(t) for t in titles), vertical_spacing, horizontal_spacing
        )
    )
    notes = layout.get("annotations", [])
    for note, text in zip(notes, (t for t in titles if t), strict=True):
        note["text"] = text
        if title_font is not None:
            note["font"] = {**note.get("font", {}), **title_font}
    return layout


def axis_refs(row: int, col: int, cols: int) -> dict[str, str]:
    """``xaxis`` / ``yaxis`` of the subplot in ``row``, ``col`` (1-based) of a grid."""
    n = (row - 1) * cols + col
    suffix = "" if n == 1 else str(n)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def _axes(layout: dict[str, Any], letter: str) -> list[dict[str, Any]]:
    return [v for k, v in layout.items() if k.startswith(f"{letter}axis")]


@dataclass(frozen=True)
class Panel:
    """One small-multiple panel: a series against a target, with optional limits."""

    title: str
    x: Sequence[str]
    y: Sequence[float]
    status: Sequence[str]
    target: float | None = None
    centre: float | None = None
    lower: Sequence[float] | None = None
    upper: Sequence[float] | None = None
    signals: Sequence[bool] | None = None
    unit: str = "%"


def _grid(count: int, columns: int) -> tuple[int, int]:
    cols = min(columns, max(1, count))
    return math.ceil(count / cols), cols


def small_multiples(
    panels: Sequence[Panel],
    title: str,
    labels: dict[str, str],
    columns: int = 3,
    panel_height: int = 230,
) -> go.Figure:
    """A grid of trend panels: value (markers coloured by status), target, limits.

    Args:
        labels: translated legend names for ``value``, ``target``, ``centre``,
            ``limits`` and ``signal``.
    """
    rows, cols = _grid(len(panels), columns)
    layout = grid_layout(
        rows,
        cols,
        [p.title for p in panels],
        vertical_spacing=min(0.12, 0.6 / max(rows, 1)),
        horizontal_spacing=0.07,
        title_font={"size": 12, "family": FONT},
    )
    traces: list[dict[str, Any]] = []
    signal_shown = False
    for index, panel in enumerate(panels):
        axes = axis_refs(index // cols + 1, index % cols + 1, cols)
        first = index == 0
        colours = [STATUS_COLOURS.get(s, LINE) for s in panel.status]
        if panel.lower is not None and panel.upper is not None:
            for values, shown in ((panel.upper, first), (panel.lower, False)):
                traces.append(
                    {
                        "type": "scatter",
                        "x": list(panel.x),
                        "y": list(values),
                        "mode": "lines",
                        "line": {"color": LIMIT, "width": 1, "shape": "hvh", "dash": "dot"},
                        "name": labels["limits"],
                        "legendgroup": "limits",
                        "showlegend": shown,
                        "hoverinfo": "skip",
                        **axes,
                    }
                )
        if panel.centre is not None:
            traces.append(
                {
                    "type": "scatter",
                    "x": list(panel.x),
                    "y": [panel.centre] * len(panel.x),
                    "mode": "lines",
                    "line": {"color": LIMIT, "width": 1},
                    "name": labels["centre"],
                    "legendgroup": "centre",
                    "showlegend": first,
                    "hoverinfo": "skip",
                    **axes,
                }
            )
        if panel.target is not None:
            traces.append(
                {
                    "type": "scatter",
                    "x": list(panel.x),
                    "y": [panel.target] * len(panel.x),
                    "mode": "lines",
                    "line": {"color": TARGET, "width": 1.5, "dash": "dash"},
                    "name": labels["target"],
                    "legendgroup": "target",
                    "showlegend": first,
                    "hovertemplate": f"{labels['target']}: %{{y:.2f}}{panel.unit}<extra></extra>",
                    **axes,
                }
            )
        traces.append(
            {
                "type": "scatter",
                "x": list(panel.x),
                "y": list(panel.y),
                "mode": "lines+markers",
                "line": {"color": LINE, "width": 2},
                "marker": {"color": colours, "size": 8, "line": {"color": "white", "width": 1}},
                "name": labels["value"],
                "legendgroup": "value",
                "showlegend": first,
                "hovertemplate": f"%{{x}}: %{{y:.2f}}{panel.unit}<extra></extra>",
                **axes,
            }
        )
        if panel.signals is not None and any(panel.signals):
            xs = [x for x, s in zip(panel.x, panel.signals, strict=True) if s]
            ys = [y for y, s in zip(panel.y, panel.signals, strict=True) if s]
            traces.append(
                {
                    "type": "scatter",
                    "x": xs,
                    "y": ys,
                    "mode": "markers",
                    "marker": {
                        "symbol": "circle-open",
                        "size": 15,
                        "color": STATUS_COLOURS["red"],
                        "line": {"width": 2},
                    },
                    "name": labels["signal"],
                    "legendgroup": "signal",
                    "showlegend": not signal_shown,
                    "hoverinfo": "skip",
                    **axes,
                }
            )
            signal_shown = True
    for axis in _axes(layout, "x"):
        axis.update(tickangle=-45, tickfont={"size": 9})
    for axis in _axes(layout, "y"):
        axis.update(tickfont={"size": 9}, ticksuffix=panels[0].unit if panels else "")
    return figure(traces, layout, title, height=max(300, rows * panel_height + 90))


def status_heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    status: np.ndarray,
    text: np.ndarray,
    title: str,
    status_labels: dict[str, str],
) -> go.Figure:
    """A grid of cells coloured by status (red/yellow/green/no data) with value text."""
    order = ["no_data", "small_base", "red", "yellow", "green"]
    codes = np.vectorize(lambda s: order.index(s) if s in order else 0)(status).astype(float)
    scale = []
    for i, name in enumerate(order):
        scale += [
            [i / len(order), STATUS_COLOURS[name]],
            [(i + 1) / len(order), STATUS_COLOURS[name]],
        ]
    label_grid = np.vectorize(lambda s: status_labels.get(s, s))(status)
    heatmap = {
        "type": "heatmap",
        "z": codes,
        "x": list(columns),
        "y": list(rows),
        "zmin": 0,
        "zmax": len(order),
        "colorscale": scale,
        "showscale": False,
        "text": text,
        "texttemplate": "%{text}",
        "textfont": {"size": 11, "color": "white"},
        "customdata": label_grid,
        "hovertemplate": "%{y} · %{x}<br>%{text} (%{customdata})<extra></extra>",
        "xgap": 2,
        "ygap": 2,
    }
    layout = {
        "xaxis": {"side": "bottom", "tickangle": -40, "automargin": True},
        "yaxis": {"autorange": "reversed", "automargin": True},
    }
    return figure([heatmap], layout, title, height=max(360, 38 * len(rows) + 260))


def bar_with_target(
    x: Sequence[str],
    y: Sequence[float],
    status: Sequence[str],
    target: Sequence[float | None],
    title: str,
    labels: dict[str, str],
    unit: str = "%",
) -> go.Figure:
    """Bars coloured by status with the target of each bar as a dash marker."""
    traces = [
        {
            "type": "bar",
            "x": list(x),
            "y": list(y),
            "name": labels["value"],
            "marker": {"color": [STATUS_COLOURS.get(s, LINE) for s in status]},
            "hovertemplate": f"%{{x}}: %{{y:.2f}}{unit}<extra></extra>",
        },
        {
            "type": "scatter",
            "x": list(x),
            "y": list(target),
            "mode": "markers",
            "name": labels["target"],
            "marker": {
                "symbol": "line-ew-open",
                "size": 28,
                "color": TARGET,
                "line": {"width": 3},
            },
            "hovertemplate": f"{labels['target']}: %{{y:.2f}}{unit}<extra></extra>",
        },
    ]
    return figure(traces, {"yaxis": {"ticksuffix": unit}}, title, height=380)


def period_bars(
    x: Sequence[str],
    series: dict[str, Sequence[float]],
    title: str,
    colours: Sequence[str] | None = None,
    lines: dict[str, Sequence[float]] | None = None,
) -> go.Figure:
    """Stacked bars per period (e.g. complaints by category), optional lines on top.

    Unlike :func:`stacked_bars` (categories, unit ticks) the values may be large
    and the x axis is time.

    Args:
        series: translated name → one value per ``x``, stacked in this order.
        colours: one colour per series (plotly's palette when omitted).
        lines: translated name → values drawn as lines over the bars (e.g. open items).
    """
    traces: list[dict[str, Any]] = []
    for index, (name, values) in enumerate(series.items()):
        marker = {"color": colours[index]} if colours and index < len(colours) else {}
        traces.append(
            {
                "type": "bar",
                "x": list(x),
                "y": list(values),
                "name": name,
                "marker": marker,
                "hovertemplate": f"{name} · %{{x}}: %{{y}}<extra></extra>",
            }
        )
    for index, (name, values) in enumerate((lines or {}).items()):
        traces.append(
            {
                "type": "scatter",
                "x": list(x),
                "y": list(values),
                "name": name,
                "mode": "lines+markers",
                "line": {
                    "color": [TARGET, "#c62828", LINE][index % 3],
                    "width": 2,
                    "dash": "dot" if index else "solid",
                },
                "hovertemplate": f"{name} · %{{x}}: %{{y}}<extra></extra>",
            }
        )
    layout = {"barmode": "stack", "xaxis": {"tickangle": 0, "tickfont": {"size": 10}}}
    return figure(traces, layout, title, height=380)


def count_heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    counts: np.ndarray,
    title: str,
    hover_label: str,
) -> go.Figure:
    """A grid of counts (e.g. audits per department and month), white at zero."""
    heatmap = {
        "type": "heatmap",
        "z": counts,
        "x": list(columns),
        "y": list(rows),
        "zmin": 0,
        "zmax": max(1, int(np.max(counts)) if counts.size else 1),
        "colorscale": [[0, "#ffffff"], [0.001, "#e8f0fe"], [1, LINE]],
        "showscale": False,
        "text": np.where(counts > 0, counts.astype(str), ""),
        "texttemplate": "%{text}",
        "textfont": {"size": 11},
        "hovertemplate": f"%{{y}} · %{{x}}<br>{hover_label}: %{{z}}<extra></extra>",
        "xgap": 2,
        "ygap": 2,
    }
    layout = {"xaxis": {"side": "top"}, "yaxis": {"autorange": "reversed"}}
    return figure([heatmap], layout, title, height=max(260, 34 * len(rows) + 150))


def stacked_bars(
    categories: Sequence[str],
    series: dict[str, Sequence[float]],
    colours: Sequence[str],
    title: str,
    horizontal: bool = False,
) -> go.Figure:
    """Bars per category stacked by series (e.g. findings per clause by grade).

    Args:
        series: translated series name → one value per category.
        colours: one colour per series, in order.
    """
    traces: list[dict[str, Any]] = []
    for (name, values), colour in zip(series.items(), colours, strict=True):
        if not any(values):
            continue
        common = {"type": "bar", "name": name, "marker": {"color": colour}}
        if horizontal:
            traces.append(
                {
                    "y": list(categories),
                    "x": list(values),
                    "orientation": "h",
                    "hovertemplate": "%{y}: %{x}<extra>" + name + "</extra>",
                    **common,
                }
            )
        else:
            traces.append(
                {
                    "x": list(categories),
                    "y": list(values),
                    "hovertemplate": "%{x}: %{y}<extra>" + name + "</extra>",
                    **common,
                }
            )
    if horizontal:
        layout = {
            "barmode": "stack",
            "yaxis": {"autorange": "reversed", "automargin": True},
            "xaxis": {"dtick": 1},
        }
        return figure(traces, layout, title, height=max(280, 26 * len(categories) + 140))
    return figure(traces, {"barmode": "stack", "yaxis": {"dtick": 1}}, title, height=380)


def pale(colour: str, amount: float = 0.78) -> str:
    """``colour`` mixed with white (``amount`` of white): the tint of an empty cell."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * amount) for c in (r, g, b)]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def _text_colour(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return "#212121" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "#ffffff"


@dataclass(frozen=True)
class HeatPanel:
    """One risk heat map: rows × columns of cells with a colour, a count and hover text.

    ``hover`` is markup plotly shows as is: escape data in it before.
    """

    title: str
    rows: Sequence[str]
    columns: Sequence[str]
    counts: np.ndarray
    colours: np.ndarray
    hover: np.ndarray
    row_title: str = ""
    column_title: str = ""


def risk_heatmap(panels: Sequence[HeatPanel], title: str) -> go.Figure:
    """Risk heat maps side by side: each cell in its band's colour with its count.

    Cells take any colour (a band's, or its pale tint when empty); counts are
    written in dark or white text, whichever reads on the cell.
    """
    layout = grid_layout(
        1,
        len(panels),
        [p.title for p in panels],
        vertical_spacing=0.3,  # make_subplots' default for one row
        horizontal_spacing=0.12,
        title_font={"size": 13, "family": FONT},
    )
    traces: list[dict[str, Any]] = []
    for index, panel in enumerate(panels, start=1):
        axes = axis_refs(1, index, len(panels))
        palette = sorted({str(c) for c in panel.colours.ravel()})
        code = {c: i for i, c in enumerate(palette)}
        z = np.array([[code[str(c)] for c in row] for row in panel.colours], dtype=float)
        n = len(palette)
        scale = []
        for i, colour in enumerate(palette):
            scale += [[i / n, colour], [(i + 1) / n, colour]]
        traces.append(
            {
                "type": "heatmap",
                "z": z,
                "x": list(panel.columns),
                "y": list(panel.rows),
                "zmin": -0.5,
                "zmax": n - 0.5,
                "colorscale": scale,
                "showscale": False,
                "xgap": 3,
                "ygap": 3,
                "customdata": panel.hover,
                "hovertemplate": "%{customdata}<extra></extra>",
                **axes,
            }
        )
        xs, ys, texts, colours = [], [], [], []
        for i, row in enumerate(panel.rows):
            for j, column in enumerate(panel.columns):
                if panel.counts[i, j]:
                    xs.append(column)
                    ys.append(row)
                    texts.append(str(int(panel.counts[i, j])))
                    colours.append(_text_colour(str(panel.colours[i, j])))
        if xs:
            traces.append(
                {
                    "type": "scatter",
                    "x": xs,
                    "y": ys,
                    "text": texts,
                    "mode": "text",
                    "hoverinfo": "skip",
                    "showlegend": False,
                    "textfont": {"size": 14, "color": colours, "family": FONT},
                    **axes,
                }
            )
        layout["xaxis" + axes["xaxis"][1:]].update(
            title={"text": panel.column_title}, type="category", side="bottom"
        )
        layout["yaxis" + axes["yaxis"][1:]].update(
            title={"text": panel.row_title}, type="category", autorange="reversed"
        )
    rows = max(len(p.rows) for p in panels) if panels else 5
    return figure(traces, layout, title, height=max(380, 42 * rows + 170))


@dataclass(frozen=True)
class BeforeAfter:
    """One before/after panel: a monthly series, the month the actions were
    completed, and the level of the months before and after it."""

    title: str
    x: Sequence[str]
    y: Sequence[float]
    action: str
    before: Sequence[str]
    after: Sequence[str]
    before_level: float | None
    after_level: float | None
    colour: str
    unit: str = "%"


def before_after(
    panels: Sequence[BeforeAfter], title: str, labels: dict[str, str], columns: int = 2
) -> go.Figure:
    """Small multiples of before/after series.

    Args:
        labels: translated names for ``value``, ``before``, ``after`` and ``action``.
    """
    rows, cols = _grid(len(panels), columns)
    layout = grid_layout(
        rows,
        cols,
        [p.title for p in panels],
        vertical_spacing=min(0.18, 0.7 / max(rows, 1)),
        horizontal_spacing=0.08,
        title_font={"size": 12, "family": FONT},
    )
    traces: list[dict[str, Any]] = []
    for index, panel in enumerate(panels):
        axes = axis_refs(index // cols + 1, index % cols + 1, cols)
        first = index == 0
        traces.append(
            {
                "type": "scatter",
                "x": list(panel.x),
                "y": list(panel.y),
                "mode": "lines+markers",
                "name": labels["value"],
                "line": {"color": LINE, "width": 2},
                "marker": {"size": 7},
                "legendgroup": "value",
                "showlegend": first,
                "hovertemplate": f"%{{x}}: %{{y}}{panel.unit}<extra></extra>",
                **axes,
            }
        )
        for part, months, level, colour in (
            ("before", panel.before, panel.before_level, TARGET),
            ("after", panel.after, panel.after_level, panel.colour),
        ):
            if level is None or not months:
                continue
            traces.append(
                {
                    "type": "scatter",
                    "x": list(months),
                    "y": [level] * len(months),
                    "mode": "lines",
                    "name": labels[part],
                    "line": {"color": colour, "width": 3, "dash": "dash"},
                    "legendgroup": part,
                    "showlegend": first,
                    "hovertemplate": f"{labels[part]}: %{{y}}{panel.unit}<extra></extra>",
                    **axes,
                }
            )
        if panel.action in panel.x:
            traces.append(
                {
                    "type": "scatter",
                    "x": [panel.action, panel.action],
                    "y": [min(panel.y), max(panel.y)],
                    "mode": "lines",
                    "name": labels["action"],
                    "line": {"color": STATUS_COLOURS["red"], "width": 1, "dash": "dot"},
                    "legendgroup": "action",
                    "showlegend": first,
                    "hoverinfo": "skip",
                    **axes,
                }
            )
    for axis in _axes(layout, "x"):
        axis.update(tickangle=-45, tickfont={"size": 9}, type="category")
    for axis in _axes(layout, "y"):
        axis.update(tickfont={"size": 9})
    return figure(traces, layout, title, height=max(320, rows * 260 + 100))
