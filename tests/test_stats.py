"""Control charts against hand-computed limits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmsnb.stats import RUN_LENGTH, p_chart, xmr_chart


def test_p_chart_limits_by_hand() -> None:
    num = pd.Series([45, 50, 55])
    den = pd.Series([100, 100, 100])
    chart = p_chart(num, den, laney=False)
    sigma = np.sqrt(0.5 * 0.5 / 100)
    assert chart.method == "p"
    assert chart.centre == pytest.approx(50.0)
    assert chart.upper[0] == pytest.approx(100 * (0.5 + 3 * sigma))
    assert chart.lower[0] == pytest.approx(100 * (0.5 - 3 * sigma))
    assert not chart.outside.any()


def test_laney_widens_limits_for_overdispersed_large_samples() -> None:
    """100k calls a month: month-to-month variation of ±1 pp is ordinary, not a signal."""
    rates = np.array([0.80, 0.81, 0.79, 0.805, 0.795, 0.80, 0.81, 0.79, 0.80, 0.80])
    den = pd.Series([100_000] * len(rates))
    num = pd.Series(rates * 100_000)
    classic = p_chart(num, den, laney=False)
    laney = p_chart(num, den)
    assert classic.outside.sum() >= 4  # the classic chart flags ordinary months
    assert laney.method == "laney_p" and laney.sigma_z > 1
    assert not laney.outside.any()
    # a real drop to 75 % is still caught
    num2 = pd.concat([num, pd.Series([75_000])], ignore_index=True)
    den2 = pd.concat([den, pd.Series([100_000])], ignore_index=True)
    assert p_chart(num2, den2).outside[-1]


def test_xmr_limits_and_run_rule() -> None:
    values = pd.Series([10.0, 12.0, 11.0, 13.0])
    chart = xmr_chart(values)
    mr = (2 + 1 + 2) / 3
    assert chart.centre == pytest.approx(11.5)
    assert chart.upper[0] == pytest.approx(11.5 + 2.66 * mr)
    shifted = pd.Series([5.0] * 4 + [6.0] * RUN_LENGTH)
    assert xmr_chart(shifted).run[-RUN_LENGTH:].all()
