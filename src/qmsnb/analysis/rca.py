"""Root-cause analysis of complaints (投诉溯源): hotspots, association rules,
fishbone, five whys, and whether the fix held.

The sections of ``notebooks/root_cause.ipynb`` (per department and for the
organisation): summary and narrative; hotspots (Pareto of categories and
subcategories with the vital few marked, month-on-month rises beyond the yellow
alert threshold, batch complaints, escalations and repeat complainants);
association rules between subcategories that occur together for one customer
(or day); fishbone diagrams (人机料法环测) drawn from the ``fishbone_causes``
register; five-whys chains from the ``five_whys`` register, drawn as chains, with
gaps and chains that stop at a person named in words; and, for every chain whose
action is completed, the complaint count of its category before and after with a
verdict: held / did not hold / not enough data yet.

The data are the prepared tables ``complaint_counts`` (per month × department ×
category × subcategory over the trend window) and ``complaint_tickets`` (the
month's tickets). Rules and thresholds come from ``params/rca.yaml``
(:class:`~qmsnb.config.RcaParams`).

Pure computations take frames and plain parameters: :func:`pareto`,
:func:`month_on_month`, :func:`batches`, :func:`escalations`,
:func:`repeat_complainants`, :func:`pair_rules`, :func:`fishbone_figure`,
:func:`chain_issues`, :func:`fix_check`. Section functions wrap them into
:class:`~qmsnb.display.Section` objects.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from qmsnb import charts
from qmsnb.config import ORGANISATION, FixCheckRules, Params
from qmsnb.context import PeriodContext
from qmsnb.contract import BONES, HOTSPOT_KINDS, MAX_WHYS
from qmsnb.display import (
    STATUS_COLOURS,
    Col,
    Html,
    Section,
    badge,
    banner,
    bullet_list,
    escape,
    table,
)
from qmsnb.i18n import fmt_change, fmt_number, period_label, period_short
from qmsnb.periods import Period
from qmsnb.stats import xmr_chart

#: Verdicts of the fix check and the status colour each is shown in.
VERDICTS = {"held": "green", "not_held": "red", "not_enough": "no_data"}
#: Bones drawn above the spine (left to right) and below it.
UPPER_BONES = ("people", "machine", "material")
LOWER_BONES = ("method", "environment", "measurement")
#: Fishbone layout: pixels per cause row, and the width of a cause label (display
#: columns: a CJK character counts two) before it wraps, and its most lines.
ROW_PX = 34
LABEL_COLUMNS = 26
LABEL_LINES = 2
#: Longest text shown in a table cell for a ticket's complaint text.
SAMPLE_CHARS = 40


# ---------------------------------------------------------------------------
# Scope and names
# ---------------------------------------------------------------------------
def in_scope(frame: pd.DataFrame, department: str) -> pd.DataFrame:
    """Rows of ``department`` (all rows for the organisation)."""
    if frame.empty or department == ORGANISATION:
        return frame
    return frame[frame["department"] == department]


@dataclass(frozen=True)
class Names:
    """Complaint category and subcategory names in one language."""

    categories: dict[str, str]
    subcategories: dict[str, str]
    parent: dict[str, str]

    @classmethod
    def of(cls, params: Params, lang: str) -> Names:
        cats, subs, parent = {}, {}, {}
        for cat in params.organisation.complaint_categories:
            cats[cat.id] = cat.name(lang)
            for sub_id, names in cat.subcategories.items():
                subs[sub_id] = names(lang)
                parent[sub_id] = cat.id
        return cls(cats, subs, parent)

    def category(self, cat: Any) -> str:
        return self.categories.get(str(cat), str(cat))

    def subcategory(self, sub: Any) -> str:
        if sub is None or (isinstance(sub, float) and math.isnan(sub)) or sub is pd.NA or sub == "":
            return "–"
        return self.subcategories.get(str(sub), str(sub))


def bone_label(bone: str, lang: str, short: bool = False) -> str:
    """``人 People`` (both, as fishbones are read in both), or one of them."""
    zh, en = BONES.get(bone, (bone, bone))
    if short:
        return zh if lang == "zh" else en
    return f"{zh} {en}" if lang == "en" else f"{zh}({en})"


def hotspot_label(kind: Any, lang: str) -> str:
    zh, en = HOTSPOT_KINDS.get(str(kind), (str(kind), str(kind)))
    return zh if lang == "zh" else en


def mask_customer(value: Any) -> str:
    """A customer number with its middle hidden: ``13912345678`` → ``139****5678``."""
    text = "" if value is None or value is pd.NA else str(value).strip()
    if "*" in text:
        return text
    if len(text) >= 8:
        return f"{text[:3]}****{text[-4:]}"
    return f"{text[:1]}***" if text else ""


def _present(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value).strip() != ""


def _text(value: Any) -> str:
    return str(value).strip() if _present(value) else ""


# ---------------------------------------------------------------------------
# Hotspots: Pareto, month-on-month rises, batches, escalations, repeats
# ---------------------------------------------------------------------------
def pareto(frame: pd.DataFrame, by: str, cut: float = 80.0) -> pd.DataFrame:
    """Ticket counts ranked with share, cumulative share and the vital few.

    The vital few are the top rows up to and including the one whose cumulative
    share reaches ``cut`` percent (ties keep their first-seen order).

    Args:
        frame: rows with a ``by`` column and a ``tickets`` count.
        by: the column to group by (``category``, ``subcategory``).

    Returns:
        ``by``, ``tickets``, ``share`` (%), ``cumulative`` (%), ``vital`` (bool).
    """
    columns = [by, "tickets", "share", "cumulative", "vital"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    grouped = frame.groupby(by, sort=False)["tickets"].sum()
    grouped = grouped[grouped > 0].sort_values(ascending=False, kind="stable")
    total = grouped.sum()
    if total == 0:
        return pd.DataFrame(columns=columns)
    out = grouped.rename("tickets").reset_index()
    out["tickets"] = out["tickets"].astype(int)
    out["share"] = 100.0 * out["tickets"] / total
    out["cumulative"] = out["share"].cumsum()
    before = out["cumulative"] - out["share"]
    out["vital"] = before < cut - 1e-9
    return out[columns]


def month_on_month(
    counts: pd.DataFrame, period: str, by: Sequence[str], months: Sequence[str] | None = None
) -> pd.DataFrame:
    """Tickets this month and the month before, per ``by`` group, and the change.

    Args:
        counts: ``complaint_counts`` rows (period, by..., tickets).
        months: the months that had a complaints export; the previous month is
            compared only when it is one of them (else ``previous`` is NaN).

    Returns:
        ``by`` columns, ``now``, ``previous``, ``change`` (% rise; NaN when the
        previous month had none or no data), sorted by ``now`` descending.
    """
    previous = str(Period.parse(period).shift(-1))
    has_previous = months is None or previous in months
    rows = counts[counts["period"].isin([period, previous])]
    keys = list(by)
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "now", "previous", "change"])
    table_ = rows.pivot_table(
        index=keys, columns="period", values="tickets", aggfunc="sum", fill_value=0
    )
    table_ = table_.reindex(columns=[period, previous], fill_value=0)
    out = pd.DataFrame(index=table_.index)
    out["now"] = table_[period].astype(int)
    out["previous"] = table_[previous].astype(float) if has_previous else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        change = 100.0 * (out["now"] / out["previous"] - 1.0)
    out["change"] = change.where(out["previous"] > 0)
    return (
        out.reset_index().sort_values("now", ascending=False, kind="stable").reset_index(drop=True)
    )


def surges(mom: pd.DataFrame, percent: float, min_tickets: int) -> pd.DataFrame:
    """Rows of :func:`month_on_month` that rose beyond ``percent`` (the yellow alert).

    A group needs at least ``min_tickets`` this month; a group that had none the
    month before (but data for it) and reaches ``min_tickets`` counts as a rise too.
    """
    if mom.empty:
        return mom.assign(new=pd.Series(dtype=bool))
    enough = mom["now"] >= min_tickets
    risen = mom["change"] > percent
    new = (mom["previous"] == 0) & enough
    out = mom[enough & (risen | new)].copy()
    out["new"] = out["previous"] == 0
    return out.sort_values(["new", "change"], ascending=[True, False], na_position="last")


def _month_hours(period: str) -> float:
    p = Period.parse(period)
    return (pd.Timestamp(p.shift(1).start) - pd.Timestamp(p.start)).total_seconds() / 3600


def batches(
    tickets: pd.DataFrame,
    period: str,
    window_hours: int = 48,
    min_tickets: int = 20,
    factor: float = 3.0,
) -> pd.DataFrame:
    """Batch complaints: for each subcategory, its densest window of ``window_hours``
    (half-open; of equally dense windows the tightest),
    kept when it holds at least ``min_tickets`` tickets and at least ``factor``
    times what the subcategory's monthly volume would put in such a window.

    Returns:
        ``category``, ``subcategory``, ``start``, ``end`` (first and last ticket
        of the window), ``tickets``, ``expected``, ``month_tickets``,
        ``customers`` (distinct), ``samples`` (up to two most frequent texts).
    """
    columns = [
        "category",
        "subcategory",
        "start",
        "end",
        "tickets",
        "expected",
        "month_tickets",
        "customers",
        "samples",
    ]
    if tickets.empty:
        return pd.DataFrame(columns=columns)
    frame = tickets.dropna(subset=["created_at", "subcategory"])
    window = pd.Timedelta(hours=window_hours)
    hours = _month_hours(period)
    rows = []
    for (cat, sub), group in frame.groupby(["category", "subcategory"], observed=True):
        group = group.sort_values("created_at")
        times = group["created_at"].to_numpy(dtype="datetime64[ns]")
        ends = np.searchsorted(times, times + window.to_timedelta64(), side="left")
        sizes = ends - np.arange(len(times))
        count = int(sizes.max())
        # of the windows holding the most tickets, the tightest one
        spans = times[ends - 1] - times
        best = int(np.argmin(np.where(sizes == count, spans, np.timedelta64(2**62, "ns"))))
        expected = len(times) * min(window_hours, hours) / hours
        if count < min_tickets or count < factor * expected:
            continue
        inside = group.iloc[best : best + count]
        texts = inside["text"].dropna().astype(str)
        samples = [t for t, _ in Counter(texts).most_common(2)]
        rows.append(
            {
                "category": cat,
                "subcategory": sub,
                "start": inside["created_at"].iloc[0],
                "end": inside["created_at"].iloc[-1],
                "tickets": count,
                "expected": expected,
                "month_tickets": len(times),
                "customers": int(inside["customer_id"].nunique()),
                "samples": samples,
            }
        )
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("tickets", ascending=False).reset_index(drop=True)


def escalations(tickets: pd.DataFrame) -> pd.DataFrame:
    """Escalated tickets per category and subcategory with their share.

    Returns:
        ``category``, ``subcategory``, ``tickets``, ``escalated``, ``rate`` (%),
        rows with at least one escalation, most escalations first.
    """
    columns = ["category", "subcategory", "tickets", "escalated", "rate"]
    if tickets.empty:
        return pd.DataFrame(columns=columns)
    frame = tickets.assign(
        escalated=tickets["escalated"].astype("boolean").fillna(False).astype(int),
        subcategory=tickets["subcategory"].astype("string").fillna(""),
    )
    out = (
        frame.groupby(["category", "subcategory"], observed=True)
        .agg(tickets=("ticket_id", "size"), escalated=("escalated", "sum"))
        .reset_index()
    )
    out = out[out["escalated"] > 0].copy()
    out["rate"] = 100.0 * out["escalated"] / out["tickets"]
    return out.sort_values(
        ["escalated", "rate", "category", "subcategory"], ascending=[False, False, True, True]
    ).reset_index(drop=True)[columns]


def repeat_complainants(tickets: pd.DataFrame, min_tickets: int = 2) -> pd.DataFrame:
    """Customers with at least ``min_tickets`` tickets in the month.

    Returns:
        ``customer_id``, ``tickets``, ``subcategories`` (in order of first
        ticket, distinct), ``first``, ``last``, ``escalated`` (count), most
        tickets first.
    """
    columns = ["customer_id", "tickets", "subcategories", "first", "last", "escalated"]
    if tickets.empty:
        return pd.DataFrame(columns=columns)
    frame = tickets.dropna(subset=["customer_id"]).sort_values("created_at")
    sizes = frame.groupby("customer_id").size()
    repeat = sizes[sizes >= min_tickets].index
    part = frame[frame["customer_id"].isin(repeat)]
    if part.empty:
        return pd.DataFrame(columns=columns)
    # whole-column group-bys (a month of a provincial centre has thousands of repeat
    # complainants: a Python loop over the groups took seconds); groups keep the
    # tickets in time order, so first / last / distinct subcategories are as listed
    part = part.assign(
        subcategory=part["subcategory"].astype("string").fillna(""),
        escalated=part["escalated"].astype("boolean").fillna(False),
    )
    groups = part.groupby("customer_id")
    counts = groups.size()
    customers = counts.index
    first = part.drop_duplicates("customer_id", keep="first").set_index("customer_id")
    last = part.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    subs = (
        part.drop_duplicates(["customer_id", "subcategory"])
        .groupby("customer_id")["subcategory"]
        .agg(list)
    )
    escalated = groups["escalated"].sum()
    rows = [
        {
            "customer_id": customer,
            "tickets": int(n),
            "subcategories": list(s),
            "first": f,
            "last": la,
            "escalated": int(e),
        }
        for customer, n, s, f, la, e in zip(
            customers,
            counts.to_numpy(),
            subs.reindex(customers),
            first["created_at"].reindex(customers),
            last["created_at"].reindex(customers),
            escalated.reindex(customers).to_numpy(),
            strict=True,
        )
    ]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["tickets", "last"], ascending=[False, False]).reset_index(drop=True)


# ---------------------------------------------------------------------------
# Association rules between subcategories (tags)
# ---------------------------------------------------------------------------
BasketKey = Callable[[pd.DataFrame], pd.Series]
BASKETS: dict[str, BasketKey] = {}


def register_basket(name: str) -> Callable[[BasketKey], BasketKey]:
    """Add a way of grouping tickets into baskets (``params/rca.yaml: association.basket``)."""

    def deco(fn: BasketKey) -> BasketKey:
        BASKETS[name] = fn
        return fn

    return deco


@register_basket("customer")
def _by_customer(tickets: pd.DataFrame) -> pd.Series:
    return tickets["customer_id"].astype("string")


@register_basket("customer_day")
def _by_customer_day(tickets: pd.DataFrame) -> pd.Series:
    day = pd.to_datetime(tickets["created_at"]).dt.strftime("%Y-%m-%d")
    return tickets["customer_id"].astype("string") + "|" + day


@register_basket("day")
def _by_day(tickets: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(tickets["created_at"]).dt.strftime("%Y-%m-%d").astype("string")


def baskets(
    tickets: pd.DataFrame, kind: str = "customer", item: str = "subcategory"
) -> list[frozenset[str]]:
    """The tickets grouped into baskets of distinct items (``BASKETS[kind]``)."""
    if tickets.empty:
        return []
    frame = tickets.dropna(subset=[item])
    frame = frame[frame[item].astype(str) != ""]
    keys = BASKETS[kind](frame)
    ok = keys.notna()
    items = frame.loc[ok, item].astype(str)
    if items.empty:
        return []
    # one basket per key, in sorted key order (as a group-by gives them), built
    # from the distinct (key, item) pairs: iterating 600,000 groups took ~9 s
    key_codes, _ = pd.factorize(keys[ok].astype("string[pyarrow]").array, sort=True)
    item_codes, names = pd.factorize(items.to_numpy())
    width = np.int64(len(names))
    pairs = np.sort(np.asarray(key_codes, dtype=np.int64) * width + item_codes)
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
    owners = pairs // width
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    ends = np.r_[starts[1:], len(pairs)]
    values = np.asarray(names, dtype=object)[pairs % width].tolist()
    return [frozenset(values[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def pair_rules(
    transactions: Sequence[frozenset[str]],
    min_baskets: int = 3,
    min_support: float = 0.0,
    min_confidence: float = 0.0,
    min_lift: float = 0.0,
) -> pd.DataFrame:
    """Association rules A → B between pairs of items, computed exactly.

    Over all N baskets (single-item baskets included): support = baskets with A
    and B / N, confidence = baskets with A and B / baskets with A, lift =
    confidence / (baskets with B / N). Pairs are enough here (complaints of one
    customer rarely span more than two or three tags), so the counts are exact and
    no mining library is needed.

    Args:
        min_baskets: least baskets holding both; ``min_support`` and
            ``min_confidence`` in percent.

    Returns:
        ``antecedent``, ``consequent``, ``together``, ``antecedent_baskets``,
        ``consequent_baskets``, ``support`` (%), ``confidence`` (%), ``lift``,
        sorted by lift, then confidence.
    """
    columns = [
        "antecedent",
        "consequent",
        "together",
        "antecedent_baskets",
        "consequent_baskets",
        "support",
        "confidence",
        "lift",
    ]
    n = len(transactions)
    if n == 0:
        return pd.DataFrame(columns=columns)
    single: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for basket in transactions:
        single.update(basket)
        if len(basket) > 1:
            pairs.update(combinations(sorted(basket), 2))
    rows = []
    for (a, b), together in pairs.items():
        if together < min_baskets:
            continue
        for ante, cons in ((a, b), (b, a)):
            support = 100.0 * together / n
            confidence = 100.0 * together / single[ante]
            lift = (together / single[ante]) / (single[cons] / n)
            if support >= min_support and confidence >= min_confidence and lift >= min_lift:
                rows.append(
                    {
                        "antecedent": ante,
                        "consequent": cons,
                        "together": together,
                        "antecedent_baskets": single[ante],
                        "consequent_baskets": single[cons],
                        "support": support,
                        "confidence": confidence,
                        "lift": lift,
                    }
                )
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(
        ["lift", "confidence", "antecedent"], ascending=[False, False, True]
    ).reset_index(drop=True)


# ---------------------------------------------------------------------------
# Fishbone
# ---------------------------------------------------------------------------
def _width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def wrap(text: str, columns: int = LABEL_COLUMNS, lines: int = LABEL_LINES) -> str:
    """``text`` broken into lines of at most ``columns`` display columns (CJK = 2),
    at most ``lines`` lines (the last ends with … when cut); joined with ``<br>``.

    Latin text breaks at spaces when it can. The pieces are HTML-escaped (plotly
    renders a subset of HTML in text, so data must not bring its own tags).
    """
    out: list[str] = []
    current, used = "", 0
    words = re.findall(r"\S+\s*|\s+", text.strip())
    for word in words:
        w = sum(_width(c) for c in word.rstrip())
        if used + w <= columns:
            current += word
            used += sum(_width(c) for c in word)
            continue
        if current.strip():
            out.append(current.rstrip())
            current, used = "", 0
        for char in word:  # a word longer than a line (CJK text has no spaces)
            cw = _width(char)
            if used + cw > columns and current:
                out.append(current.rstrip())
                current, used = "", 0
            current += char
            used += cw
    if current.strip():
        out.append(current.rstrip())
    if len(out) > lines:
        out = out[:lines]
        last = out[-1]
        while last and sum(_width(c) for c in last) + 1 > columns:
            last = last[:-1]
        out[-1] = last + "…"
    return "<br>".join(escape(line) for line in out)


@dataclass(frozen=True)
class BonePoint:
    """Where one cause sits on the fishbone."""

    bone: str
    cause: str
    evidence: int
    x: float
    y: float


def fishbone_layout(causes: pd.DataFrame) -> tuple[list[BonePoint], float]:
    """Cause positions on the six bones, and the half-height of the diagram.

    Bones are slanted lines meeting the spine (y = 0) at x = 1, 2, 3 (people /
    method at 1, machine / environment at 2, material / measurement at 3), from
    (x − 0.5, ±H). Causes are spread evenly along their bone, most evidence
    nearest the spine, so the half-height H grows with the fullest bone.
    """
    counts = causes.groupby("bone").size() if not causes.empty else pd.Series(dtype=int)
    most = int(counts.max()) if len(counts) else 0
    height = float(max(4, most + 1))
    points: list[BonePoint] = []
    for bones, sign in ((UPPER_BONES, 1.0), (LOWER_BONES, -1.0)):
        for k, bone in enumerate(bones):
            rows = causes[causes["bone"] == bone] if not causes.empty else causes
            rows = rows.sort_values("evidence_count", ascending=True, kind="stable")
            junction = k + 1.0
            n = len(rows)
            for i, (_, row) in enumerate(rows.iterrows()):
                # i = 0 is farthest from the spine; rows are spaced one unit apart
                level = height - (height - 0.8) * (i + 0.5) / max(n, height - 1)
                x = junction - 0.5 * level / height
                points.append(
                    BonePoint(bone, str(row["cause"]), int(row["evidence_count"]), x, sign * level)
                )
    return points, height


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
    spine_end = 3.35
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": [0.3, spine_end],
            "y": [0, 0],
            "mode": "lines",
            "line": {"color": "#455a64", "width": 3},
            "hoverinfo": "skip",
            "showlegend": False,
        }
    ]
    notes: list[dict[str, Any]] = []
    for bones, sign in ((UPPER_BONES, 1), (LOWER_BONES, -1)):
        for k, bone in enumerate(bones):
            junction = k + 1.0
            traces.append(
                {
                    "type": "scatter",
                    "x": [junction - 0.5, junction],
                    "y": [sign * height, 0],
                    "mode": "lines",
                    "line": {"color": "#607d8b", "width": 2},
                    "hoverinfo": "skip",
                    "showlegend": False,
                }
            )
            notes.append(
                {
                    "x": junction - 0.5,
                    "y": sign * (height + 0.55),
                    "text": f"<b>{escape(bone_label(bone, lang))}</b>",
                    "showarrow": False,
                    "font": {"size": 14, "color": "#263238"},
                    "bgcolor": "#eceff1",
                    "bordercolor": "#90a4ae",
                    "borderpad": 4,
                }
            )
            mine = [p for p in points if p.bone == bone]
            traces.append(
                {
                    "type": "scatter",
                    "x": [p.x for p in mine],
                    "y": [p.y for p in mine],
                    "mode": "markers+text",
                    "name": bone_label(bone, lang),
                    "meta": bone,
                    "marker": {
                        "size": [8 + min(10, math.sqrt(max(p.evidence, 0))) for p in mine],
                        "color": charts.LINE,
                        "line": {"color": "white", "width": 1},
                    },
                    "text": [f"{wrap(p.cause)} <b>({p.evidence})</b>" for p in mine],
                    "textposition": "middle left",
                    "textfont": {"size": 11, "color": "#37474f"},
                    "customdata": [[p.cause, p.evidence] for p in mine],
                    "hovertemplate": (
                        "%{customdata[0]}<br>"
                        + escape(evidence_label)
                        + ": %{customdata[1]}<extra>"
                        + escape(bone_label(bone, lang))
                        + "</extra>"
                    ),
                    "showlegend": False,
                }
            )
    notes.append(
        {
            "x": spine_end,
            "y": 0,
            "xanchor": "left",
            "text": f"<b>{wrap(problem, 22, 5)}</b>",
            "showarrow": False,
            "align": "left",
            "font": {"size": 13, "color": "#ffffff"},
            "bgcolor": STATUS_COLOURS["red"],
            "bordercolor": STATUS_COLOURS["red"],
            "borderpad": 8,
        }
    )
    layout = {
        "annotations": notes,
        "xaxis": {"visible": False, "range": [-0.75, 4.25], "fixedrange": True},
        "yaxis": {"visible": False, "range": [-height - 1.1, height + 1.1], "fixedrange": True},
        "margin": {"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
    }
    return charts.figure(
        traces, layout, title, height=int(max(460, 2 * (height + 1.1) * ROW_PX + 90))
    )


def problems(causes: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Fishbone causes grouped by problem, most evidence first."""
    if causes.empty:
        return []
    groups = [(str(p), g) for p, g in causes.groupby("problem", sort=False)]
    return sorted(groups, key=lambda pg: -int(pg[1]["evidence_count"].sum()))


# ---------------------------------------------------------------------------
# Five whys
# ---------------------------------------------------------------------------
def whys(chain: Mapping[str, Any]) -> list[str]:
    """The chain's whys in order, gaps kept as ``""`` (trailing empties dropped)."""
    values = [_text(chain.get(f"why_{i}")) for i in range(1, MAX_WHYS + 1)]
    while values and not values[-1]:
        values.pop()
    return values


def person_blaming(text: str, patterns: Mapping[str, Sequence[str]]) -> str | None:
    """The first person-blaming pattern found in ``text`` (case-insensitive), else None."""
    lowered = text.lower()
    for words in patterns.values():
        for word in words:
            if word.lower() in lowered:
                return word
    return None


@dataclass(frozen=True)
class ChainIssue:
    """Something wrong with a five-whys chain: a reason code and its facts."""

    code: str  # "gap", "no_why", "no_root", "no_action", "person", "shallow"
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def serious(self) -> bool:
        """Issues that make the chain unfit as evidence (vs. notes)."""
        return self.code in ("gap", "no_why", "no_root", "person")


def chain_issues(
    chain: Mapping[str, Any], patterns: Mapping[str, Sequence[str]]
) -> list[ChainIssue]:
    """What a reader should know about a chain, in order of the chain.

    * ``no_why`` the chain has no why at all;
    * ``gap`` why k is empty while a later why is filled (``missing``: their numbers);
    * ``shallow`` fewer than three whys lead to the root cause;
    * ``no_root`` no root cause yet; ``no_action`` a root cause without an action;
    * ``person`` the root cause (or, without one, the last why) blames a person
      (``text``, ``pattern``) instead of a cause the organisation can act on.
    """
    issues: list[ChainIssue] = []
    steps = whys(chain)
    if not any(steps):
        issues.append(ChainIssue("no_why"))
    missing = [i for i, w in enumerate(steps, 1) if not w]
    if missing:
        issues.append(ChainIssue("gap", {"missing": missing}))
    root = _text(chain.get("root_cause"))
    filled = [w for w in steps if w]
    if root and 0 < len(filled) < 3:
        issues.append(ChainIssue("shallow", {"count": len(filled)}))
    if not root:
        issues.append(ChainIssue("no_root"))
    elif not _text(chain.get("action")):
        issues.append(ChainIssue("no_action"))
    last = root or (filled[-1] if filled else "")
    if last:
        hit = person_blaming(last, patterns)
        if hit is not None:
            issues.append(ChainIssue("person", {"text": last, "pattern": hit}))
    return issues


# ---------------------------------------------------------------------------
# Did the fix hold?
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FixCheck:
    """The verdict on one completed action.

    Attributes:
        verdict: ``held``, ``not_held`` or ``not_enough``.
        reason: why (``drop``; ``no_drop``, ``relapse``; ``after``, ``before``,
            ``thin``, ``no_data``).
        periods, counts: the monthly series (months with a complaints export).
        done_period: the month the action was completed (in neither window).
        baseline, after: the months of each window.
        centre, sigma: baseline mean and its month-to-month sigma (XmR, never
            below the Poisson √mean); ``after_mean``; ``limit``: the after-mean
            must fall below it (centre − kσ/√months after).
    """

    verdict: str
    reason: str
    periods: list[str]
    counts: list[float]
    done_period: str
    baseline: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    centre: float = float("nan")
    sigma: float = float("nan")
    after_mean: float = float("nan")
    limit: float = float("nan")


def fix_check(series: pd.Series, done_on: Any, rules: FixCheckRules) -> FixCheck:
    """Did the complaint count drop for good after the action was completed?

    Baseline: up to ``rules.baseline_months`` months before the completion month;
    after: the months after it (the completion month itself is in neither). With
    the baseline's centre c and sigma σ (XmR moving-range sigma, at least √c as for
    Poisson counts), the fix **held** when the mean after lies below
    c − kσ/√m (m months after, k = ``rules.sigmas``) *and* every month after stays below c; it **did
    not hold** otherwise (``no_drop``: the mean did not fall clearly;
    ``relapse``: it fell but a month came back to the old level). Too few months
    either side, or a baseline under ``rules.min_monthly_tickets`` a month, is
    **not enough data yet**.

    Args:
        series: tickets per month (index ``YYYY-MM``; months without an export
            left out, months with an export but no tickets as 0).
        done_on: the action's completion date.
    """
    series = series.sort_index()
    done = str(Period.parse(pd.Timestamp(done_on).strftime("%Y-%m")))
    periods = [str(p) for p in series.index]
    counts = [float(v) for v in series.to_numpy()]
    base = series[series.index < done].tail(rules.baseline_months)
    after = series[series.index > done]
    common = {
        "periods": periods,
        "counts": counts,
        "done_period": done,
        "baseline": list(base.index),
        "after": list(after.index),
    }
    if series.empty:
        return FixCheck("not_enough", "no_data", **common)
    if len(after) < rules.min_months_after:
        return FixCheck("not_enough", "after", **common)
    if len(base) < rules.min_months_before:
        return FixCheck("not_enough", "before", **common)
    chart = xmr_chart(base.astype(float))
    centre = chart.centre
    if centre < rules.min_monthly_tickets:
        return FixCheck("not_enough", "thin", centre=centre, **common)
    sigma = max(float(chart.upper[0] - centre) / 3.0, math.sqrt(centre))
    after_mean = float(after.mean())
    limit = centre - rules.sigmas * sigma / math.sqrt(len(after))
    numbers = {"centre": centre, "sigma": sigma, "after_mean": after_mean, "limit": limit}
    if after_mean >= limit:
        return FixCheck("not_held", "no_drop", **numbers, **common)
    if (after >= centre).any():
        return FixCheck("not_held", "relapse", **numbers, **common)
    return FixCheck("held", "drop", **numbers, **common)


def chain_series(
    counts: pd.DataFrame, chain: Mapping[str, Any], months: Sequence[str]
) -> pd.Series:
    """Monthly tickets of the chain's department × category (× subcategory when
    given), over the months that had a complaints export (0 when none)."""
    rows = counts[
        (counts["department"] == chain.get("department"))
        & (counts["category"] == chain.get("complaint_category"))
    ]
    sub = _text(chain.get("complaint_subcategory"))
    if sub:
        rows = rows[rows["subcategory"] == sub]
    series = rows.groupby("period")["tickets"].sum()
    return series.reindex(sorted(months), fill_value=0).astype(float)


# ---------------------------------------------------------------------------
# The period's view (computed once per context)
# ---------------------------------------------------------------------------
@dataclass
class RcaView:
    """Everything the sections show, for one context."""

    counts: pd.DataFrame
    months: list[str]
    tickets: pd.DataFrame
    now: pd.DataFrame
    categories: pd.DataFrame
    subcategories: pd.DataFrame
    mom_categories: pd.DataFrame
    mom_subcategories: pd.DataFrame
    mom_total: pd.DataFrame
    surge_rows: pd.DataFrame
    batches: pd.DataFrame
    escalations: pd.DataFrame
    repeats: pd.DataFrame
    rules: pd.DataFrame
    basket_count: int
    causes: pd.DataFrame
    chains: pd.DataFrame
    checks: dict[str, FixCheck]

    @property
    def total(self) -> int:
        return int(self.now["tickets"].sum()) if not self.now.empty else 0


def _register_frame(ctx: PeriodContext, name: str) -> pd.DataFrame:
    from qmsnb.contract import DATASETS

    frame = ctx.register(name)
    if frame.empty:
        return pd.DataFrame(columns=[c.name for c in DATASETS[name].columns])
    return in_scope(frame, ctx.department).reset_index(drop=True)


def view(ctx: PeriodContext) -> RcaView:
    """The analysis of the context's scope and month (cached on the context)."""
    cached = getattr(ctx, "_rca_view", None)
    if cached is not None:
        return cached
    rules = ctx.params.rca
    hot = rules.hotspots
    counts_all = ctx.table("complaint_counts")
    if counts_all.empty:
        counts_all = pd.DataFrame(
            columns=["period", "department", "category", "subcategory", "tickets", "escalated"]
        )
    months = list(ctx.meta.get("complaint_months", sorted(set(counts_all["period"]))))
    counts = in_scope(counts_all, ctx.department)
    tickets = in_scope(ctx.table("complaint_tickets"), ctx.department)
    if tickets.empty:
        tickets = pd.DataFrame(
            columns=[
                "ticket_id",
                "created_at",
                "department",
                "category",
                "subcategory",
                "channel",
                "customer_id",
                "text",
                "escalated",
            ]
        )
    now = counts[counts["period"] == ctx.period]
    mom_cat = month_on_month(counts, ctx.period, ["category"], months)
    mom_sub = month_on_month(counts, ctx.period, ["category", "subcategory"], months)
    mom_total = month_on_month(counts.assign(scope=ctx.department), ctx.period, ["scope"], months)
    flagged = []
    for level, mom in (("category", mom_cat), ("subcategory", mom_sub)):
        rows = surges(mom, hot.surge_percent, hot.surge_min_tickets)
        if not rows.empty:
            flagged.append(rows.assign(level=level))
    if ctx.is_organisation:
        mom_dept = month_on_month(counts, ctx.period, ["department"], months)
        rows = surges(mom_dept, hot.surge_percent, hot.surge_min_tickets)
        if not rows.empty:
            flagged.append(rows.assign(level="department"))
    surge_rows = (
        pd.concat(flagged, ignore_index=True)
        if flagged
        else pd.DataFrame(columns=["level", "now", "previous", "change", "new"])
    )
    assoc = rules.association
    transactions = baskets(tickets, assoc.basket)
    causes = _register_frame(ctx, "fishbone_causes")
    chains = _register_frame(ctx, "five_whys")
    checks: dict[str, FixCheck] = {}
    for _, chain in chains.iterrows():
        if _present(chain.get("action_done_on")):
            series = chain_series(counts_all, chain, [m for m in months if m <= ctx.period])
            checks[str(chain["chain_id"])] = fix_check(
                series, chain["action_done_on"], rules.fix_check
            )
    result = RcaView(
        counts=counts,
        months=months,
        tickets=tickets,
        now=now,
        categories=pareto(now, "category", hot.pareto_cut),
        subcategories=pareto(
            now.assign(subcategory=now["subcategory"].replace("", pd.NA).fillna(now["category"])),
            "subcategory",
            hot.pareto_cut,
        ),
        mom_categories=mom_cat,
        mom_subcategories=mom_sub,
        mom_total=mom_total,
        surge_rows=surge_rows,
        batches=batches(
            tickets, ctx.period, hot.batch_window_hours, hot.batch_min_tickets, hot.batch_factor
        ),
        escalations=escalations(tickets),
        repeats=repeat_complainants(tickets, hot.repeat_min_tickets),
        rules=pair_rules(
            transactions, assoc.min_baskets, assoc.min_support, assoc.min_confidence, assoc.min_lift
        ).head(assoc.max_rules),
        basket_count=len(transactions),
        causes=causes,
        chains=chains,
        checks=checks,
    )
    object.__setattr__(ctx, "_rca_view", result)
    return result


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------
def _names(ctx: PeriodContext) -> Names:
    return Names.of(ctx.params, ctx.lang)


def _group_label(ctx: PeriodContext, row: Mapping[str, Any], level: str) -> str:
    names = _names(ctx)
    if level == "department":
        return ctx.dept_name(row["department"])
    if level == "category":
        return names.category(row["category"])
    return f"{names.category(row['category'])} · {names.subcategory(row['subcategory'])}"


def _when(value: Any) -> str:
    if not _present(value):
        return ""
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _date(value: Any) -> str:
    if not _present(value):
        return ""
    return pd.Timestamp(value).date().isoformat()


def header(ctx: PeriodContext) -> Html:
    """The report title block."""
    sub = ctx.t(
        "report.subtitle",
        org=ctx.params.organisation.name(ctx.lang),
        dept=ctx.department_name,
        period=ctx.period_label,
    )
    return Html(
        f'<div class="qm-header"><h1>{escape(ctx.t("rca.title"))}</h1>'
        f'<p class="qm-sub">{escape(sub)}</p></div>'
    )


def narrative(ctx: PeriodContext) -> list[str]:
    """The sentences of the summary, in the report's language."""
    v = view(ctx)
    names = _names(ctx)
    hot = ctx.params.rca.hotspots
    if ctx.period not in v.months:
        return [ctx.t("rca.narrative.no_export", period=ctx.period_label)]
    if v.total == 0:
        return [ctx.t("rca.narrative.no_tickets", period=ctx.period_label)]
    lines = []
    total = v.mom_total.iloc[0] if not v.mom_total.empty else None
    change = None if total is None else total["change"]
    if change is None or pd.isna(change):
        lines.append(ctx.t("rca.narrative.total", count=v.total, period=ctx.period_label))
    else:
        lines.append(
            ctx.t(
                "rca.narrative.total_change",
                count=v.total,
                period=ctx.period_label,
                change=fmt_number(change, "%", 0),
                previous=int(total["previous"]),
            )
        )
    if v.total < hot.min_tickets:
        lines.append(ctx.t("rca.narrative.few", count=v.total, minimum=hot.min_tickets))
    else:
        vital = v.categories[v.categories["vital"]]
        if len(vital) == len(v.categories):
            lines.append(ctx.t("rca.narrative.vital_all", count=len(vital)))
        else:
            lines.append(
                ctx.t(
                    "rca.narrative.vital",
                    count=len(vital),
                    of=len(v.categories),
                    names="、".join(names.category(c) for c in vital["category"])
                    if ctx.lang == "zh"
                    else ", ".join(names.category(c) for c in vital["category"]),
                    share=fmt_number(vital["share"].sum(), "%", 0),
                )
            )
    alerts = (
        v.surge_rows[v.surge_rows["level"] != "department"]
        if not v.surge_rows.empty
        else v.surge_rows
    )
    for _, row in alerts.head(4).iterrows():
        label = _group_label(ctx, row, row["level"])
        if row["new"]:
            lines.append(ctx.t("rca.narrative.surge_new", group=label, now=int(row["now"])))
        else:
            lines.append(
                ctx.t(
                    "rca.narrative.surge",
                    group=label,
                    now=int(row["now"]),
                    previous=int(row["previous"]),
                    change=fmt_number(row["change"], "%", 0),
                    threshold=fmt_number(hot.surge_percent, "%", 0),
                )
            )
    for _, row in v.batches.head(3).iterrows():
        lines.append(
            ctx.t(
                "rca.narrative.batch",
                count=int(row["tickets"]),
                sub=names.subcategory(row["subcategory"]),
                start=_when(row["start"]),
                end=_when(row["end"]),
            )
        )
    if not v.repeats.empty:
        lines.append(
            ctx.t(
                "rca.narrative.repeats",
                customers=len(v.repeats),
                tickets=int(v.repeats["tickets"].sum()),
            )
        )
    escalated = int(v.tickets["escalated"].astype("boolean").fillna(False).sum())
    if escalated:
        lines.append(
            ctx.t(
                "rca.narrative.escalated",
                count=escalated,
                share=fmt_number(100.0 * escalated / max(len(v.tickets), 1), "%", 1),
            )
        )
    verdicts = Counter(c.verdict for c in v.checks.values())
    if v.checks:
        lines.append(
            ctx.t(
                "rca.narrative.fixes",
                held=verdicts["held"],
                not_held=verdicts["not_held"],
                not_enough=verdicts["not_enough"],
            )
        )
    flagged = sum(
        1
        for _, c in v.chains.iterrows()
        if any(i.code == "person" for i in chain_issues(c, ctx.params.rca.person_patterns))
    )
    if flagged:
        lines.append(ctx.t("rca.narrative.person", count=flagged))
    return lines


def summary(ctx: PeriodContext) -> Section:
    """Title, key figures and the narrative."""
    v = view(ctx)
    alerts = len(v.surge_rows)
    chips = " ".join(
        [
            badge("yellow" if alerts else "green", ctx.t("rca.chip.surges", count=alerts)),
            badge(
                "yellow" if len(v.batches) else "green",
                ctx.t("rca.chip.batches", count=len(v.batches)),
            ),
            badge(
                "red" if any(c.verdict == "not_held" for c in v.checks.values()) else "green",
                ctx.t(
                    "rca.chip.not_held",
                    count=sum(c.verdict == "not_held" for c in v.checks.values()),
                ),
            ),
        ]
    )
    section = Section(ctx.t("rca.summary"), anchor="summary", level=0)
    section.add(header(ctx), Html(f'<p class="qm-chips">{chips}</p>'), bullet_list(narrative(ctx)))
    if len(v.months) < ctx.params.catalogue.status.trend_months:
        section.add(
            banner(
                "info",
                ctx.t(
                    "rca.short_history",
                    found=len(v.months),
                    wanted=ctx.params.catalogue.status.trend_months,
                ),
            )
        )
    return section


def pareto_figure(
    rows: pd.DataFrame, labels: Sequence[str], title: str, cut: float, names: Mapping[str, str]
) -> go.Figure:
    """Bars (vital few dark, the rest light) with the cumulative share line and the cut.

    Args:
        rows: :func:`pareto` output.
        labels: one axis label per row.
        names: translated ``tickets``, ``cumulative``, ``vital``, ``others``, ``cut``.
    """
    labels = list(labels)
    traces: list[dict[str, Any]] = []
    for vital, colour, name in (
        (True, charts.LINE, names["vital"]),
        (False, "#bdbdbd", names["others"]),
    ):
        mask = (rows["vital"] == vital).to_numpy()
        if not mask.any():
            continue
        part = rows[mask]
        traces.append(
            {
                "type": "bar",
                "x": [label for label, m in zip(labels, mask, strict=True) if m],
                "y": part["tickets"].tolist(),
                "marker": {"color": colour},
                "name": name,
                "customdata": part["share"].round(1).tolist(),
                "hovertemplate": "%{x}: %{y} (%{customdata}%)<extra></extra>",
                "text": part["tickets"].tolist(),
                "textposition": "outside",
                "xaxis": "x",
                "yaxis": "y",
            }
        )
    traces.append(
        {
            "type": "scatter",
            "x": list(labels),
            "y": rows["cumulative"].round(1).tolist(),
            "mode": "lines+markers",
            "name": names["cumulative"],
            "line": {"color": STATUS_COLOURS["red"], "width": 2},
            "hovertemplate": "%{x}: %{y:.1f}%<extra></extra>",
            "xaxis": "x",
            "yaxis": "y2",
        }
    )
    traces.append(
        {
            "type": "scatter",
            "x": list(labels),
            "y": [cut] * len(rows),
            "mode": "lines",
            "name": names["cut"],
            "line": {"color": charts.TARGET, "width": 1, "dash": "dash"},
            "hoverinfo": "skip",
            "xaxis": "x",
            "yaxis": "y2",
        }
    )
    # the axes make_subplots(specs=[[{"secondary_y": True}]]) lays out
    layout: dict[str, Any] = {
        "xaxis": {
            "anchor": "y",
            "domain": [0.0, 0.94],
            "tickangle": -40,
            "automargin": True,
            "categoryorder": "array",
            "categoryarray": labels,
        },
        "yaxis": {
            "anchor": "x",
            "domain": [0.0, 1.0],
            "title": {"text": names["tickets"]},
            "rangemode": "tozero",
        },
        "yaxis2": {
            "anchor": "x",
            "overlaying": "y",
            "side": "right",
            "range": [0, 105],
            # plotly syncs an overlaying axis's ticks with the bars' gridlines
            # (0%, 22%, 44%, ...); the share reads in round steps up to 100 %
            "tickmode": "linear",
            "tick0": 0,
            "dtick": 20,
            "ticksuffix": "%",
            "showgrid": False,
        },
        "legend": {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
        "margin": {"b": 110},
    }
    vital = int(rows["vital"].sum())
    if 0 < vital < len(rows):
        layout["shapes"] = [
            {
                "type": "rect",
                "x0": -0.5,
                "x1": vital - 0.5,
                "xref": "x",
                "y0": 0,
                "y1": 1,
                "yref": "y domain",
                "fillcolor": "#e8f0fe",
                "opacity": 0.5,
                "line": {"width": 0},
                "layer": "below",
            }
        ]
    return charts.figure(traces, layout, title, height=440)


def _pareto_names(ctx: PeriodContext) -> dict[str, str]:
    return {
        "tickets": ctx.t("rca.chart.tickets"),
        "cumulative": ctx.t("rca.chart.cumulative"),
        "vital": ctx.t("rca.chart.vital"),
        "others": ctx.t("rca.chart.others"),
        "cut": ctx.t("rca.chart.cut", cut=fmt_number(ctx.params.rca.hotspots.pareto_cut, "%", 0)),
    }


def _pareto_table(ctx: PeriodContext, rows: pd.DataFrame, label: Callable[[Any], str]) -> Html:
    columns = [
        Col(ctx.t("rca.col.group"), lambda r: escape(label(r))),
        Col(ctx.t("rca.col.tickets"), lambda r: escape(int(r["tickets"])), align="right"),
        Col(ctx.t("rca.col.share"), lambda r: escape(fmt_number(r["share"], "%")), align="right"),
        Col(
            ctx.t("rca.col.cumulative"),
            lambda r: escape(fmt_number(r["cumulative"], "%")),
            align="right",
        ),
        Col(
            ctx.t("rca.col.vital"),
            lambda r: badge("red", ctx.t("rca.chart.vital")) if r["vital"] else "",
        ),
    ]
    return table(rows, columns)


def hotspots(ctx: PeriodContext) -> Section:
    """Pareto of categories and subcategories this month, the vital few marked;
    for the organisation also where complaints cluster (department × category)."""
    v = view(ctx)
    names = _names(ctx)
    hot = ctx.params.rca.hotspots
    section = Section(ctx.t("rca.hotspots"), anchor="hotspots")
    if ctx.period not in v.months:
        return section.add(ctx.t("rca.narrative.no_export", period=ctx.period_label))
    if v.total == 0:
        return section.add(ctx.t("rca.narrative.no_tickets", period=ctx.period_label))
    cut = fmt_number(hot.pareto_cut, "%", 0)
    sub_rows = v.subcategories

    def sub_label(r: Any) -> str:
        key = r["subcategory"]
        if key in names.subcategories:
            return f"{names.subcategory(key)}"
        return names.category(key)

    if v.total < hot.min_tickets:
        section.add(
            ctx.t("rca.pareto_few", count=v.total, minimum=hot.min_tickets),
            _pareto_table(ctx, sub_rows, sub_label),
        )
        return section
    section.add(ctx.t("rca.pareto_note", cut=cut))
    section.add(
        pareto_figure(
            v.categories,
            [names.category(c) for c in v.categories["category"]],
            ctx.t("rca.pareto_categories", scope=ctx.department_name, period=ctx.period_label),
            hot.pareto_cut,
            _pareto_names(ctx),
        ),
        pareto_figure(
            sub_rows,
            [sub_label(r) for _, r in sub_rows.iterrows()],
            ctx.t("rca.pareto_subcategories", scope=ctx.department_name, period=ctx.period_label),
            hot.pareto_cut,
            _pareto_names(ctx),
        ),
    )
    small = sub_rows[sub_rows["tickets"] < 5]
    if len(small):
        section.add(ctx.t("rca.pareto_small", count=len(small)))
    if ctx.is_organisation:
        section.add(cluster_heatmap(ctx))
    return section


def cluster_heatmap(ctx: PeriodContext) -> go.Figure:
    """Tickets this month per department × category (where complaints cluster)."""
    v = view(ctx)
    names = _names(ctx)
    grid = v.now.pivot_table(
        index="department", columns="category", values="tickets", aggfunc="sum", fill_value=0
    )
    depts = [d for d in ctx.params.departments if d in grid.index]
    cats = [c for c in names.categories if c in grid.columns]
    grid = grid.reindex(index=depts, columns=cats, fill_value=0)
    return charts.count_heatmap(
        [ctx.dept_name(d) for d in depts],
        [names.category(c) for c in cats],
        grid.to_numpy(),
        ctx.t("rca.heatmap_title", period=ctx.period_label),
        ctx.t("rca.chart.tickets"),
    )


def trend_figure(ctx: PeriodContext) -> go.Figure | None:
    """Tickets per month of the trend window, stacked by category."""
    v = view(ctx)
    if v.counts.empty:
        return None
    names = _names(ctx)
    grid = v.counts.pivot_table(
        index="period", columns="category", values="tickets", aggfunc="sum", fill_value=0
    )
    grid = grid.reindex(index=sorted(v.months), fill_value=0)
    cats = [c for c in names.categories if c in grid.columns]
    palette = [
        "#1a73e8",
        "#e8710a",
        "#188038",
        "#a142f4",
        "#d93025",
        "#12b5cb",
        "#f9ab00",
        "#5f6368",
    ]
    fig = charts.stacked_bars(
        [period_short(p, ctx.lang) for p in grid.index],
        {names.category(c): grid[c].tolist() for c in cats},
        [palette[i % len(palette)] for i in range(len(cats))],
        ctx.t("rca.trend_title", scope=ctx.department_name),
    )
    fig.update_yaxes(dtick=None)
    return fig


def rises(ctx: PeriodContext) -> Section:
    """Month-on-month change of every category, rises beyond the threshold flagged."""
    v = view(ctx)
    hot = ctx.params.rca.hotspots
    names = _names(ctx)
    section = Section(ctx.t("rca.rises"), anchor="rises")
    section.add(
        ctx.t(
            "rca.rises_rule",
            threshold=fmt_number(hot.surge_percent, "%", 0),
            minimum=hot.surge_min_tickets,
        )
    )
    figure = trend_figure(ctx)
    if figure is not None:
        section.add(figure)
    if ctx.period not in v.months or v.total == 0:
        return section.add(ctx.t("rca.narrative.no_tickets", period=ctx.period_label))
    previous = str(Period.parse(ctx.period).shift(-1))
    if previous not in v.months:
        return section.add(ctx.t("rca.no_previous", period=period_label(previous, ctx.lang)))
    rows = v.mom_subcategories
    if not rows.empty:  # categories by this month's tickets, their subcategories under them
        order = rows.groupby("category")["now"].transform("sum")
        rows = (
            rows.assign(_order=order)
            .sort_values(["_order", "category", "now"], ascending=[False, True, False])
            .reset_index(drop=True)
        )
        rows["_first"] = ~rows["category"].duplicated()
    flagged = {
        (r["category"], r["subcategory"])
        for _, r in v.surge_rows.iterrows()
        if r["level"] == "subcategory"
    }
    flagged_cats = {r["category"] for _, r in v.surge_rows.iterrows() if r["level"] == "category"}

    def alert(r: Any) -> str:
        if (r["category"], r["subcategory"]) in flagged:
            return badge("yellow", ctx.t("rca.yellow_alert"))
        return ""

    def change(r: Any) -> str:
        if pd.isna(r["change"]):
            return escape(ctx.t("rca.new") if r["previous"] == 0 and r["now"] else "–")
        return escape(fmt_change(r["change"], unit="") + "%")

    def category(r: Any) -> str:
        if not r["_first"]:
            return ""
        text = escape(names.category(r["category"]))
        if r["category"] in flagged_cats:
            text += " " + badge("yellow", ctx.t("rca.yellow_alert"))
        return text

    columns = [
        Col(ctx.t("rca.col.category"), category),
        Col(ctx.t("rca.col.subcategory"), lambda r: escape(names.subcategory(r["subcategory"]))),
        Col(
            ctx.t("rca.col.previous"),
            lambda r: escape(fmt_number(r["previous"], "count")),
            align="right",
        ),
        Col(ctx.t("rca.col.now"), lambda r: escape(int(r["now"])), align="right"),
        Col(ctx.t("rca.col.change"), change, align="right"),
        Col(ctx.t("rca.col.alert"), alert),
    ]
    section.add(table(rows, columns))
    if ctx.is_organisation:
        depts = (
            v.surge_rows[v.surge_rows["level"] == "department"]
            if not v.surge_rows.empty
            else v.surge_rows
        )
        if len(depts):
            section.add(
                banner(
                    "yellow",
                    ctx.t("rca.dept_rises"),
                    [
                        ctx.t(
                            "rca.dept_rise_line",
                            dept=ctx.dept_name(r["department"]),
                            previous=int(r["previous"]),
                            now=int(r["now"]),
                            change=fmt_number(r["change"], "%", 0)
                            if pd.notna(r["change"])
                            else ctx.t("rca.new"),
                        )
                        for _, r in depts.iterrows()
                    ],
                )
            )
    return section


def batch_section(ctx: PeriodContext) -> Section:
    """Batch complaints: many tickets of one subcategory in a short window."""
    v = view(ctx)
    hot = ctx.params.rca.hotspots
    names = _names(ctx)
    section = Section(ctx.t("rca.batches"), anchor="batches")
    section.add(
        ctx.t(
            "rca.batch_rule",
            minimum=hot.batch_min_tickets,
            hours=hot.batch_window_hours,
            factor=fmt_number(hot.batch_factor, "", 0),
        )
    )
    if v.tickets.empty:
        return section.add(ctx.t("rca.narrative.no_tickets", period=ctx.period_label))
    if v.batches.empty:
        return section.add(ctx.t("rca.no_batches"))
    columns = [
        Col(
            ctx.t("rca.col.subcategory"),
            lambda r: escape(
                f"{names.category(r['category'])} · {names.subcategory(r['subcategory'])}"
            ),
        ),
        Col(ctx.t("rca.col.window"), lambda r: escape(f"{_when(r['start'])} – {_when(r['end'])}")),
        Col(ctx.t("rca.col.tickets"), lambda r: escape(int(r["tickets"])), align="right"),
        Col(
            ctx.t("rca.col.expected"),
            lambda r: escape(fmt_number(r["expected"], "", 1)),
            align="right",
        ),
        Col(ctx.t("rca.col.customers"), lambda r: escape(int(r["customers"])), align="right"),
        Col(
            ctx.t("rca.col.samples"),
            lambda r: "<br>".join(escape(s[:SAMPLE_CHARS]) for s in r["samples"]),
        ),
    ]
    return section.add(table(v.batches, columns))


def escalation_section(ctx: PeriodContext) -> Section:
    """Escalated tickets by subcategory, and repeat complainants (numbers masked)."""
    v = view(ctx)
    names = _names(ctx)
    hot = ctx.params.rca.hotspots
    section = Section(ctx.t("rca.escalations"), anchor="escalations")
    if v.tickets.empty:
        return section.add(ctx.t("rca.narrative.no_tickets", period=ctx.period_label))
    if v.escalations.empty:
        section.add(ctx.t("rca.no_escalations"))
    else:
        columns = [
            Col(
                ctx.t("rca.col.subcategory"),
                lambda r: escape(
                    f"{names.category(r['category'])} · {names.subcategory(r['subcategory'])}"
                ),
            ),
            Col(ctx.t("rca.col.tickets"), lambda r: escape(int(r["tickets"])), align="right"),
            Col(ctx.t("rca.col.escalated"), lambda r: escape(int(r["escalated"])), align="right"),
            Col(ctx.t("rca.col.rate"), lambda r: escape(fmt_number(r["rate"], "%")), align="right"),
        ]
        section.add(table(v.escalations.head(10), columns))
    section.add(Html(f'<h3 class="qm-h">{escape(ctx.t("rca.repeats"))}</h3>'))
    if v.repeats.empty:
        return section.add(ctx.t("rca.no_repeats", minimum=hot.repeat_min_tickets))
    section.add(
        ctx.t(
            "rca.repeats_note",
            customers=len(v.repeats),
            tickets=int(v.repeats["tickets"].sum()),
            minimum=hot.repeat_min_tickets,
        )
    )
    sep = "、" if ctx.lang == "zh" else ", "
    columns = [
        Col(ctx.t("rca.col.customer"), lambda r: escape(mask_customer(r["customer_id"]))),
        Col(ctx.t("rca.col.tickets"), lambda r: escape(int(r["tickets"])), align="right"),
        Col(
            ctx.t("rca.col.subcategories"),
            lambda r: escape(sep.join(names.subcategory(s) for s in r["subcategories"])),
        ),
        Col(ctx.t("rca.col.first"), lambda r: escape(_when(r["first"]))),
        Col(ctx.t("rca.col.last"), lambda r: escape(_when(r["last"]))),
        Col(ctx.t("rca.col.escalated"), lambda r: escape(int(r["escalated"]) or ""), align="right"),
    ]
    section.add(table(v.repeats.head(15), columns))
    if len(v.repeats) > 15:
        section.add(ctx.t("rca.more_rows", count=len(v.repeats) - 15))
    return section


def associations(ctx: PeriodContext) -> Section:
    """Subcategories that occur together for one customer (or day): support, confidence, lift."""
    v = view(ctx)
    names = _names(ctx)
    assoc = ctx.params.rca.association
    section = Section(ctx.t("rca.associations"), anchor="associations")
    section.add(
        ctx.t(
            f"rca.assoc_rule.{assoc.basket}",
            baskets=v.basket_count,
            min_baskets=assoc.min_baskets,
            support=fmt_number(assoc.min_support, "%", 1),
            confidence=fmt_number(assoc.min_confidence, "%", 0),
            lift=fmt_number(assoc.min_lift, "", 1),
        )
    )
    if v.basket_count == 0:
        return section.add(ctx.t("rca.narrative.no_tickets", period=ctx.period_label))
    if v.rules.empty:
        return section.add(ctx.t("rca.no_rules"))
    columns = [
        Col(
            ctx.t("rca.col.rule"),
            lambda r: escape(
                f"{names.subcategory(r['antecedent'])} → {names.subcategory(r['consequent'])}"
            ),
        ),
        Col(ctx.t("rca.col.together"), lambda r: escape(int(r["together"])), align="right"),
        Col(
            ctx.t("rca.col.support"),
            lambda r: escape(fmt_number(r["support"], "%", 2)),
            align="right",
        ),
        Col(
            ctx.t("rca.col.confidence"),
            lambda r: escape(fmt_number(r["confidence"], "%", 1)),
            align="right",
        ),
        Col(ctx.t("rca.col.lift"), lambda r: escape(fmt_number(r["lift"], "", 2)), align="right"),
    ]
    section.add(table(v.rules, columns))
    top = v.rules.iloc[0]
    section.add(
        ctx.t(
            "rca.assoc_reading",
            a=names.subcategory(top["antecedent"]),
            b=names.subcategory(top["consequent"]),
            confidence=fmt_number(top["confidence"], "%", 0),
            lift=fmt_number(top["lift"], "", 1),
        )
    )
    return section


def fishbones(ctx: PeriodContext) -> Section:
    """One fishbone per problem recorded in the ``fishbone_causes`` register."""
    v = view(ctx)
    names = _names(ctx)
    section = Section(ctx.t("rca.fishbones"), anchor="fishbone")
    groups = problems(v.causes)
    if not groups:
        return section.add(ctx.t("rca.no_fishbone"))
    for problem, causes in groups:
        first = causes.iloc[0]
        context = ctx.t(
            "rca.fishbone_context",
            dept=ctx.dept_name(first["department"]),
            category=names.category(first["complaint_category"]),
            sub=names.subcategory(first.get("complaint_subcategory")),
            hotspot=hotspot_label(first.get("hotspot"), ctx.lang)
            if _present(first.get("hotspot"))
            else "–",
            period=period_label(str(first["period"]), ctx.lang)
            if _present(first.get("period"))
            else "–",
            count=len(causes),
            evidence=int(causes["evidence_count"].sum()),
        )
        empty = [b for b in BONES if b not in set(causes["bone"])]
        section.add(
            Html(f'<h3 class="qm-h">{escape(problem)}</h3>'),
            context,
            fishbone_figure(causes, problem, ctx.lang, evidence_label=ctx.t("rca.col.evidence")),
        )
        if empty:
            section.add(
                ctx.t(
                    "rca.empty_bones",
                    bones="、".join(bone_label(b, ctx.lang, short=True) for b in empty)
                    if ctx.lang == "zh"
                    else ", ".join(bone_label(b, ctx.lang, short=True) for b in empty),
                )
            )
        top = causes.sort_values("evidence_count", ascending=False).head(3)
        section.add(
            ctx.t(
                "rca.top_causes",
                causes="; ".join(
                    f"{r['cause']} ({int(r['evidence_count'])})" for _, r in top.iterrows()
                ),
            )
        )
    return section


def _issue_text(ctx: PeriodContext, issue: ChainIssue) -> str:
    facts = dict(issue.facts)
    if "missing" in facts:
        facts["missing"] = (
            "、".join(str(m) for m in facts["missing"])
            if ctx.lang == "zh"
            else ", ".join(str(m) for m in facts["missing"])
        )
    return ctx.t(f"rca.issue.{issue.code}", **facts)


def chain_html(ctx: PeriodContext, chain: Mapping[str, Any], issues: Sequence[ChainIssue]) -> Html:
    """A five-whys chain drawn as boxes joined by arrows (wrapping on narrow pages)."""
    person = next((i for i in issues if i.code == "person"), None)
    box = (
        "display:inline-block;vertical-align:top;max-width:210px;min-width:110px;"
        "padding:6px 9px;margin:4px 0;border-radius:6px;font-size:13px;line-height:1.4;"
    )
    arrow = '<span style="display:inline-block;margin:12px 4px;color:#80868b">➜</span>'

    def cell(label: str, text: str, style: str) -> str:
        return (
            f'<div style="{box}{style}"><div style="font-size:11px;color:#5f6368">'
            f"{escape(label)}</div>{escape(text)}</div>"
        )

    parts = [
        cell(
            ctx.t("rca.chain.problem"),
            _text(chain.get("problem")),
            "background:#fdecea;border:1px solid #c62828;",
        )
    ]
    for i, why in enumerate(whys(chain), 1):
        if why:
            parts.append(
                cell(
                    ctx.t("rca.chain.why", n=i), why, "background:#f1f3f4;border:1px solid #dadce0;"
                )
            )
        else:
            parts.append(
                cell(
                    ctx.t("rca.chain.why", n=i),
                    ctx.t("rca.chain.missing"),
                    "background:#fff;border:2px dashed #f9a825;color:#8d6e00;",
                )
            )
    root = _text(chain.get("root_cause"))
    if root:
        style = (
            "background:#fff8e1;border:2px solid #c62828;"
            if person
            else "background:#e8f0fe;border:2px solid #1a73e8;"
        )
        label = ctx.t("rca.chain.root")
        if _present(chain.get("bone")):
            label += f" · {bone_label(str(chain['bone']), ctx.lang, short=True)}"
        parts.append(cell(label, root, style))
    else:
        parts.append(
            cell(
                ctx.t("rca.chain.root"),
                ctx.t("rca.chain.missing"),
                "background:#fff;border:2px dashed #f9a825;color:#8d6e00;",
            )
        )
    action = _text(chain.get("action"))
    if action:
        done = _date(chain.get("action_done_on"))
        due = _date(chain.get("action_due"))
        when = (
            ctx.t("rca.chain.done_on", date=done)
            if done
            else (ctx.t("rca.chain.due", date=due) if due else "")
        )
        owner = _text(chain.get("action_owner"))
        detail = " · ".join(x for x in (owner, when) if x)
        parts.append(
            cell(
                ctx.t("rca.chain.action") + (f" ({detail})" if detail else ""),
                action,
                "background:#e6f4ea;border:1px solid #2e7d32;",
            )
        )
    flag = ""
    if person is not None:
        flag = " " + badge("red", ctx.t("rca.chain.person_flag"))
    title = (
        f'<div style="font-weight:600;margin-top:10px">{escape(chain.get("chain_id"))} · '
        f"{escape(_text(chain.get('problem')))}{flag}</div>"
    )
    return Html(f'<div class="qm-chain">{title}<div>{arrow.join(parts)}</div></div>')


def five_whys_section(ctx: PeriodContext) -> Section:
    """Every five-whys chain of the scope, drawn, with what is wrong with it in words."""
    v = view(ctx)
    names = _names(ctx)
    section = Section(ctx.t("rca.five_whys"), anchor="five-whys")
    if v.chains.empty:
        return section.add(ctx.t("rca.no_chains"))
    section.add(ctx.t("rca.five_whys_note"))
    patterns = ctx.params.rca.person_patterns
    for _, chain in v.chains.iterrows():
        issues = chain_issues(chain, patterns)
        meta = ctx.t(
            "rca.chain.meta",
            dept=ctx.dept_name(chain["department"]),
            category=names.category(chain["complaint_category"]),
            sub=names.subcategory(chain.get("complaint_subcategory")),
            analyst=_text(chain.get("analyst")),
            date=_date(chain.get("recorded_on")),
        )
        section.add(
            chain_html(ctx, chain, issues),
            Html(f'<p class="qm-text" style="color:#5f6368;font-size:12px">{escape(meta)}</p>'),
        )
        if issues:
            kind = "red" if any(i.serious for i in issues) else "info"
            section.add(
                banner(kind, ctx.t("rca.chain.issues"), [_issue_text(ctx, i) for i in issues])
            )
    return section


def fix_section(ctx: PeriodContext) -> Section:
    """For each chain with a completed action: before and after, and the verdict."""
    v = view(ctx)
    names = _names(ctx)
    rules = ctx.params.rca.fix_check
    section = Section(ctx.t("rca.fix"), anchor="fix")
    section.add(
        ctx.t(
            "rca.fix_rule",
            baseline=rules.baseline_months,
            after=rules.min_months_after,
            minimum=fmt_number(rules.min_monthly_tickets, "", 0),
        )
    )
    open_chains = (
        v.chains[~v.chains["action_done_on"].map(_present)] if not v.chains.empty else v.chains
    )
    if not v.checks:
        section.add(ctx.t("rca.no_fix"))
    else:
        chains = v.chains.set_index("chain_id")

        def group(chain_id: str) -> str:
            c = chains.loc[chain_id]
            sub = names.subcategory(c.get("complaint_subcategory"))
            return f"{names.category(c['complaint_category'])} · {sub}"

        rows = [
            {"chain_id": cid, "check": check, "chain": chains.loc[cid]}
            for cid, check in v.checks.items()
        ]
        columns = [
            Col(
                ctx.t("rca.col.chain"),
                lambda r: escape(f"{r['chain_id']} {_text(r['chain']['problem'])}"),
            ),
            Col(
                ctx.t("rca.col.group"),
                lambda r: escape(
                    f"{ctx.dept_name(r['chain']['department'])}: {group(r['chain_id'])}"
                ),
            ),
            Col(ctx.t("rca.col.action"), lambda r: escape(_text(r["chain"]["action"]))),
            Col(ctx.t("rca.col.done_on"), lambda r: escape(_date(r["chain"]["action_done_on"]))),
            Col(
                ctx.t("rca.col.before"),
                lambda r: escape(fmt_number(r["check"].centre, "", 1)),
                align="right",
            ),
            Col(
                ctx.t("rca.col.after"),
                lambda r: escape(fmt_number(r["check"].after_mean, "", 1)),
                align="right",
            ),
            Col(
                ctx.t("rca.col.verdict"),
                lambda r: badge(
                    VERDICTS[r["check"].verdict], ctx.t(f"rca.verdict.{r['check'].verdict}")
                ),
            ),
            Col(ctx.t("rca.col.why"), lambda r: escape(verdict_sentence(ctx, r["check"]))),
        ]
        section.add(table(rows, columns))
        panels = [
            charts.Panel(
                title=f"{cid} · {group(cid)} ("
                + ctx.t("rca.chain.done_on", date=_date(chains.loc[cid]["action_done_on"]))
                + ")",
                x=[period_short(p, ctx.lang) for p in check.periods],
                y=check.counts,
                status=[_point_status(p, check) for p in check.periods],
                centre=None if math.isnan(check.centre) else round(check.centre, 1),
                lower=None
                if math.isnan(check.sigma)
                else [max(0.0, round(check.centre - 3 * check.sigma, 1))] * len(check.periods),
                upper=None
                if math.isnan(check.sigma)
                else [round(check.centre + 3 * check.sigma, 1)] * len(check.periods),
                unit="",
            )
            for cid, check in v.checks.items()
        ]
        labels = {
            "value": ctx.t("rca.chart.tickets"),
            "target": "",
            "centre": ctx.t("rca.chart.baseline"),
            "limits": ctx.t("rca.chart.limits"),
            "signal": "",
        }
        section.add(
            ctx.t("rca.fix_chart_note"),
            charts.small_multiples(panels, ctx.t("rca.fix_title"), labels, columns=2),
        )
    if len(open_chains):
        section.add(
            ctx.t(
                "rca.open_actions",
                count=len(open_chains),
                chains="、".join(str(c) for c in open_chains["chain_id"])
                if ctx.lang == "zh"
                else ", ".join(str(c) for c in open_chains["chain_id"]),
            )
        )
    return section


def _point_status(period: str, check: FixCheck) -> str:
    if period in check.baseline:
        return "baseline"
    if period in check.after:
        if math.isnan(check.centre):
            return "no_data"
        return "green" if check.counts[check.periods.index(period)] < check.centre else "red"
    return "no_data"


def verdict_sentence(ctx: PeriodContext, check: FixCheck) -> str:
    """Why the verdict is what it is, in one sentence."""
    rules = ctx.params.rca.fix_check
    return ctx.t(
        f"rca.reason.{check.reason}",
        before=fmt_number(check.centre, "", 1),
        after=fmt_number(check.after_mean, "", 1),
        limit=fmt_number(check.limit, "", 1),
        months_after=len(check.after),
        months_before=len(check.baseline),
        need_after=rules.min_months_after,
        need_before=rules.min_months_before,
        minimum=fmt_number(rules.min_monthly_tickets, "", 0),
        done=period_label(check.done_period, ctx.lang),
    )


def recording(ctx: PeriodContext) -> Any:
    """The forms that record fishbone causes and five-whys chains (JupyterLab), or,
    in a batch-built report, a line saying where to find them."""
    if ctx.batch:
        return Section(ctx.t("rca.recording"), [ctx.t("rca.recording_batch")], anchor="recording")
    from qmsnb.widgets import root_cause_workbench

    return root_cause_workbench(ctx)


def hotspot_options(ctx: PeriodContext) -> list[dict[str, Any]]:
    """The hotspots of the month a root-cause record can start from (for the forms):
    vital-few subcategories, rises, batches, and the top escalated subcategory."""
    v = view(ctx)
    names = _names(ctx)
    dept = None if ctx.is_organisation else ctx.department
    options: list[dict[str, Any]] = []

    def dept_for(cat: str, sub: str | None) -> str:
        if dept:
            return dept
        rows = v.now[(v.now["category"] == cat) & ((v.now["subcategory"] == sub) if sub else True)]
        if rows.empty:
            return next(iter(ctx.params.departments))
        return str(rows.groupby("department")["tickets"].sum().idxmax())

    def add(kind: str, cat: str, sub: str | None, tickets: int, detail: str) -> None:
        label = f"{hotspot_label(kind, ctx.lang)}: {names.category(cat)}"
        if sub:
            label += f" · {names.subcategory(sub)}"
        label += f" ({detail})"
        options.append(
            {
                "kind": kind,
                "category": cat,
                "subcategory": sub,
                "tickets": int(tickets),
                "period": ctx.period,
                "department": dept_for(cat, sub),
                "label": label,
            }
        )

    for _, r in v.batches.iterrows():
        add(
            "batch",
            r["category"],
            r["subcategory"],
            r["tickets"],
            ctx.t("rca.option.batch", count=int(r["tickets"]), start=_when(r["start"])),
        )
    for _, r in v.surge_rows.iterrows():
        if r["level"] == "department":
            continue
        sub = r.get("subcategory") if r["level"] == "subcategory" else None
        add(
            "surge",
            r["category"],
            sub if _present(sub) else None,
            r["now"],
            ctx.t(
                "rca.option.surge",
                now=int(r["now"]),
                change=fmt_number(r["change"], "%", 0)
                if pd.notna(r["change"])
                else ctx.t("rca.new"),
            ),
        )
    for _, r in v.subcategories[v.subcategories["vital"]].iterrows():
        sub = r["subcategory"]
        cat = names.parent.get(sub, sub)
        add(
            "vital_few",
            cat,
            sub if sub in names.parent else None,
            r["tickets"],
            ctx.t("rca.option.tickets", count=int(r["tickets"])),
        )
    if not v.escalations.empty:
        r = v.escalations.iloc[0]
        add(
            "escalation",
            r["category"],
            r["subcategory"] or None,
            r["escalated"],
            ctx.t("rca.option.escalated", count=int(r["escalated"])),
        )
    return options


def iter_chains(frame: pd.DataFrame) -> Iterable[dict[str, Any]]:
    """Rows of the five-whys register as dicts."""
    for _, row in frame.iterrows():
        yield row.to_dict()
