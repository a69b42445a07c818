"""Charts built in one construction show the same figures as built call by call.

``tests/_charts_reference.py`` holds the factories as they were written with
``add_trace`` / ``update_*`` (plotly's documented way, and slow); every factory
of :mod:`qmsnb.charts` must give the same figure JSON for the same input: same
traces, same axes and annotations, same style (key order aside).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from qmsnb import charts
from qmsnb.analysis import rca
from tests import _charts_reference as reference

MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]
LABELS = {"value": "值", "target": "目标", "centre": "中心线", "limits": "控制限", "signal": "信号"}
EFFECT_LABELS = {"value": "v", "before": "before", "after": "after", "action": "done"}


def _panel(i: int, **kw: Any) -> charts.Panel:
    rng = np.random.default_rng(i)
    base: dict[str, Any] = {
        "title": f"KPI {i}" if i != 2 else "",  # an untitled panel: no annotation
        "x": MONTHS,
        "y": list(rng.random(12) * 100),
        "status": ["green", "red", "yellow", "no_data"] * 3,
    }
    return charts.Panel(**{**base, **kw})


PANELS = [
    _panel(
        0,
        target=50.0,
        centre=40.0,
        lower=[10.0] * 12,
        upper=[90.0] * 12,
        signals=[False] * 11 + [True],
    ),
    _panel(1, signals=[True] + [False] * 11),
    _panel(2, target=30.0, signals=[False] * 12),
    _panel(3, unit=""),
    *[_panel(i) for i in range(4, 8)],
]


def _heat(title: str, row_title: str = "", column_title: str = "") -> charts.HeatPanel:
    return charts.HeatPanel(
        title=title,
        rows=["5", "4"],
        columns=["1", "2"],
        counts=np.array([[1, 0], [2, 0]]),
        colours=np.array([["#d32f2f", "#f6cfcf"], ["#388e3c", "#ffffff"]]),
        hover=np.array([["a<br>b", "c"], ["d", "e"]]),
        row_title=row_title,
        column_title=column_title,
    )


def _effect(i: int, **kw: Any) -> charts.BeforeAfter:
    base: dict[str, Any] = {
        "title": f"risk {i}",
        "x": MONTHS[:6],
        "y": [3.0, 2.0, 4.0, 2.0, 1.0, 0.0],
        "action": MONTHS[2],
        "before": MONTHS[:2],
        "after": MONTHS[3:6],
        "before_level": 3.0,
        "after_level": 1.0,
        "colour": "#388e3c",
    }
    return charts.BeforeAfter(**{**base, **kw})


STATUS = np.array([["red", "green", "no_data"], ["yellow", "small_base", "other"]])
TEXT = np.array([["81%", "92%", ""], ["85%", "n<30", "?"]])
CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("small_multiples", (PANELS, "Trends", LABELS), {}),
    ("small_multiples", (PANELS[:1], "", LABELS), {"columns": 2}),
    ("small_multiples", (PANELS[:5], "Trends", LABELS), {"columns": 2, "panel_height": 200}),
    ("status_heatmap", (["a", "b"], ["c1", "c2", "c3"], STATUS, TEXT, "S", {"red": "R"}), {}),
    ("status_heatmap", (["a", "b"], ["c1", "c2", "c3"], STATUS, TEXT, "", {}), {}),
    ("bar_with_target", (["a", "b"], [1.0, 2.0], ["red", "?"], [1.5, None], "B", LABELS), {}),
    ("bar_with_target", (["a"], [1.0], ["green"], [2.0], "B", LABELS), {"unit": ""}),
    ("period_bars", (MONTHS[:3], {"s1": [1, 2, 3], "s2": [3, 2, 1]}, "P"), {}),
    (
        "period_bars",
        (MONTHS[:3], {"s1": [1, 2, 3], "s2": [3, 2, 1], "s3": [1, 1, 1]}, "P"),
        {
            "colours": ["#ff0000", "#00ff00"],
            "lines": {"l1": [1, 2, 3], "l2": [2, 2, 2], "l3": [0, 1, 0], "l4": [5, 5, 5]},
        },
    ),
    (
        "count_heatmap",
        (["a", "b"], ["m1", "m2", "m3"], np.array([[0, 1, 2], [3, 0, 0]]), "C", "n"),
        {},
    ),
    ("count_heatmap", ([], [], np.zeros((0, 0), dtype=int), "C", "n"), {}),
    (
        "stacked_bars",
        (
            ["a", "b", "c"],
            {"x": [1, 0, 2], "y": [0, 0, 0], "z": [1, 1, 1]},
            ["#111", "#222", "#333"],
            "S",
        ),
        {},
    ),
    (
        "stacked_bars",
        (
            ["a", "b", "c"],
            {"x": [1, 0, 2], "y": [0, 0, 0], "z": [1, 1, 1]},
            ["#111", "#222", "#333"],
            "S",
        ),
        {"horizontal": True},
    ),
    ("risk_heatmap", ([_heat("inherent", "likelihood", "severity"), _heat("residual")], "R"), {}),
    ("risk_heatmap", ([_heat("one")], "R"), {}),
    ("risk_heatmap", ([_heat(""), _heat("b"), _heat("c")], ""), {}),
    (
        "before_after",
        (
            [
                _effect(0),
                _effect(1, action="2025-01", before_level=None),
                _effect(2, after=[]),
                _effect(3, unit=""),
            ],
            "E",
            EFFECT_LABELS,
        ),
        {},
    ),
    ("before_after", ([_effect(0)], "E", EFFECT_LABELS), {"columns": 3}),
]


def _spec(fig: Any) -> dict[str, Any]:
    return json.loads(pio.to_json(fig, validate=False))


@pytest.mark.parametrize(("name", "args", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_factory_gives_the_figure_built_call_by_call(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    built = getattr(charts, name)(*args, **kwargs)
    expected = getattr(reference, name)(*args, **kwargs)
    assert _spec(built) == _spec(expected)


def test_grid_layout_is_a_fresh_copy_with_the_titles() -> None:
    first = charts.grid_layout(2, 2, ["a", "", "c"], 0.1, 0.1)
    first["annotations"][0]["text"] = "changed"
    first["xaxis"]["domain"] = [0, 0]
    again = charts.grid_layout(2, 2, ["x", "", "z"], 0.1, 0.1)
    assert [n["text"] for n in again["annotations"]] == ["x", "z"]
    assert again["xaxis"]["domain"] != [0, 0]


def test_figure_lays_entries_over_the_house_style() -> None:
    fig = charts.figure(
        [{"type": "bar", "x": ["a"], "y": [1]}],
        {"legend": {"y": -0.3}, "margin": {"b": 90}},
        "Title",
        height=400,
    )
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y == -0.3
    assert fig.layout.margin.b == 90 and fig.layout.margin.l == 50
    assert fig.layout.title.text == "Title" and fig.layout.height == 400
    assert fig.layout.template.layout.plot_bgcolor == "white"


def _fishbone_causes() -> pd.DataFrame:
    rows = [
        {
            "bone": bone,
            "cause": f"{bone} <原因> {i}:设备和流程都需要再核实一下的长原因",
            "evidence_count": i,
        }
        for bone, n in {"people": 4, "machine": 1, "method": 3, "measurement": 2}.items()
        for i in range(n)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("title", [None, "鱼骨图"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_fishbone_figure_is_the_one_built_call_by_call(title: str | None, lang: str) -> None:
    causes = _fishbone_causes()
    for frame in (causes, causes.head(0)):
        args = (frame, "宽带断网投诉激增 <b>", lang, title, "证据")
        assert _spec(rca.fishbone_figure(*args)) == _spec(reference.fishbone_figure(*args))


@pytest.mark.parametrize("cut", [50.0, 80.0, 100.0])
def test_pareto_figure_is_the_one_built_call_by_call(cut: float) -> None:
    counts = pd.DataFrame({"category": list("abcdefg"), "tickets": [40, 25, 12, 9, 7, 5, 2]})
    rows = rca.pareto(counts, "category", cut)
    names = {k: k.title() for k in ("tickets", "cumulative", "vital", "others", "cut")}
    labels = [f"<{c}>" for c in rows["category"]]
    for title in ("Pareto", ""):
        args = (rows, labels, title, cut, names)
        assert _spec(rca.pareto_figure(*args)) == _spec(reference.pareto_figure(*args))
    # the share axis reads in round steps (plotly would sync it to the bars' ticks)
    share_axis = _spec(rca.pareto_figure(*args))["layout"]["yaxis2"]
    assert (share_axis["tickmode"], share_axis["dtick"], share_axis["ticksuffix"]) == (
        "linear",
        20,
        "%",
    )


def test_the_house_template_is_plotlys_own_and_the_rest_is_still_validated() -> None:
    fig = charts.figure([{"type": "scatter", "x": [1], "y": [2]}], {})
    assert _spec(fig)["layout"]["template"] == pio.templates["plotly_white"].to_plotly_json()
    # the template is shared unvalidated; anything we write is still checked
    with pytest.raises(ValueError, match="colour"):
        charts.figure([{"type": "scatter", "x": [1], "y": [2]}], {"xaxis": {"colour": "red"}})
    assert fig._layout_obj._validate is True
