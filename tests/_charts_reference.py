"""The chart factories as they were built before 0.1.x's single-construction figures.

Kept only as the reference ``tests/test_charts_fast.py`` compares the current
factories with: one ``add_trace`` / ``update_*`` call at a time on a figure from
``go.Figure()`` or ``make_subplots``, exactly as plotly documents it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qmsnb import charts
from qmsnb.analysis.rca import LOWER_BONES, ROW_PX, UPPER_BONES, bone_label, fishbone_layout, wrap
from qmsnb.display import STATUS_COLOURS, escape

FONT = "Noto Sans CJK SC, Source Han Sans SC, PingFang SC, Microsoft YaHei, Arial, sans-serif"
LINE = "#1a73e8"
TARGET = "#616161"
LIMIT = "#9e9e9e"


def style(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """Apply the house style."""
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
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[p.title for p in panels],
        vertical_spacing=min(0.12, 0.6 / max(rows, 1)),
        horizontal_spacing=0.07,
    )
    for index, panel in enumerate(panels):
        row, col = index // cols + 1, index % cols + 1
        first = index == 0
        colours = [STATUS_COLOURS.get(s, LINE) for s in panel.status]
        if panel.lower is not None and panel.upper is not None:
            fig.add_trace(
                go.Scatter(
                    x=list(panel.x),
                    y=list(panel.upper),
                    mode="lines",
                    line={"color": LIMIT, "width": 1, "shape": "hvh", "dash": "dot"},
                    name=labels["limits"],
                    legendgroup="limits",
                    showlegend=first,
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=list(panel.x),
                    y=list(panel.lower),
                    mode="lines",
                    line={"color": LIMIT, "width": 1, "shape": "hvh", "dash": "dot"},
                    name=labels["limits"],
                    legendgroup="limits",
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
        if panel.centre is not None:
            fig.add_trace(
                go.Scatter(
                    x=list(panel.x),
                    y=[panel.centre] * len(panel.x),
                    mode="lines",
                    line={"color": LIMIT, "width": 1},
                    name=labels["centre"],
                    legendgroup="centre",
                    showlegend=first,
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
        if panel.target is not None:
            fig.add_trace(
                go.Scatter(
                    x=list(panel.x),
                    y=[panel.target] * len(panel.x),
                    mode="lines",
                    line={"color": TARGET, "width": 1.5, "dash": "dash"},
                    name=labels["target"],
                    legendgroup="target",
                    showlegend=first,
                    hovertemplate=f"{labels['target']}: %{{y:.2f}}{panel.unit}<extra></extra>",
                ),
                row=row,
                col=col,
            )
        fig.add_trace(
            go.Scatter(
                x=list(panel.x),
                y=list(panel.y),
                mode="lines+markers",
                line={"color": LINE, "width": 2},
                marker={"color": colours, "size": 8, "line": {"color": "white", "width": 1}},
                name=labels["value"],
                legendgroup="value",
                showlegend=first,
                hovertemplate=f"%{{x}}: %{{y:.2f}}{panel.unit}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        if panel.signals is not None and any(panel.signals):
            xs = [x for x, s in zip(panel.x, panel.signals, strict=True) if s]
            ys = [y for y, s in zip(panel.y, panel.signals, strict=True) if s]
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="markers",
                    marker={
                        "symbol": "circle-open",
                        "size": 15,
                        "color": STATUS_COLOURS["red"],
                        "line": {"width": 2},
                    },
                    name=labels["signal"],
                    legendgroup="signal",
                    showlegend=not any(
                        getattr(t, "legendgroup", None) == "signal" for t in fig.data
                    ),
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
    fig.update_annotations(font={"size": 12, "family": FONT})
    fig.update_xaxes(tickangle=-45, tickfont={"size": 9})
    fig.update_yaxes(tickfont={"size": 9}, ticksuffix=panels[0].unit if panels else "")
    return style(fig, title, height=max(300, rows * panel_height + 90))


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
    fig = go.Figure(
        go.Heatmap(
            z=codes,
            x=list(columns),
            y=list(rows),
            zmin=0,
            zmax=len(order),
            colorscale=scale,
            showscale=False,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 11, "color": "white"},
            customdata=label_grid,
            hovertemplate="%{y} · %{x}<br>%{text} (%{customdata})<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    fig.update_xaxes(side="bottom", tickangle=-40, automargin=True)
    fig.update_yaxes(autorange="reversed", automargin=True)
    return style(fig, title, height=max(360, 38 * len(rows) + 260))


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
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=list(x),
            y=list(y),
            name=labels["value"],
            marker={"color": [STATUS_COLOURS.get(s, LINE) for s in status]},
            hovertemplate=f"%{{x}}: %{{y:.2f}}{unit}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(x),
            y=list(target),
            mode="markers",
            name=labels["target"],
            marker={"symbol": "line-ew-open", "size": 28, "color": TARGET, "line": {"width": 3}},
            hovertemplate=f"{labels['target']}: %{{y:.2f}}{unit}<extra></extra>",
        )
    )
    fig.update_yaxes(ticksuffix=unit)
    return style(fig, title, height=380)


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
    fig = go.Figure()
    for index, (name, values) in enumerate(series.items()):
        marker = {"color": colours[index]} if colours and index < len(colours) else {}
        fig.add_trace(
            go.Bar(
                x=list(x),
                y=list(values),
                name=name,
                marker=marker,
                hovertemplate=f"{name} · %{{x}}: %{{y}}<extra></extra>",
            )
        )
    for index, (name, values) in enumerate((lines or {}).items()):
        fig.add_trace(
            go.Scatter(
                x=list(x),
                y=list(values),
                name=name,
                mode="lines+markers",
                line={
                    "color": [TARGET, "#c62828", LINE][index % 3],
                    "width": 2,
                    "dash": "dot" if index else "solid",
                },
                hovertemplate=f"{name} · %{{x}}: %{{y}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(tickangle=0, tickfont={"size": 10})
    return style(fig, title, height=380)


def count_heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    counts: np.ndarray,
    title: str,
    hover_label: str,
) -> go.Figure:
    """A grid of counts (e.g. audits per department and month), white at zero."""
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=list(columns),
            y=list(rows),
            zmin=0,
            zmax=max(1, int(np.max(counts)) if counts.size else 1),
            colorscale=[[0, "#ffffff"], [0.001, "#e8f0fe"], [1, LINE]],
            showscale=False,
            text=np.where(counts > 0, counts.astype(str), ""),
            texttemplate="%{text}",
            textfont={"size": 11},
            hovertemplate=f"%{{y}} · %{{x}}<br>{hover_label}: %{{z}}<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    fig.update_xaxes(side="top")
    fig.update_yaxes(autorange="reversed")
    return style(fig, title, height=max(260, 34 * len(rows) + 150))


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
    fig = go.Figure()
    for (name, values), colour in zip(series.items(), colours, strict=True):
        if not any(values):
            continue
        common = {"name": name, "marker": {"color": colour}}
        if horizontal:
            fig.add_trace(
                go.Bar(
                    y=list(categories),
                    x=list(values),
                    orientation="h",
                    hovertemplate="%{y}: %{x}<extra>" + name + "</extra>",
                    **common,
                )
            )
        else:
            fig.add_trace(
                go.Bar(
                    x=list(categories),
                    y=list(values),
                    hovertemplate="%{x}: %{y}<extra>" + name + "</extra>",
                    **common,
                )
            )
    fig.update_layout(barmode="stack")
    if horizontal:
        fig.update_yaxes(autorange="reversed", automargin=True)
        fig.update_xaxes(dtick=1)
        return style(fig, title, height=max(280, 26 * len(categories) + 140))
    fig.update_yaxes(dtick=1)
    return style(fig, title, height=380)


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
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=[p.title for p in panels],
        horizontal_spacing=0.12,
    )
    for index, panel in enumerate(panels, start=1):
        palette = sorted({str(c) for c in panel.colours.ravel()})
        code = {c: i for i, c in enumerate(palette)}
        z = np.array([[code[str(c)] for c in row] for row in panel.colours], dtype=float)
        n = len(palette)
        scale = []
        for i, colour in enumerate(palette):
            scale += [[i / n, colour], [(i + 1) / n, colour]]
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=list(panel.columns),
                y=list(panel.rows),
                zmin=-0.5,
                zmax=n - 0.5,
                colorscale=scale,
                showscale=False,
                xgap=3,
                ygap=3,
                customdata=panel.hover,
                hovertemplate="%{customdata}<extra></extra>",
            ),
            row=1,
            col=index,
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
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    text=texts,
                    mode="text",
                    hoverinfo="skip",
                    showlegend=False,
                    textfont={"size": 14, "color": colours, "family": FONT},
                ),
                row=1,
                col=index,
            )
        fig.update_xaxes(
            title_text=panel.column_title, type="category", side="bottom", row=1, col=index
        )
        fig.update_yaxes(
            title_text=panel.row_title, type="category", autorange="reversed", row=1, col=index
        )
    fig.update_annotations(font={"size": 13, "family": FONT})
    rows = max(len(p.rows) for p in panels) if panels else 5
    return style(fig, title, height=max(380, 42 * rows + 170))


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
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[p.title for p in panels],
        vertical_spacing=min(0.18, 0.7 / max(rows, 1)),
        horizontal_spacing=0.08,
    )
    for index, panel in enumerate(panels):
        row, col = index // cols + 1, index % cols + 1
        first = index == 0
        fig.add_trace(
            go.Scatter(
                x=list(panel.x),
                y=list(panel.y),
                mode="lines+markers",
                name=labels["value"],
                line={"color": LINE, "width": 2},
                marker={"size": 7},
                legendgroup="value",
                showlegend=first,
                hovertemplate=f"%{{x}}: %{{y}}{panel.unit}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        for part, months, level, colour in (
            ("before", panel.before, panel.before_level, TARGET),
            ("after", panel.after, panel.after_level, panel.colour),
        ):
            if level is None or not months:
                continue
            fig.add_trace(
                go.Scatter(
                    x=list(months),
                    y=[level] * len(months),
                    mode="lines",
                    name=labels[part],
                    line={"color": colour, "width": 3, "dash": "dash"},
                    legendgroup=part,
                    showlegend=first,
                    hovertemplate=f"{labels[part]}: %{{y}}{panel.unit}<extra></extra>",
                ),
                row=row,
                col=col,
            )
        if panel.action in panel.x:
            fig.add_trace(
                go.Scatter(
                    x=[panel.action, panel.action],
                    y=[min(panel.y), max(panel.y)],
                    mode="lines",
                    name=labels["action"],
                    line={"color": STATUS_COLOURS["red"], "width": 1, "dash": "dot"},
                    legendgroup="action",
                    showlegend=first,
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
    fig.update_annotations(font={"size": 12, "family": FONT})
    fig.update_xaxes(tickangle=-45, tickfont={"size": 9}, type="category")
    fig.update_yaxes(tickfont={"size": 9})
    return style(fig, title, height=max(320, rows * 260 + 100))


# --- qmsnb.analysis.rca's figures, as they were built ----------------------------
def fishbone_figure(
    causes: pd.DataFrame,
    problem: str,
    lang: str,
    title: str | None = None,
    evidence_label: str = "evidence",
) -> go.Figure:
    """An Ishikawa diagram: the problem at the head, the six bones labelled in zh
    and en, each cause on its bone with its evidence count.

    Each bone is one scatter trace named after it (``meta`` = the bone id), its
    points the causes (``customdata`` = cause text, evidence count); text is
    wrapped and cut to two lines with the full text on hover. The diagram grows
    taller with the fullest bone, so 30+ causes stay legible.

    Args:
        causes: rows with ``bone``, ``cause``, ``evidence_count``.
    """
    points, height = fishbone_layout(causes)
    fig = go.Figure()
    spine_end = 3.35
    line = {"color": "#455a64", "width": 3}
    fig.add_trace(
        go.Scatter(
            x=[0.3, spine_end],
            y=[0, 0],
            mode="lines",
            line=line,
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for bones, sign in ((UPPER_BONES, 1), (LOWER_BONES, -1)):
        for k, bone in enumerate(bones):
            junction = k + 1.0
            fig.add_trace(
                go.Scatter(
                    x=[junction - 0.5, junction],
                    y=[sign * height, 0],
                    mode="lines",
                    line={"color": "#607d8b", "width": 2},
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
            fig.add_annotation(
                x=junction - 0.5,
                y=sign * (height + 0.55),
                text=f"<b>{escape(bone_label(bone, lang))}</b>",
                showarrow=False,
                font={"size": 14, "color": "#263238"},
                bgcolor="#eceff1",
                bordercolor="#90a4ae",
                borderpad=4,
            )
            mine = [p for p in points if p.bone == bone]
            fig.add_trace(
                go.Scatter(
                    x=[p.x for p in mine],
                    y=[p.y for p in mine],
                    mode="markers+text",
                    name=bone_label(bone, lang),
                    meta=bone,
                    marker={
                        "size": [8 + min(10, math.sqrt(max(p.evidence, 0))) for p in mine],
                        "color": charts.LINE,
                        "line": {"color": "white", "width": 1},
                    },
                    text=[f"{wrap(p.cause)} <b>({p.evidence})</b>" for p in mine],
                    textposition="middle left",
                    textfont={"size": 11, "color": "#37474f"},
                    customdata=[[p.cause, p.evidence] for p in mine],
                    hovertemplate=(
                        "%{customdata[0]}<br>"
                        + escape(evidence_label)
                        + ": %{customdata[1]}<extra>"
                        + escape(bone_label(bone, lang))
                        + "</extra>"
                    ),
                    showlegend=False,
                )
            )
    fig.add_annotation(
        x=spine_end,
        y=0,
        xanchor="left",
        text=f"<b>{wrap(problem, 22, 5)}</b>",
        showarrow=False,
        align="left",
        font={"size": 13, "color": "#ffffff"},
        bgcolor=STATUS_COLOURS["red"],
        bordercolor=STATUS_COLOURS["red"],
        borderpad=8,
    )
    fig.update_xaxes(visible=False, range=[-0.75, 4.25], fixedrange=True)
    fig.update_yaxes(visible=False, range=[-height - 1.1, height + 1.1], fixedrange=True)
    fig = charts.style(fig, title, height=int(max(460, 2 * (height + 1.1) * ROW_PX + 90)))
    fig.update_layout(margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10})
    return fig


def pareto_figure(
    rows: pd.DataFrame, labels: Sequence[str], title: str, cut: float, names: Mapping[str, str]
) -> go.Figure:
    """Bars (vital few dark, the rest light) with the cumulative share line and the cut.

    Args:
        rows: :func:`pareto` output.
        labels: one axis label per row.
        names: translated ``tickets``, ``cumulative``, ``vital``, ``others``, ``cut``.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    labels = list(labels)
    for vital, colour, name in (
        (True, charts.LINE, names["vital"]),
        (False, "#bdbdbd", names["others"]),
    ):
        mask = (rows["vital"] == vital).to_numpy()
        if not mask.any():
            continue
        part = rows[mask]
        fig.add_trace(
            go.Bar(
                x=[label for label, m in zip(labels, mask, strict=True) if m],
                y=part["tickets"].tolist(),
                marker={"color": colour},
                name=name,
                customdata=part["share"].round(1).tolist(),
                hovertemplate="%{x}: %{y} (%{customdata}%)<extra></extra>",
                text=part["tickets"].tolist(),
                textposition="outside",
            ),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(
            x=list(labels),
            y=rows["cumulative"].round(1).tolist(),
            mode="lines+markers",
            name=names["cumulative"],
            line={"color": STATUS_COLOURS["red"], "width": 2},
            hovertemplate="%{x}: %{y:.1f}%<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.add_trace(
        go.Scatter(
            x=list(labels),
            y=[cut] * len(rows),
            mode="lines",
            name=names["cut"],
            line={"color": charts.TARGET, "width": 1, "dash": "dash"},
            hoverinfo="skip",
        ),
        secondary_y=True,
    )
    vital = int(rows["vital"].sum())
    if 0 < vital < len(rows):
        fig.add_vrect(
            x0=-0.5, x1=vital - 0.5, fillcolor="#e8f0fe", opacity=0.5, line_width=0, layer="below"
        )
    fig.update_yaxes(title_text=names["tickets"], secondary_y=False, rangemode="tozero")
    fig.update_yaxes(
        range=[0, 105],
        tickmode="linear",
        tick0=0,
        dtick=20,
        ticksuffix="%",
        secondary_y=True,
        showgrid=False,
    )
    fig.update_xaxes(tickangle=-40, automargin=True, categoryorder="array", categoryarray=labels)
    fig = charts.style(fig, title, height=440)
    fig.update_layout(
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
        margin={"b": 110},
    )
    return fig
