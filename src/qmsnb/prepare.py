"""The prepare step: from a period's exports and the registers to small tables.

Run once per period by the batch driver (and on the fly when a notebook is opened
interactively without a batch run). It loads the exports of the trend window,
computes every indicator per department and month with :mod:`qmsnb.kpi`, assesses
status and warnings, and writes the small tables every notebook reads:

``prepared/kpi.parquet``
    assessed KPI values of the trend window, all departments and the organisation;
``prepared/<register>.parquet``
    the registers (objectives, audit programme, findings, actions, risks);
``prepared/meta.json``
    the period, the input files with their sha256, the months found, and the
    records store's URL and fingerprint when registers came from it.

Registers the records store keeps (:mod:`qmsnb.records`) are snapshotted from
the store, so a report is reproducible from its prepared tables even as
auditors keep saving; the others are read from ``registers_dir``.

A month's KPI values are cached under ``<outputs>/.cache/kpi/`` keyed by the
sha256 of its export files and of the catalogue, so re-running a month after one
export was corrected recomputes only that month.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from qmsnb import io
from qmsnb.config import Params
from qmsnb.contract import DATASETS, exports, registers
from qmsnb.exceptions import DataError, UsageError
from qmsnb.kpi import VALUE_COLUMNS, assess, compute_period
from qmsnb.periods import Period

#: Bump when the way KPI values are computed changes (invalidates the cache).
ENGINE_VERSION = "1"


@dataclass
class PeriodInputs:
    """The exports of one period as read from disk."""

    period: str
    folder: Path
    tables: dict[str, io.LoadedTable] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        return {name: table.frame for name, table in self.tables.items()}

    def fingerprint(self) -> dict[str, str]:
        return {name: table.sha256 for name, table in sorted(self.tables.items())}


def period_folder(params: Params, period: str) -> Path:
    return params.data_dir / period


def export_files(params: Params, period: str) -> dict[str, Path]:
    """The export files present for ``period`` (dataset id → path), without reading them."""
    folder = period_folder(params, period)
    found: dict[str, Path] = {}
    for dataset in exports():
        path = io.find_dataset_file(folder, dataset)
        if path is not None:
            found[dataset.id] = path
    return found


def load_period(
    params: Params, period: str, datasets: list[str] | None = None
) -> PeriodInputs:
    """Read the exports of one period (those present; the rest are listed as missing)."""
    folder = period_folder(params, period)
    inputs = PeriodInputs(period=period, folder=folder)
    for dataset in exports():
        if datasets is not None and dataset.id not in datasets:
            continue
        table = io.load(folder, dataset.id, params, required=False)
        if table is None:
            inputs.missing.append(dataset.id)
        else:
            inputs.tables[dataset.id] = table
    return inputs


def check_period_exists(params: Params, period: str) -> None:
    """A clear error when the data folder or the period's folder is missing or empty."""
    if not params.data_dir.is_dir():
        raise UsageError("error.data_dir_missing", folder=str(params.data_dir))
    folder = period_folder(params, period)
    if not folder.is_dir() or not export_files(params, period):
        available = sorted(
            p.name for p in params.data_dir.iterdir() if p.is_dir() and _is_period(p.name)
        )
        raise UsageError(
            "error.period_without_exports",
            period=period,
            folder=str(folder),
            available=", ".join(available) or "–",
        )


def _is_period(name: str) -> bool:
    try:
        Period.parse(name)
    except UsageError:
        return False
    return True


def _catalogue_hash(params: Params) -> str:
    text = json.dumps(params.catalogue.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256((ENGINE_VERSION + text).encode()).hexdigest()[:16]


#: How export files are read for the KPIs: ``columnar`` (DuckDB, one pass per
#: file, falling back to the loader file by file) or ``pandas`` (the loader).
READERS = ("columnar", "pandas")


def _month_values(
    params: Params,
    period: str,
    cache_dir: Path | None,
    strict: bool,
    reader: str = "columnar",
    memo: dict[Any, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    files = export_files(params, period)
    info: dict[str, Any] = {"period": period, "files": {}}
    if not files:
        return pd.DataFrame(columns=VALUE_COLUMNS), info
    hashes = {name: io.sha256_file(path) for name, path in sorted(files.items())}
    info["files"] = {name: {"path": str(files[name]), "sha256": h} for name, h in hashes.items()}
    key = hashlib.sha256(
        (_catalogue_hash(params) + json.dumps(hashes, sort_keys=True)).encode()
    ).hexdigest()[:24]
    cached = cache_dir / f"{period}-{key}.parquet" if cache_dir else None
    if cached is not None and cached.is_file():
        return io.read_parquet(cached), info
    frames: dict[str, pd.DataFrame] = {}
    rest = list(files)
    if reader == "columnar":
        from qmsnb import columnar

        with contextlib.ExitStack() as stack:
            parquet_dir = (
                cache_dir.parent / "parquet" if cache_dir is not None
                else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qmsnb-pq-")))
            )
            frames, rest = columnar.kpi_frames(
                params, files, parquet_dir, strict=strict, hashes=hashes, memo=memo
            )
    inputs = load_period(params, period, datasets=rest)
    if strict:
        for table in inputs.tables.values():
            io.raise_for_problems(table)
    values = compute_period({**inputs.frames, **frames}, params.catalogue, period)
    if cached is not None:
        io.write_parquet(cached, values)
    return values, info


def kpi_history(
    params: Params,
    period: str,
    cache_dir: Path | None = None,
    strict: bool = True,
    reader: str = "columnar",
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Assessed KPI values for the trend window ending with ``period``.

    Args:
        strict: raise a DataError for any bad value in ``period``'s own exports
            (earlier months of the window are read as they are).
        reader: one of :data:`READERS` (the results are the same; tests compare them).
    """
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; use one of {', '.join(READERS)}")
    months = [str(p) for p in Period.parse(period).back(params.catalogue.status.trend_months)]
    frames, infos = [], []
    memo: dict[Any, Any] = {}  # values the loader converted, shared by the months
    for month in months:
        values, info = _month_values(
            params, month, cache_dir, strict and month == period, reader, memo
        )
        if not values.empty:
            frames.append(values)
        infos.append(info)
    if not frames:
        return pd.DataFrame(columns=[*VALUE_COLUMNS]), infos
    values = pd.concat(frames, ignore_index=True)
    return assess(values, params.catalogue), infos


def load_registers(params: Params, strict: bool = True) -> dict[str, io.LoadedTable]:
    """Read the registers the quality office keeps (missing ones are skipped).

    A register the records store keeps is read from the store (a snapshot of its
    current state); the others from their files in ``registers_dir``.
    """
    return read_registers(params, strict)[0]


def read_registers(
    params: Params, strict: bool = True
) -> tuple[dict[str, io.LoadedTable], dict[str, Any]]:
    """:func:`load_registers` and the records store's state (url, fingerprint,
    registers it supplied; empty without a store)."""
    from qmsnb.records import snapshot

    kept, store_info = snapshot(params)
    found: dict[str, io.LoadedTable] = {}
    for dataset in registers():
        if dataset.id in kept:
            found[dataset.id] = kept[dataset.id]
            continue
        table = io.load(params.registers_dir, dataset.id, params, required=False)
        if table is None:
            continue
        if strict:
            io.raise_for_problems(table)
        found[dataset.id] = table
    return found, store_info


def prepare(params: Params, period: str, out_dir: Path) -> dict[str, Any]:
    """Write the prepared tables of ``period`` into ``out_dir`` and return their meta.

    Raises:
        UsageError: no data folder, or no exports for the period.
        DataError: a bad value in the period's exports or in a register.
    """
    check_period_exists(params, period)
    cache_dir = params.output_dir / ".cache" / "kpi"
    assessed, months = kpi_history(params, period, cache_dir)
    io.write_parquet(out_dir / "kpi.parquet", assessed)
    regs, store_info = read_registers(params)
    inputs: list[dict[str, Any]] = []
    for month in months:
        for name, entry in month["files"].items():
            inputs.append({"period": month["period"], "dataset": name, **entry})
    for name, table in regs.items():
        io.write_parquet(out_dir / f"{name}.parquet", table.frame)
        inputs.append(
            {"period": None, "dataset": name, "path": table.source or str(table.path),
             "sha256": table.sha256}
        )
    meta = {
        "period": period,
        "months": [m["period"] for m in months if m["files"]],
        "inputs": inputs,
        "registers": sorted(regs),
        "records_store": store_info,
    }
    io.write_json(out_dir / "meta.json", meta)
    return meta


def read_prepared(folder: Path) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, Any]]:
    """The prepared tables written by :func:`prepare`."""
    if not (folder / "meta.json").is_file():
        raise DataError("error.prepared_missing", folder=str(folder))
    meta = io.read_json(folder / "meta.json")
    regs = {
        name: io.read_parquet(folder / f"{name}.parquet")
        for name in meta["registers"]
        if name in DATASETS
    }
    return io.read_parquet(folder / "kpi.parquet"), regs, meta
