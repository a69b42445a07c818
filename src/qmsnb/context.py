"""The period context a notebook works with: ``ctx = qmsnb.open_period(...)``.

In the batch, the driver has already prepared the period's small tables and passes
``prepared_dir``; opened interactively in JupyterLab, the context prepares them in
memory. Either way the notebook sees the same object: the parameters, the period,
the department (or the organisation), the language, the assessed KPI values of the
trend window and the registers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from qmsnb import io
from qmsnb.config import ORGANISATION, Params, load_params
from qmsnb.exceptions import ConfigError
from qmsnb.i18n import Lang, check_lang, period_label, t
from qmsnb.periods import Period

#: The data-quality gate's result of a run, beside the prepared tables.
GATE_FILE = "gate.json"


@dataclass
class PeriodContext:
    """Everything one report needs about one period and one department."""

    params: Params
    period: str
    department: str
    lang: Lang
    kpi: pd.DataFrame
    registers: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: Further prepared tables (``complaint_counts``, ``complaint_tickets``,
    #: ``risks_previous``, ...); from a batch's prepared folder, read on first use.
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    #: Opened on a batch's prepared tables (a report being built), not interactively.
    batch: bool = False
    #: The data-quality gate's result for the period (``gate.json``), if there is one.
    gate: dict[str, Any] | None = None

    @property
    def is_organisation(self) -> bool:
        return self.department == ORGANISATION

    @property
    def department_name(self) -> str:
        return self.params.department_name(self.department, self.lang)

    @property
    def period_label(self) -> str:
        return period_label(self.period, self.lang)

    @cached_property
    def year(self) -> int:
        return Period.parse(self.period).year

    def t(self, key: str, /, **facts: Any) -> str:
        """Catalogue text in the report's language."""
        return t(key, self.lang, **facts)

    def kpi_name(self, kpi_id: str) -> str:
        return self.params.kpis[kpi_id].name(self.lang)

    def dept_name(self, dept_id: str) -> str:
        return self.params.department_name(dept_id, self.lang)

    def register(self, name: str) -> pd.DataFrame:
        """A register as a frame (empty with no columns if the office keeps none)."""
        return self.registers.get(name, pd.DataFrame())

    def table(self, name: str) -> pd.DataFrame:
        """A further prepared table (empty with no columns when it was not prepared)."""
        return self.tables.get(name, pd.DataFrame())

    @cached_property
    def kpi_scope(self) -> pd.DataFrame:
        """KPI rows of this context's department (or the organisation) in the window."""
        return self.kpi[self.kpi["department"] == self.department]


def _find_params(params_dir: str | Path | None) -> Path:
    if params_dir:
        return Path(params_dir)
    env = os.environ.get("QMSNB_PARAMS")
    if env:
        return Path(env)
    for candidate in (Path("params"), Path("..") / "params"):
        if (candidate / "organisation.yaml").is_file():
            return candidate
    raise ConfigError("error.config.missing_folder", file=str(Path("params").resolve()))


def open_period(
    period: str,
    department: str = ORGANISATION,
    lang: str | None = None,
    params_dir: str | Path | None = None,
    prepared_dir: str | Path | None = None,
) -> PeriodContext:
    """Open one period for one department (or ``"organisation"``).

    Args:
        period: ``YYYY-MM``.
        department: a department id from ``params/organisation.yaml`` or
            ``"organisation"`` for the organisation-wide view.
        lang: ``zh`` or ``en``; the organisation's report language by default.
        params_dir: the params folder; found from ``$QMSNB_PARAMS``, ``./params`` or
            ``../params`` when not given.
        prepared_dir: the batch's prepared tables; prepared on the fly when empty.
    """
    from qmsnb import prepare

    params = load_params(_find_params(params_dir))
    period = str(Period.parse(period))
    if department != ORGANISATION:
        params.department(department)
    language = check_lang(lang or params.organisation.report_language)
    if prepared_dir:
        kpi, regs, meta = prepare.read_prepared(Path(prepared_dir))
        tables = prepare.read_tables(Path(prepared_dir), meta, lazy=True)
        gate_file = Path(prepared_dir).parent / GATE_FILE
    else:
        with tempfile.TemporaryDirectory(prefix="qmsnb-prepared-") as tmp:
            prepare.prepare(params, period, Path(tmp))
            kpi, regs, meta = prepare.read_prepared(Path(tmp))
            tables = prepare.read_tables(Path(tmp), meta)
        gate_file = params.output_dir / period / GATE_FILE
    return PeriodContext(
        params=params,
        period=period,
        department=department,
        lang=language,
        kpi=kpi,
        registers=regs,
        meta=meta,
        tables=tables,
        batch=bool(prepared_dir),
        gate=io.read_json(gate_file) if gate_file.is_file() else None,
    )
