"""The prepare step: from a period's exports and the registers to small tables.

Run once per period by the batch driver (and on the fly when a notebook is opened
interactively without a batch run). It loads the exports of the trend window,
computes every indicator per department and month with :mod:`qmsnb.kpi`, assesses
status and warnings, and writes the small tables every notebook reads:

``prepared/kpi.parquet``
    assessed KPI values of the trend window, all departments and the organisation;
``prepared/<register>.parquet``
    the registers (objectives, audit programme, findings, actions, risks);
``prepared/complaint_counts.parquet``
    complaint tickets per month × department × category × subcategory over the
    trend window (with the escalated ones): the shared base of complaint trends,
    Pareto charts and surge alerts (:func:`complaint_counts`);
``prepared/complaint_tickets.parquet``
    the period's own tickets, a few columns and the text cut short, for batch,
    repeat-complainant and escalation analysis (:func:`complaint_tickets`);
``prepared/<table>.parquet``
    further tables registered with :func:`register_table` by the modules in
    :data:`TABLE_MODULES` (e.g. ``risks_previous``: the risk register at the end
    of the previous period, replayed from the records store's history);
``prepared/meta.json``
    the period, the input files with their sha256, the months found, and the
    records store's URL and fingerprint when registers came from it.

Registers the records store keeps (:mod:`qmsnb.records`) are snapshotted from
the store, so a report is reproducible from its prepared tables even as
auditors keep saving; the others are read from ``registers_dir``.

A month's KPI values are cached under ``<outputs>/.cache/kpi/`` keyed by the
sha256 of its export files and of the catalogue, so re-running a month after one
export was corrected recomputes only that month; complaint counts likewise under
``<outputs>/.cache/complaints/``, keyed by the complaint export's sha256.

Tables that are neither KPI values nor registers are listed in ``meta["tables"]``
and read back by :func:`read_tables` (the context offers them as ``ctx.table(name)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
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
#: Bump when the way complaint counts are computed changes (invalidates their cache).
COUNTS_VERSION = "1"
#: Columns of :func:`complaint_counts`.
COUNT_COLUMNS = ["period", "department", "category", "subcategory", "tickets", "escalated"]
#: Columns of the period's tickets kept for root-cause analysis (no due/closing times).
TICKET_COLUMNS = [
    "ticket_id",
    "created_at",
    "department",
    "category",
    "subcategory",
    "channel",
    "customer_id",
    "text",
    "escalated",
    "closed_on_time",
    "satisfied",
]
#: Complaint text is cut to this many characters in the prepared tickets.
TEXT_CHARS = 120

#: Further prepared tables an analysis needs: name → builder(params, period) → frame.
#: Modules in :data:`TABLE_MODULES` register theirs when imported.
TABLES: dict[str, Callable[[Params, str], pd.DataFrame]] = {}
TABLE_MODULES: list[str] = ["qmsnb.analysis.review", "qmsnb.risks"]


Builder = Callable[..., pd.DataFrame]


def register_table(name: str) -> Callable[[Builder], Builder]:
    """Register a builder of ``prepared/<name>.parquet``."""

    def deco(build: Builder) -> Builder:
        TABLES[name] = build
        return build

    return deco


def prepared_tables() -> dict[str, Callable[[Params, str], pd.DataFrame]]:
    """Every registered table builder (importing the modules that declare them)."""
    import importlib

    for module in TABLE_MODULES:
        importlib.import_module(module)
    return dict(TABLES)


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


def load_period(params: Params, period: str, datasets: list[str] | None = None) -> PeriodInputs:
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
    leave_out: Collection[str] = (),
    reader: str = "columnar",
    memo: dict[Any, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    files = {
        name: path for name, path in export_files(params, period).items() if name not in leave_out
    }
    info: dict[str, Any] = {"period": period, "files": {}}
    if not files:
        return pd.DataFrame(columns=VALUE_COLUMNS), info
    hashes = {name: io.sha256_file(path) for name, path in sorted(files.items())}
    info["files"] = {name: {"path": str(files[name]), "sha256": h} for name, h in hashes.items()}
    key = hashlib.sha256(
        (
            _catalogue_hash(params)
            + params.lookups_fingerprint()
            + json.dumps(hashes, sort_keys=True)
        ).encode()
    ).hexdigest()[:24]
    cached = cache_dir / f"{period}-{key}.parquet" if cache_dir else None
    if cached is not None and cached.is_file():
        return io.read_parquet(cached), info
    frames: dict[str, pd.DataFrame] = {}
    rest = sorted(files)
    if reader == "columnar":
        from qmsnb import columnar

        with contextlib.ExitStack() as stack:
            parquet_dir = (
                cache_dir.parent / "parquet"
                if cache_dir is not None
                else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qmsnb-pq-")))
            )
            # not strict: the data-quality gate judges values; files it rejected are
            # already left out, and a value the loader cannot convert stays empty
            frames, rest = columnar.kpi_frames(
                params, files, parquet_dir, strict=False, hashes=hashes, memo=memo
            )
    inputs = load_period(params, period, sorted(rest))
    values = compute_period({**inputs.frames, **frames}, params.catalogue, period)
    if cached is not None:
        io.write_parquet(cached, values)
    return values, info


def kpi_history(
    params: Params,
    period: str,
    cache_dir: Path | None = None,
    leave_out: Mapping[str, Collection[str]] | None = None,
    reader: str = "columnar",
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Assessed KPI values for the trend window ending with ``period``.

    Args:
        leave_out: month → exports not to use for that month (they failed the
            data-quality gate): the trend has a gap there rather than a figure
            computed from a bad file.
        reader: one of :data:`READERS` (the results are the same; tests compare them).
    """
    leave_out = leave_out or {}
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; use one of {', '.join(READERS)}")
    months = [str(p) for p in Period.parse(period).back(params.catalogue.status.trend_months)]
    frames, infos = [], []
    memo: dict[Any, Any] = {}  # values the loader converted, shared by the months
    for month in months:
        values, info = _month_values(
            params, month, cache_dir, leave_out.get(month, ()), reader, memo
        )
        if not values.empty:
            frames.append(values)
        infos.append(info)
    if not frames:
        return pd.DataFrame(columns=[*VALUE_COLUMNS]), infos
    values = pd.concat(frames, ignore_index=True)
    return assess(values, params.catalogue), infos


def complaint_counts(tickets: pd.DataFrame, period: str) -> pd.DataFrame:
    """Tickets (and escalated tickets) per department × category × subcategory of one month.

    A ticket without a subcategory counts under ``""``; rows whose department or
    category could not be read are left out.
    """
    if tickets.empty:
        return pd.DataFrame(columns=COUNT_COLUMNS)
    frame = tickets.dropna(subset=["department", "category"])
    frame = frame.assign(
        subcategory=frame["subcategory"].astype("string").fillna(""),
        escalated=frame["escalated"].astype("boolean").fillna(False).astype(int),
    )
    counts = (
        frame.groupby(["department", "category", "subcategory"], observed=True)
        .agg(tickets=("ticket_id", "size"), escalated=("escalated", "sum"))
        .reset_index()
    )
    counts.insert(0, "period", period)
    for column in ("department", "category", "subcategory"):
        counts[column] = counts[column].astype(str)
    counts[["tickets", "escalated"]] = counts[["tickets", "escalated"]].astype("int64")
    return counts[COUNT_COLUMNS]


def complaint_tickets(tickets: pd.DataFrame) -> pd.DataFrame:
    """The period's tickets with the columns root-cause analysis needs, text cut short."""
    if tickets.empty:
        return pd.DataFrame(columns=TICKET_COLUMNS)
    frame = tickets[[c for c in TICKET_COLUMNS if c in tickets.columns]].copy()
    frame["text"] = frame["text"].astype("string").str.slice(0, TEXT_CHARS)
    return frame.reset_index(drop=True)


#: Exports read whole during one prepare (several prepared tables use the same
#: month's complaints): (path, sha256) → frame. Emptied when prepare() ends.
_READ: dict[tuple[str, str], pd.DataFrame] = {}


def _read_export(
    params: Params, period: str, name: str, required: bool = True
) -> io.LoadedTable | None:
    """A month's export as the loader types it, read the columnar way when the
    result is provably the same frame (:func:`qmsnb.columnar.read_table`); the
    loader otherwise (problems are then collected as usual). Each caller gets
    its own copy of the frame."""
    path = export_files(params, period).get(name)
    if path is not None and path.suffix.lower() in (".csv", ".parquet"):
        from qmsnb import columnar

        sha256 = io.sha256_file(path)
        key = (str(path), sha256)
        if key not in _READ:
            frame = columnar.read_table(
                path,
                DATASETS[name],
                params,
                params.output_dir / ".cache" / "parquet",
                sha256=sha256,
            )
            if frame is not None:
                _READ[key] = frame
        if key in _READ:
            return io.LoadedTable(
                dataset=DATASETS[name], path=path, sha256=sha256, frame=_READ[key].copy()
            )
    return io.load(period_folder(params, period), name, params, required=required)


def per_export(
    params: Params,
    period: str,
    export: str,
    kind: str,
    compute: Callable[[pd.DataFrame], pd.DataFrame],
) -> pd.DataFrame | None:
    """``compute`` of a month's export frame (None without the export), kept in
    ``outputs/.cache/<kind>/`` under the file's sha256 (and the params' name/alias
    tables, :meth:`~qmsnb.config.Params.lookups_fingerprint`): a re-run of the month reads
    the small result instead of thirteen months of exports. ``kind`` names the
    computation and its version (change it when ``compute`` changes)."""
    path = export_files(params, period).get(export)
    if path is None:
        return None
    text = f"{kind}\x1f{params.lookups_fingerprint()}\x1f{io.sha256_file(path)}"
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    cached = params.output_dir / ".cache" / kind / f"{period}-{key}.parquet"
    if cached.is_file():
        return io.read_parquet(cached)
    table = _read_export(params, period, export, required=False)
    if table is None:
        return None
    result = compute(table.frame)
    io.write_parquet(cached, result)
    return result


def _month_complaints(
    params: Params, period: str, cache_dir: Path | None
) -> tuple[pd.DataFrame | None, io.LoadedTable | None]:
    """One month's complaint counts (None without a complaints export), from the
    cache when the export is unchanged, and the loaded table when it was read."""
    path = export_files(params, period).get("complaints")
    if path is None:
        return None, None
    text = COUNTS_VERSION + params.lookups_fingerprint() + io.sha256_file(path)
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    cached = cache_dir / f"{period}-{key}.parquet" if cache_dir else None
    if cached is not None and cached.is_file():
        return io.read_parquet(cached), None
    table = _read_export(params, period, "complaints", required=False)
    if table is None:
        return None, None
    counts = complaint_counts(table.frame, period)
    if cached is not None:
        io.write_parquet(cached, counts)
    return counts, table


def complaint_history(
    params: Params,
    period: str,
    cache_dir: Path | None = None,
    leave_out: Mapping[str, Collection[str]] | None = None,
) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
    """Complaint counts over the trend window ending with ``period``, the months that
    had a complaints export, and ``period``'s own tickets (:func:`complaint_tickets`).

    A month whose complaints export the data-quality gate rejected (``leave_out``)
    is left out, like a month without an export.
    """
    months = [str(p) for p in Period.parse(period).back(params.catalogue.status.trend_months)]
    frames, found = [], []
    tickets = pd.DataFrame(columns=TICKET_COLUMNS)
    for month in months:
        if "complaints" in (leave_out or {}).get(month, ()):
            continue
        counts, table = _month_complaints(params, month, cache_dir)
        if counts is None:
            continue
        found.append(month)
        if not counts.empty:
            frames.append(counts)
        if month == period:
            if table is None:
                table = _read_export(params, month, "complaints")
            assert table is not None
            tickets = complaint_tickets(table.frame)
    counts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COUNT_COLUMNS)
    return counts, found, tickets


def load_registers(params: Params) -> dict[str, io.LoadedTable]:
    """Read the registers the quality office keeps (missing ones are skipped).

    A register the records store keeps is read from the store (a snapshot of its
    current state); the others from their files in ``registers_dir``.
    """
    return read_registers(params)[0]


def read_registers(params: Params) -> tuple[dict[str, io.LoadedTable], dict[str, Any]]:
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
        found[dataset.id] = table
    return found, store_info


def gate_left_out(params: Params, period: str) -> dict[str, list[str]]:
    """What the last batch's data-quality gate rejected for ``period`` and its trend
    months (``outputs/<period>/gate.json``), so that a notebook opened in JupyterLab
    leaves out the same files as the published report; empty before any batch run."""
    path = params.output_dir / period / "gate.json"
    if not path.is_file():
        return {}
    return dict(io.read_json(path).get("left_out") or {})


def prepare(
    params: Params,
    period: str,
    out_dir: Path,
    leave_out: Mapping[str, Collection[str]] | None = None,
) -> dict[str, Any]:
    """Write the prepared tables of ``period`` into ``out_dir`` and return their meta.

    Args:
        leave_out: month → exports the data-quality gate rejected; they are not
            used (a gap in the trend) and ``meta["left_out"]`` lists them. Without
            it, what the last batch's gate rejected (:func:`gate_left_out`).

    Raises:
        UsageError: no data folder, or no exports for the period.
        DataError: an export or register cannot be read at all.
    """
    check_period_exists(params, period)
    if leave_out is None:
        leave_out = gate_left_out(params, period)
    try:
        return _prepare(params, period, out_dir, leave_out)
    finally:
        _READ.clear()


def _prepare(
    params: Params, period: str, out_dir: Path, leave_out: Mapping[str, Collection[str]]
) -> dict[str, Any]:
    cache_dir = params.output_dir / ".cache" / "kpi"
    assessed, months = kpi_history(params, period, cache_dir, leave_out)
    io.write_parquet(out_dir / "kpi.parquet", assessed)
    counts, complaint_months, tickets = complaint_history(
        params, period, params.output_dir / ".cache" / "complaints", leave_out
    )
    tables = {"complaint_counts": counts, "complaint_tickets": tickets}
    for name, frame in tables.items():
        io.write_parquet(out_dir / f"{name}.parquet", frame)
    regs, store_info = read_registers(params)
    inputs: list[dict[str, Any]] = []
    for month in months:
        for name, entry in month["files"].items():
            inputs.append({"period": month["period"], "dataset": name, **entry})
    for name, table in regs.items():
        io.write_parquet(out_dir / f"{name}.parquet", table.frame)
        inputs.append(
            {
                "period": None,
                "dataset": name,
                "path": table.source or str(table.path),
                "sha256": table.sha256,
            }
        )
    for name, build in prepared_tables().items():
        tables[name] = build(params, period)
        io.write_parquet(out_dir / f"{name}.parquet", tables[name])
    meta = {
        "period": period,
        "months": [m["period"] for m in months if m["files"]],
        "inputs": inputs,
        "registers": sorted(regs),
        "records_store": store_info,
        "tables": sorted(tables),
        "complaint_months": complaint_months,
        "left_out": [
            {"period": month, "dataset": name}
            for month, names in sorted((leave_out or {}).items())
            for name in sorted(names)
        ],
    }
    io.write_json(out_dir / "meta.json", meta)
    return meta


Prepared = tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, Any]]

#: Prepared tables read once in this process (:func:`remember`), by folder, with
#: the stamps (size, times, inode) of the files they came from.
_REMEMBERED: dict[str, tuple[tuple[Any, ...], Prepared]] = {}


def _stamps(folder: Path, meta: Mapping[str, Any] | None) -> tuple[Any, ...]:
    names = ["meta.json", "kpi.parquet"]
    if meta is not None:
        names += [f"{name}.parquet" for name in meta["registers"] if name in DATASETS]
    return tuple(io.file_stamp(folder / name) for name in names)


def remember(folder: Path) -> None:
    """Read the prepared tables of ``folder`` now and keep them for
    :func:`read_prepared`: the warm engine's kernel template calls this once per
    batch, so each report's kernel, forked from it, finds them read (each
    report read the same eleven files again: ~50 ms a report)."""
    folder = Path(folder).resolve()
    tables = _read_prepared(folder)
    _REMEMBERED[str(folder)] = (_stamps(folder, tables[2]), tables)


def read_prepared(folder: Path) -> Prepared:
    """The prepared tables written by :func:`prepare`.

    Tables :func:`remember`-ed from the same unchanged files are not read again;
    the caller gets its own frames (shallow copies: pandas copies on write)."""
    found = _REMEMBERED.get(str(Path(folder).resolve()))
    if found is not None:
        stamps, (kpi, regs, meta) = found
        if stamps == _stamps(Path(folder).resolve(), meta):
            return (
                kpi.copy(deep=False),
                {name: frame.copy(deep=False) for name, frame in regs.items()},
                json.loads(json.dumps(meta)),
            )
    return _read_prepared(Path(folder))


def _read_prepared(folder: Path) -> Prepared:
    if not (folder / "meta.json").is_file():
        raise DataError("error.prepared_missing", folder=str(folder))
    meta = io.read_json(folder / "meta.json")
    regs = {
        name: io.read_parquet(folder / f"{name}.parquet")
        for name in meta["registers"]
        if name in DATASETS
    }
    return io.read_parquet(folder / "kpi.parquet"), regs, meta


def read_tables(
    folder: Path, meta: dict[str, Any], lazy: bool = False
) -> Mapping[str, pd.DataFrame]:
    """The further prepared tables listed in ``meta["tables"]`` (complaint counts and
    the tables registered in :data:`TABLES`).

    Args:
        lazy: read each table when it is first asked for (a report uses a few of
            them; the month's complaint tickets alone are 390,000 rows at 12
            million calls). ``folder`` must then outlive the mapping.
    """
    files = {
        name: folder / f"{name}.parquet"
        for name in meta.get("tables", [])
        if (folder / f"{name}.parquet").is_file()
    }
    if lazy:
        return LazyTables(files)
    return {name: io.read_parquet(path) for name, path in files.items()}


class LazyTables(Mapping[str, pd.DataFrame]):
    """Prepared tables by name, each read from its parquet file on first access."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self._files = dict(files)
        self._frames: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            self._frames[name] = io.read_parquet(self._files[name])  # KeyError: no such table
        return self._frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)
