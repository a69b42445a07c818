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
