"""Risk-scoring methods (ISO 9001 6.1): their scales, scores and bands.

Three methods are registered (:data:`METHODS`, :func:`register`); ``params/risk.yaml``
chooses the active one and may change the bands and their colours:

``matrix`` (default)
    likelihood × severity on a 5×5 matrix, each 1–5; score 1–25. Bands by the
    score's lower bounds (default low 1, medium 5, high 10, extreme 20).
``fmea``
    severity × occurrence × detection, each 1–10 (AIAG & VDA FMEA Handbook 2019);
    the score is the RPN (1–1000). The band is the *action priority* (high /
    medium / low) looked up in the handbook's AP table from S, O and D, or, with
    ``band_by: rpn``, the RPN's lower bounds.
``lec``
    likelihood × exposure × consequence (the Graham–Kinney method, LEC
    作业条件危险性评价法): L ∈ {0.1, 0.2, 0.5, 1, 3, 6, 10}, E ∈ {0.5, 1, 2, 3,
    6, 10}, C ∈ {1, 3, 7, 15, 40, 100}; D = L×E×C, bands from 20, 70, 160 and 320.

Every method names its factors by the register's factor fields (``likelihood``,
``severity``, ``detection``, ``exposure``): FMEA's occurrence is kept in the
likelihood field, LEC's consequence in the severity field, so one register holds
risks scored by any method and records which one (its ``method`` field).

This module is pure (no pandas, no params): the configured bands are passed in
as :class:`Band` tuples; :mod:`qmsnb.config` builds them from ``risk.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

#: Register fields that hold factor values (inherent; residual ones are prefixed).
FACTOR_FIELDS = ("likelihood", "severity", "detection", "exposure")
#: Prefix of the inherent and residual factor fields in the register.
STAGES = {"inherent": "inherent_", "residual": "residual_"}


@dataclass(frozen=True)
class Factor:
    """One factor of a method: the register field it lives in and its scale."""

    field: str
    symbol: str
    values: tuple[float, ...]

    @property
    def low(self) -> float:
        return self.values[0]

    @property
    def high(self) -> float:
        return self.values[-1]

    def on_scale(self, value: float) -> bool:
        """Whether ``value`` is one of the scale's values."""
        return any(math.isclose(value, v) for v in self.values)

    def scale_text(self) -> str:
        """``1–5`` for a run of whole numbers, else the values listed."""
        whole = all(float(v).is_integer() for v in self.values)
        if whole and list(self.values) == list(range(int(self.low), int(self.high) + 1)):
            return f"{number_text(self.low)}–{number_text(self.high)}"
        return ", ".join(number_text(v) for v in self.values)


@dataclass(frozen=True)
class Band:
    """A band of scores: its id, the score it starts at (inclusive) and its colour.

    ``name`` overrides the catalogue's ``risk.band.<id>`` text (``{zh:, en:}``).
    """

    id: str
    minimum: float
    colour: str
    name: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Method:
    """A scoring method: factors, how they combine and how a score is banded.

    Attributes:
        id: the method id (``params/risk.yaml: method``).
        zh, en: its name (the data contract's labels).
        factors: the factors in the order they are multiplied and shown.
        axes: the two factor fields of its heat map (rows, columns).
        default_bands: bands when ``risk.yaml`` gives none, mildest first.
        band_by: how a score is banded by default (``score``, or ``action_priority``
            for FMEA).
        classify: for ``band_by`` other than ``score``: factors → band id.
    """

    id: str
    zh: str
    en: str
    factors: tuple[Factor, ...]
    axes: tuple[str, str]
    default_bands: tuple[Band, ...]
    band_by: str = "score"
    classify: Callable[[Mapping[str, float]], str] | None = None
    score_label: Mapping[str, str] = field(default_factory=lambda: {"zh": "分值", "en": "Score"})

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f.field for f in self.factors)

    def factor(self, name: str) -> Factor:
        for factor in self.factors:
            if factor.field == name:
                return factor
        raise KeyError(name)

    @property
    def score_range(self) -> tuple[float, float]:
        return (
            math.prod(f.low for f in self.factors),
            math.prod(f.high for f in self.factors),
        )

    def problem(self, values: Mapping[str, float | None]) -> tuple[str, float | None] | None:
        """The first factor that is missing or off the scale, with its value; None if fine."""
        for factor in self.factors:
            value = values.get(factor.field)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return factor.field, None
            if not factor.on_scale(float(value)):
                return factor.field, float(value)
        return None

    def score(self, values: Mapping[str, float]) -> float:
        """The product of the factors (RPN for FMEA, D for LEC).

        Raises:
            ValueError: a factor is missing or off its scale.
        """
        wrong = self.problem(values)
        if wrong is not None:
            raise ValueError(f"{self.id}: {wrong[0]} = {wrong[1]!r} is not on its scale")
        return float(math.prod(float(values[f.field]) for f in self.factors))

    def band(
        self,
        values: Mapping[str, float],
        bands: Sequence[Band] | None = None,
        band_by: str | None = None,
    ) -> str:
        """The band id of a scored risk.

        Args:
            bands: the configured bands (the method's defaults when None).
            band_by: ``score`` or the method's own classification (FMEA:
                ``action_priority``); the method's default when None.
        """
        how = band_by or self.band_by
        if how != "score" and self.classify is not None:
            self.score(values)  # checks the scale
            return self.classify(values)
        return band_for(self.score(values), bands or self.default_bands)


def band_for(score: float, bands: Sequence[Band]) -> str:
    """The id of the highest band whose minimum the score reaches (the lowest band
    for scores below every minimum)."""
    chosen = bands[0].id
    for band in bands:
        if score >= band.minimum - 1e-9:
            chosen = band.id
    return chosen


def number_text(value: float) -> str:
    """``3.0`` → ``3``, ``0.5`` → ``0.5`` (factor values and scores)."""
    return f"{value:g}"


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a scoring method (ids are unique)."""
    if method.id in METHODS:
        raise ValueError(f"scoring method {method.id} registered twice")
    METHODS[method.id] = method
    return method


def get(method_id: str) -> Method:
    """The method with ``method_id``.

    Raises:
        KeyError: no such method (callers turn it into a message listing :data:`METHODS`).
    """
    return METHODS[method_id]


def factor_fields(stage: str, method: Method | None = None) -> list[str]:
    """Register fields of a stage (``inherent``/``residual``): all, or ``method``'s."""
    names = method.fields if method is not None else FACTOR_FIELDS
    return [STAGES[stage] + name for name in names]


def stage_values(record: Mapping[str, object], stage: str) -> dict[str, float | None]:
    """Factor field → value of one stage of a record (None when empty)."""
    out: dict[str, float | None] = {}
    for name in FACTOR_FIELDS:
        value = record.get(STAGES[stage] + name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[name] = None
        else:
            try:
                out[name] = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                out[name] = None
    return out


def method_of(record: Mapping[str, object]) -> Method | None:
    """The method a record was scored with (None when empty or unknown)."""
    value = record.get("method")
    return METHODS.get(value) if isinstance(value, str) else None


def stage_score(record: Mapping[str, object], stage: str) -> float | None:
    """The score of one stage of a record; None when its method or a factor is
    missing or off the scale."""
    method = method_of(record)
    if method is None:
        return None
    values = stage_values(record, stage)
    if method.problem(values) is not None:
        return None
    return method.score(values)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# 5×5 matrix
# ---------------------------------------------------------------------------
_FIVE = (1.0, 2.0, 3.0, 4.0, 5.0)
_TEN = tuple(float(v) for v in range(1, 11))

MATRIX = register(
    Method(
        id="matrix",
        zh="5×5矩阵法(可能性×严重度)",
        en="5×5 matrix (likelihood × severity)",
        factors=(Factor("likelihood", "L", _FIVE), Factor("severity", "S", _FIVE)),
        axes=("severity", "likelihood"),
        default_bands=(
            Band("low", 1, "#2e7d32"),
            Band("medium", 5, "#f9a825"),
            Band("high", 10, "#ef6c00"),
            Band("extreme", 20, "#c62828"),
        ),
    )
)


# ---------------------------------------------------------------------------
# FMEA with the AIAG & VDA action priority
# ---------------------------------------------------------------------------
def _group(value: float, edges: Sequence[int]) -> int:
    """Index of the group a rating falls in; ``edges`` are each group's lowest rating,
    highest group first."""
    for index, edge in enumerate(edges):
        if value >= edge:
            return index
    return len(edges) - 1


#: Severity groups 9–10, 7–8, 4–6, 2–3, 1; occurrence 8–10, 6–7, 4–5, 2–3, 1;
#: detection 7–10, 5–6, 2–4, 1 (AIAG & VDA FMEA Handbook, 2019, AP table).
_S_EDGES, _O_EDGES, _D_EDGES = (9, 7, 4, 2, 1), (8, 6, 4, 2, 1), (7, 5, 2, 1)
#: AP[severity group][occurrence group] → one letter per detection group.
_AP = (
    ("HHHH", "HHHH", "HHHM", "HMLL", "LLLL"),  # S 9–10
    ("HHHH", "HHHM", "HMMM", "MMLL", "LLLL"),  # S 7–8
    ("HHMM", "MMML", "MLLL", "LLLL", "LLLL"),  # S 4–6
    ("MMLL", "LLLL", "LLLL", "LLLL", "LLLL"),  # S 2–3
    ("LLLL", "LLLL", "LLLL", "LLLL", "LLLL"),  # S 1
)
#: Action priority letter → band id.
PRIORITY_BANDS = {"H": "high", "M": "medium", "L": "low"}


def action_priority(severity: float, occurrence: float, detection: float) -> str:
    """The AIAG & VDA action priority (``H``, ``M`` or ``L``) of S, O, D (each 1–10).

    High: the team must act (or justify why not); medium: should act; low: could act.
    """
    row = _AP[_group(severity, _S_EDGES)][_group(occurrence, _O_EDGES)]
    return row[_group(detection, _D_EDGES)]


def _fmea_priority(values: Mapping[str, float]) -> str:
    letter = action_priority(values["severity"], values["likelihood"], values["detection"])
    return PRIORITY_BANDS[letter]


FMEA = register(
    Method(
        id="fmea",
        zh="FMEA(严重度×频度×探测度=RPN)",
        en="FMEA (severity × occurrence × detection = RPN)",
        factors=(
            Factor("severity", "S", _TEN),
            Factor("likelihood", "O", _TEN),
            Factor("detection", "D", _TEN),
        ),
        axes=("severity", "likelihood"),
        default_bands=(
            Band("low", 1, "#2e7d32"),
            Band("medium", 100, "#f9a825"),
            Band("high", 200, "#c62828"),
        ),
        band_by="action_priority",
        classify=_fmea_priority,
        score_label={"zh": "RPN", "en": "RPN"},
    )
)


# ---------------------------------------------------------------------------
# LEC (Graham–Kinney)
# ---------------------------------------------------------------------------
LEC = register(
    Method(
        id="lec",
        zh="LEC法(可能性×暴露频率×后果)",
        en="LEC (likelihood × exposure × consequence)",
        factors=(
            Factor("likelihood", "L", (0.1, 0.2, 0.5, 1.0, 3.0, 6.0, 10.0)),
            Factor("exposure", "E", (0.5, 1.0, 2.0, 3.0, 6.0, 10.0)),
            Factor("severity", "C", (1.0, 3.0, 7.0, 15.0, 40.0, 100.0)),
        ),
        axes=("severity", "likelihood"),
        default_bands=(
            Band("low", 0, "#2e7d32"),
            Band("moderate", 20, "#9ccc65"),
            Band("significant", 70, "#f9a825"),
            Band("high", 160, "#ef6c00"),
            Band("extreme", 320, "#c62828"),
        ),
        score_label={"zh": "D值", "en": "D"},
    )
)
