"""Statistical process control used across the reports.

Rates (answer rate, first-call resolution) are counted over tens of thousands of
calls a month. A classic p-chart's limits shrink with the subgroup size, so with
such counts nearly every month falls outside them, although the month-to-month
variation is ordinary (over-dispersion). Laney's p′ chart widens the limits by
the observed between-month variation (σ_z); when there is no over-dispersion
(σ_z ≤ 1) it is exactly the p-chart. Values reported without counts get an
individuals (XmR) chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: d2 for moving ranges of two points.
_D2 = 1.128
#: A run of this many points on one side of the centre line is a signal.
RUN_LENGTH = 8


@dataclass(frozen=True)
class ControlChart:
    """Centre line, limits and signals for one series (percentages)."""

    method: str  # "laney_p", "p", "xmr"
    centre: float
    lower: np.ndarray
    upper: np.ndarray
    sigma_z: float | None
    outside: np.ndarray  # bool per point: beyond a limit
    run: np.ndarray  # bool per point: part of a run of RUN_LENGTH on one side

    @property
    def signals(self) -> np.ndarray:
        return self.outside | self.run


def _runs(values: np.ndarray, centre: float) -> np.ndarray:
    side = np.sign(values - centre)
    flags = np.zeros(len(values), dtype=bool)
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or side[i] != side[start] or side[i] == 0:
            if side[start] != 0 and i - start >= RUN_LENGTH:
                flags[start:i] = True
            start = i
    return flags


def p_chart(numerator: pd.Series, denominator: pd.Series, laney: bool = True) -> ControlChart:
    """Laney p′ (or classic p) chart limits for rates, in percent.

    Args:
        numerator: events per period (e.g. answered calls).
        denominator: trials per period (e.g. offered calls); must be > 0.
        laney: widen limits by σ_z when the data are over-dispersed.
    """
    x = np.asarray(numerator, dtype=float)
    n = np.asarray(denominator, dtype=float)
    p_bar = x.sum() / n.sum()
    p = x / n
    sigma = np.sqrt(p_bar * (1 - p_bar) / n)
    sigma_z: float | None = None
    method = "p"
    if laney and len(p) >= 3 and np.all(sigma > 0):
        z = (p - p_bar) / sigma
        sigma_z = float(np.mean(np.abs(np.diff(z))) / _D2)
        if sigma_z > 1:
            sigma = sigma * sigma_z
            method = "laney_p"
    lower = np.clip(p_bar - 3 * sigma, 0, 1) * 100
    upper = np.clip(p_bar + 3 * sigma, 0, 1) * 100
    values = p * 100
    return ControlChart(
        method=method,
        centre=float(p_bar * 100),
        lower=lower,
        upper=upper,
        sigma_z=sigma_z,
        outside=(values < lower) | (values > upper),
        run=_runs(values, p_bar * 100),
    )


def xmr_chart(values: pd.Series) -> ControlChart:
    """Individuals chart: centre = mean, limits = mean ± 2.66 × mean moving range."""
    v = np.asarray(values, dtype=float)
    centre = float(np.mean(v))
    mr = float(np.mean(np.abs(np.diff(v)))) if len(v) > 1 else 0.0
    lower = np.full(len(v), centre - 2.66 * mr)
    upper = np.full(len(v), centre + 2.66 * mr)
    return ControlChart(
        method="xmr",
        centre=centre,
        lower=lower,
        upper=upper,
        sigma_z=None,
        outside=(v < lower) | (v > upper),
        run=_runs(v, centre),
    )


# ---------------------------------------------------------------------------
# Before / after: did a level shift?
# ---------------------------------------------------------------------------
#: Efficiency of the mean moving range as an estimate of σ (relative to the
#: standard deviation): ``m`` moving ranges carry about 0.62·m degrees of freedom.
_MR_EFFICIENCY = 0.62


@dataclass(frozen=True)
class ShiftTest:
    """A before/after comparison of one monthly series.

    Attributes:
        model: ``rate`` (numerator/denominator), ``count`` (events per month) or
            ``value`` (a value without counts).
        before, after: the level of each window (a rate in percent from the summed
            counts; the mean count per month; the mean value).
        z: (after − before) over its standard error, the error widened by the
            month-to-month variation the counts alone do not explain.
        p_value: one-sided, in the direction asked for (``better``).
        dispersion: the widening factor φ (1: the counts explain the variation).
        df: degrees of freedom of the t distribution used (None: normal).
    """

    model: str
    before: float
    after: float
    z: float
    p_value: float
    dispersion: float
    df: float | None
    months_before: int
    months_after: int

    @property
    def change(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class _Window:
    level: float
    residuals: np.ndarray  # standardised residuals, month order


def _mr_sigma(windows: list[_Window]) -> tuple[float, int]:
    """σ from moving ranges within each window (never across the shift), and how many."""
    ranges = np.concatenate([np.abs(np.diff(w.residuals)) for w in windows])
    if ranges.size == 0:
        return 0.0, 0
    return float(ranges.mean() / _D2), int(ranges.size)


def _rate(num: np.ndarray, den: np.ndarray) -> tuple[_Window, float]:
    p = num.sum() / den.sum()
    sd = np.sqrt(p * (1 - p) / den)
    resid = np.divide(num / den - p, sd, out=np.zeros(len(den)), where=sd > 0)
    return _Window(float(p), resid), float(den.sum())


def _shift_rate(
    before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray]
) -> tuple[float, float, float, float, float | None]:
    (wb, nb), (wa, na) = _rate(*before), _rate(*after)
    pooled = (before[0].sum() + after[0].sum()) / (nb + na)
    var = pooled * (1 - pooled) * (1 / nb + 1 / na)
    sigma, ranges = _mr_sigma([wb, wa])
    phi, df = (sigma, _MR_EFFICIENCY * ranges) if sigma > 1 else (1.0, None)
    return wb.level * 100, wa.level * 100, var * 1e4, phi, df


def _count(counts: np.ndarray) -> _Window:
    mean = counts.mean()
    resid = (counts - mean) / np.sqrt(mean) if mean > 0 else np.zeros(len(counts))
    return _Window(float(mean), resid)


def _shift_count(
    before: np.ndarray, after: np.ndarray
) -> tuple[float, float, float, float, float | None]:
    wb, wa = _count(before), _count(after)
    pooled = (before.sum() + after.sum()) / (len(before) + len(after))
    var = pooled * (1 / len(before) + 1 / len(after))
    sigma, ranges = _mr_sigma([wb, wa])
    phi, df = (sigma, _MR_EFFICIENCY * ranges) if sigma > 1 else (1.0, None)
    return wb.level, wa.level, var, phi, df


def _shift_value(
    before: np.ndarray, after: np.ndarray
) -> tuple[float, float, float, float, float | None]:
    wb = _Window(float(before.mean()), before - before.mean())
    wa = _Window(float(after.mean()), after - after.mean())
    sigma, ranges = _mr_sigma([wb, wa])
    var = 1 / len(before) + 1 / len(after)
    return wb.level, wa.level, var, sigma, max(1.0, _MR_EFFICIENCY * ranges)


def _one_sided(z: float, df: float | None, better: str) -> float:
    from scipy.special import ndtr, stdtr

    tail = -z if better == "up" else z  # P(T > z) for up, P(T < z) for down
    return float(stdtr(df, tail) if df is not None else ndtr(tail))


def shift_test(
    model: str,
    before: Sequence[float] | tuple[Sequence[float], Sequence[float]],
    after: Sequence[float] | tuple[Sequence[float], Sequence[float]],
    better: str,
) -> ShiftTest:
    """Did the level of a monthly series move in the ``better`` direction?

    The two windows' levels are compared with a z statistic whose standard error
    comes from the model (binomial for rates, Poisson for counts) widened by φ,
    the month-to-month variation beyond the model (Laney's σ_z, estimated from
    moving ranges *within* each window so the shift itself does not inflate it).
    When φ is estimated (φ > 1, or always for plain values) the p-value comes from
    a t distribution with the moving ranges' degrees of freedom, else the normal.

    Args:
        model: ``rate`` (before/after are ``(numerators, denominators)``),
            ``count`` (events per month) or ``value``.
        better: ``up`` or ``down``: the direction an effective action moves it.

    Raises:
        ValueError: unknown model or direction, or a window is empty.
    """
    if better not in ("up", "down"):
        raise ValueError(f"better must be 'up' or 'down', not {better!r}")
    if model == "rate":
        b = tuple(np.asarray(x, dtype=float) for x in before)  # type: ignore[union-attr]
        a = tuple(np.asarray(x, dtype=float) for x in after)  # type: ignore[union-attr]
        k_b, k_a = len(b[1]), len(a[1])
        if not k_b or not k_a or b[1].sum() <= 0 or a[1].sum() <= 0:
            raise ValueError("both windows need months with a positive denominator")
        level_b, level_a, var, phi, df = _shift_rate(b, a)  # type: ignore[arg-type]
    elif model in ("count", "value"):
        b1, a1 = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
        k_b, k_a = len(b1), len(a1)
        if not k_b or not k_a:
            raise ValueError("both windows need at least one month")
        shift = _shift_count if model == "count" else _shift_value
        level_b, level_a, var, phi, df = shift(b1, a1)
    else:
        raise ValueError(f"unknown model {model!r}; use rate, count or value")
    diff = level_a - level_b
    se = phi * float(np.sqrt(var))
    # no variation at all: any difference is a real one
    z = diff / se if se > 0 else (0.0 if diff == 0 else float(np.sign(diff)) * np.inf)
    return ShiftTest(
        model=model,
        before=level_b,
        after=level_a,
        z=float(z),
        p_value=_one_sided(float(z), df, better),
        dispersion=phi,
        df=df,
        months_before=k_b,
        months_after=k_a,
    )
