"""The data-quality gate: Great Expectations suites that judge every export before use.

This module owns every use of Great Expectations (GX) in qmsnb. GX is imported
lazily (it costs ~4 s), once per batch, in the driver; :func:`preload` starts that
import in a background thread while the exports are being read.

What it does, per dataset and month:

1. read the file with :mod:`qmsnb.io` (decoding, headers, types); what the loader
   could not convert (``not_a_number``, ``not_a_date``, ...) or could not read at
   all (``unreadable``) becomes a critical failure here;
2. build the *GX view* of the typed table: the contract's columns that the file
   has, the row number in the original file (``_row``), the month of the dataset's
   period column (``_period``) and a flag for totals rows inside the data
   (``_totals_row``); on large tables a text key is replaced by an exact integer
   code (same duplicates, a fraction of the memory and time);
3. validate it against ``expectations/<dataset>.json``, the single place where the
   rules live, with suite parameters filled in from params and the other datasets
   (departments, the month, row counts of previous months, the keys that findings
   and actions refer to);
4. turn every failed expectation into a :class:`Failure` with a stable reason code
   (``meta.reason`` of the expectation), its severity (critical blocks, warning
   annotates), the column, how many rows, up to :data:`MAX_SAMPLES` row numbers in
   the original file with their values, and the meaning and fix in zh and en.

A suite that GX cannot fully load (GX drops unknown expectation types with only a
log line) is a :class:`~qmsnb.exceptions.ConfigError`, never a pass. An expectation
that *errors* (``exception_info``) is reported as ``check_error``, not as a data
failure, and blocks like a critical failure (the data could not be vouched for).

Results are cached per file under ``<outputs>/.cache/gate/`` keyed by the file's
sha256, the suite, the params it uses and the suite parameters, so each file of the
12-month trend window is validated once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qmsnb import io
from qmsnb._startup import defer_modules
from qmsnb.contract import DATASETS, Column, Dataset, exports, registers
from qmsnb.exceptions import ConfigError, DataError, ExitCode
from qmsnb.i18n import LANGS, period_label, t
from qmsnb.periods import Period

if TYPE_CHECKING:
    from qmsnb.config import Params

#: Bump when the way results are computed changes (invalidates the cache).
GATE_VERSION = "4"
#: Row numbers (and values) kept per failed expectation.
MAX_SAMPLES = 20
#: Severities of an expectation in a suite.
SEVERITIES = ("critical", "warning")
#: A month whose row count falls below this share of the median of the previous
#: months' counts gets the ``row_count_drop`` warning (the suites' ``min_rows``).
ROW_COUNT_FLOOR = 0.5
#: How many earlier months the row-count median looks at.
ROW_COUNT_MONTHS = 3
#: Tables at least this long get integer codes for their text keys in the GX view.
LARGE_TABLE = 500_000
#: Columns the gate adds to the GX view.
PERIOD_COL = "_period"
TOTALS_COL = "_totals_row"
#: Expectation types whose verdict on a row depends on that row's own values only.
#: On a large table GX judges each distinct value (combination of values) of their
#: columns once, in a compact frame; failures are mapped back to every row that
#: holds a failing value (counts and row numbers in the original file).
ROW_WISE = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
    }
)
#: A column group is compacted only when its distinct values are at most this
#: share of the rows (a key column with a value per row gains nothing).
COMPACT_SHARE = 0.25
#: Column of the compact frame: the id of the distinct value (combination).
VALUE_COL = "_value"
_META_KEYS = ("reason", "zh", "en", "fix_zh", "fix_en")
#: Statuses, worst first.
STATUSES = ("error", "fail", "warn", "missing", "pass")
BLOCKING = ("error", "fail")

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclass
class Failure:
    """One failed expectation (or one kind of value the loader could not read).

    Attributes:
        reason: stable reason code (``missing_column``, ``duplicate_key``, ...).
        severity: ``critical``, ``warning`` or ``error`` (the check itself failed).
        column: the column concerned (``None`` for the whole table).
        check: the expectation type, or ``loader`` for conversion problems.
        count: rows concerned (``None`` when not row-based).
        rows: row numbers in the original file (at most :data:`MAX_SAMPLES`).
        values: the values in those rows, aligned with ``rows``.
        meaning, fix: ``{"zh": ..., "en": ...}``.
        detail: extra facts (missing columns, observed value, exception text).
    """

    reason: str
    severity: str
    column: str | None
    check: str
    count: int | None = None
    rows: list[int] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    meaning: dict[str, str] = field(default_factory=dict)
    fix: dict[str, str] = field(default_factory=dict)
    detail: str = ""


@dataclass
class DatasetResult:
    """The gate's verdict on one dataset in one month (``period`` None: a register)."""

    dataset: str
    period: str | None
    status: str
    file: str | None = None
    sha256: str | None = None
    rows: int | None = None
    failures: list[Failure] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    checks: int = 0
    cached: bool = False

    @property
    def blocking(self) -> bool:
        return self.status in BLOCKING

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetResult:
        fields = {k: v for k, v in data.items() if k != "failures"}
        return cls(**fields, failures=[Failure(**f) for f in data.get("failures", [])])


def _status(failures: Sequence[Failure]) -> str:
    severities = {f.severity for f in failures}
    if "error" in severities:
        return "error"
    if "critical" in severities:
        return "fail"
    if "warning" in severities:
        return "warn"
    return "pass"


def worst(statuses: Iterable[str]) -> str:
    """The worst of some statuses (``pass`` when there are none)."""
    found = set(statuses)
    return next((s for s in STATUSES if s in found), "pass")


@dataclass
class GateResult:
    """The gate's verdict on one period: its exports, the registers, the trend months."""

    period: str
    datasets: dict[str, DatasetResult]
    trend: dict[str, dict[str, DatasetResult]] = field(default_factory=dict)
    suites: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        statuses = [r.status for r in self.datasets.values() if r.status != "missing"]
        return worst(statuses)

    @property
    def has_errors(self) -> bool:
        return any(r.status == "error" for r in self.datasets.values())

    def blocked(self) -> set[str]:
        """Datasets of the period (exports and registers) that reports cannot use."""
        return {name for name, r in self.datasets.items() if r.blocking}

    def warnings(self) -> dict[str, list[Failure]]:
        return {
            name: [f for f in r.failures if f.severity == "warning"]
            for name, r in self.datasets.items()
            if any(f.severity == "warning" for f in r.failures)
        }

    def left_out(self) -> dict[str, list[str]]:
        """Month → exports prepare must not use (rejected in that month)."""
        out: dict[str, list[str]] = {}
        for month, results in {**self.trend, self.period: self.datasets}.items():
            names = sorted(n for n, r in results.items() if r.blocking and r.period is not None)
            if names:
                out[month] = names
        return out

    def rejected(self) -> list[dict[str, Any]]:
        """Every rejected file with its sha256 (kept as it is, never modified)."""
        out = []
        for results in (*self.trend.values(), self.datasets):
            for r in results.values():
                if r.blocking:
                    out.append(
                        {
                            "dataset": r.dataset,
                            "period": r.period,
                            "file": r.file,
                            "sha256": r.sha256,
                            "reasons": sorted(
                                {f.reason for f in r.failures if f.severity != "warning"}
                            ),
                        }
                    )
        return sorted(out, key=lambda x: (x["period"] or "", x["dataset"]))

    @property
    def exit_code(self) -> ExitCode:
        """``qmsnb validate``: 70 when a check errored, 3 when a dataset failed, else 0."""
        if self.has_errors:
            return ExitCode.PROGRAM_ERROR
        if self.blocked():
            return ExitCode.GATE_FAILED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        from importlib import metadata

        return {
            "period": self.period,
            "status": self.status,
            "generated": datetime.now().isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 2),
            "versions": {name: metadata.version(name) for name in ("qmsnb", "great_expectations")},
            "datasets": {name: r.to_dict() for name, r in self.datasets.items()},
            "trend": {
                month: {name: r.to_dict() for name, r in results.items()}
                for month, results in sorted(self.trend.items())
            },
            "rejected": self.rejected(),
            "left_out": self.left_out(),
            "suites": self.suites,
        }


# ---------------------------------------------------------------------------
# Great Expectations, imported lazily
# ---------------------------------------------------------------------------
_IMPORT: dict[str, Any] = {}
_IMPORT_LOCK = threading.Lock()
_IMPORT_THREAD: list[threading.Thread] = []


#: modules GX imports eagerly and uses only inside functions we never call
_GX_UNUSED_AT_IMPORT = ("scipy.stats", "altair")


def _import_gx() -> None:
    with _IMPORT_LOCK:
        if "gx" in _IMPORT:
            return
        # GX logs a full traceback for every expectation type it cannot build and
        # then drops it; we check the count ourselves (see load_suite) and say so.
        logging.getLogger("great_expectations").setLevel(logging.CRITICAL)
        # GX imports these at its top for expectations and renderers the gate
        # does not use: ~1.2 s of its import, now paid only if one is used.
        defer_modules(_GX_UNUSED_AT_IMPORT)
        import great_expectations as gx
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every pandas batch below 1 GB by hashing all of it
        # (seconds on a 12-million-row month) for a batch id we never use.
        pandas_execution_engine.HASH_THRESHOLD = 0
        _IMPORT["gx"] = gx


#: the interpreter's thread switch interval while GX imports in the background
_IMPORT_SWITCH_INTERVAL = 0.002


def _import_in_background() -> None:
    try:
        _import_gx()
    finally:
        sys.setswitchinterval(_SWITCH_INTERVAL[0])


_SWITCH_INTERVAL = [sys.getswitchinterval()]


def preload() -> None:
    """Start importing GX in a background thread (the batch reads files meanwhile).

    The import is ~2.5 s of Python holding the GIL. The reader in the main thread
    releases the GIL for each numpy or Arrow step and, at the default 5 ms switch
    interval, waited up to 5 ms to get it back after each: a 12-million-key
    column's packing took 3.2 s instead of 0.5 s. While the import runs, threads
    switch every 2 ms (0.5 ms cost the import more CPU for no measurable gain)."""
    if "gx" in _IMPORT or _IMPORT_THREAD:
        return
    _SWITCH_INTERVAL[0] = sys.getswitchinterval()
    sys.setswitchinterval(min(_IMPORT_SWITCH_INTERVAL, _SWITCH_INTERVAL[0]))
    thread = threading.Thread(target=_import_in_background, name="qmsnb-gx-import", daemon=True)
    _IMPORT_THREAD.append(thread)
    thread.start()


def _gx() -> Any:
    for thread in _IMPORT_THREAD:
        thread.join()
    _import_gx()
    return _IMPORT["gx"]


# ---------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------
def suite_dir(params: Params) -> Path:
    """``expectations/`` of the project."""
    return params.root / "expectations"


def suite_path(params: Params, dataset: str) -> Path:
    return suite_dir(params) / f"{dataset}.json"


def load_suite_spec(path: Path) -> dict[str, Any]:
    """Read and check the shape of one suite file (without GX).

    Raises:
        ConfigError: unreadable JSON, or an expectation without a type, kwargs, a
            severity of critical/warning, or meta with reason, zh, en, fix_zh, fix_en.
    """
    try:
        spec = json.loads(io.read_text(path))
    except FileNotFoundError:
        raise ConfigError("error.gate.suite_missing", file=str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "error.gate.suite_invalid", file=str(path), index="-", problem=str(exc)
        ) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("expectations"), list):
        raise ConfigError(
            "error.gate.suite_invalid",
            file=str(path),
            index="-",
            problem="{name, expectations: [...]}",
        )
    for index, item in enumerate(spec["expectations"]):
        problem = None
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            problem = "type"
        elif not isinstance(item.get("kwargs"), dict):
            problem = "kwargs"
        elif item.get("severity") not in SEVERITIES:
            problem = "severity: critical | warning"
        elif not isinstance(item.get("meta"), dict) or any(
            not isinstance(item["meta"].get(k), str) or not item["meta"][k].strip()
            for k in _META_KEYS
        ):
            problem = "meta: " + ", ".join(_META_KEYS)
        if problem:
            raise ConfigError(
                "error.gate.suite_invalid", file=str(path), index=index, problem=problem
            )
    return spec


def load_suite(path: Path, spec: Mapping[str, Any] | None = None) -> Any:
    """The GX suite of a suite file; every expectation in the file must load.

    Raises:
        ConfigError: an expectation type GX does not know (misspelt?), or GX
            loaded fewer expectations than the file declares.
    """
    gx = _gx()
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    spec = dict(spec or load_suite_spec(path))
    for index, item in enumerate(spec["expectations"]):
        try:
            get_expectation_impl(item["type"])
        except ExpectationNotFoundError:
            raise ConfigError(
                "error.gate.suite_unknown_type", file=str(path), index=index, type=item["type"]
            ) from None
    try:
        suite = gx.ExpectationSuite(
            name=str(spec.get("name", path.stem)), expectations=spec["expectations"]
        )
    except Exception as exc:  # pydantic/GX validation of kwargs
        raise ConfigError(
            "error.gate.suite_invalid", file=str(path), index="-", problem=str(exc).splitlines()[0]
        ) from exc
    if len(suite.expectations) != len(spec["expectations"]):
        raise ConfigError(
            "error.gate.suite_not_loaded",
            file=str(path),
            loaded=len(suite.expectations),
            declared=len(spec["expectations"]),
        )
    return suite


def _file_hash(path: Path) -> str:
    return io.sha256_file(path) if path.is_file() else ""


# ---------------------------------------------------------------------------
# The GX view of a typed table
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _KeyPacking:
    """How the values of a long text key were packed into integers (and back).

    Keys of one byte length (``C202610-03435847``: a constant prefix and 8 digits):
    the bytes that vary, each as its offset from the smallest byte seen at its
    position, make one mixed-radix number (8 digits: below 10**8, a uint32).
    Equal codes if and only if equal keys.
    """

    template: bytes
    varying: tuple[int, ...]
    #: the smallest byte seen at each varying position ('0' for digits)
    lows: tuple[int, ...]
    #: how many byte values each varying position spans (10 for digits)
    radixes: tuple[int, ...]

    def unpack(self, codes: Iterable[int]) -> list[str]:
        """The keys of ``codes``: exact inverse of the packing."""
        rest = np.asarray(list(codes), dtype=np.uint64)
        keys = np.tile(np.frombuffer(self.template, dtype=np.uint8), (len(rest), 1))
        positions = list(zip(self.varying, self.lows, self.radixes, strict=True))
        for j, low, radix in reversed(positions):
            keys[:, j] = (rest % np.uint64(radix) + np.uint64(low)).astype(np.uint8)
            rest //= np.uint64(radix)
        return [bytes(key).decode("utf-8", errors="replace") for key in keys]


#: rows of a key column packed at once (bounds the temporaries of 12 million keys)
_PACK_ROWS = 1 << 20


def _packed_key(series: pd.Series) -> tuple[np.ndarray, _KeyPacking] | None:
    """An exact integer code per value of a long text key and how to unpack it, or None.

    Keys of one byte length whose varying bytes number at most 8 (``C202610-03435847``:
    a constant prefix and 8 digits) are packed as a mixed-radix number of those
    bytes (:class:`_KeyPacking`): equal codes if and only if equal keys, so
    duplicates are found on integers (uint32 when the key space fits, else uint64).
    """
    import pyarrow as pa

    try:
        chunked = pa.chunked_array(series.array.__arrow_array__())
    except (AttributeError, TypeError, pa.ArrowException):
        return None
    if chunked.null_count or (
        not pa.types.is_string(chunked.type) and not pa.types.is_large_string(chunked.type)
    ):
        return None
    # chunk by chunk (no combined copy of a 12-million-value column): each
    # chunk's bytes as a (values x width) matrix, when all values are one width
    matrices = []
    for chunk in chunked.chunks:
        n = len(chunk)
        if not n:
            continue
        offsets, data = io.string_buffers(chunk)
        lengths = np.diff(offsets)
        if lengths.min() != lengths.max() or (matrices and lengths[0] != matrices[0].shape[1]):
            return None
        width = int(lengths[0])
        if width > 64 or not width:
            return None
        matrices.append(data[offsets[0] : offsets[0] + n * width].reshape(n, width))
    if not matrices:
        return None
    # the smallest and largest byte at each position: a position whose bytes
    # never differ is the template's
    lowest = np.min([m.min(axis=0) for m in matrices], axis=0)
    highest = np.max([m.max(axis=0) for m in matrices], axis=0)
    varying = np.flatnonzero(lowest != highest).tolist()
    if len(varying) > 8:
        return None
    lows = [int(lowest[j]) for j in varying]
    radixes = [int(highest[j]) - int(lowest[j]) + 1 for j in varying]
    space = int(np.prod(radixes, dtype=object)) if radixes else 1
    dtype = np.uint32 if space <= 2**32 else np.uint64
    codes = np.zeros(sum(len(m) for m in matrices), dtype=dtype)
    row = 0
    for matrix in matrices:
        for start in range(0, len(matrix), _PACK_ROWS):
            part = matrix[start : start + _PACK_ROWS]
            out = codes[row + start : row + start + len(part)]
            for j, low, radix in zip(varying, lows, radixes, strict=True):
                out *= dtype(radix)
                out += part[:, j] - np.uint8(low)
        row += len(matrix)
    packing = _KeyPacking(
        template=bytes(matrices[0][0]),  # its constant bytes are every key's
        varying=tuple(varying),
        lows=tuple(lows),
        radixes=tuple(radixes),
    )
    return codes, packing


class _GxForm:
    """A column as the GX view holds it (:func:`gx_view`), made as soon as the
    loader converted it (``io.read_dataset(keep=...)``): a 12-million-row export
    then never holds its typed frame and its GX view at once.

    * integers (``Int64``: GX compares masked integers row by row in Python) as
      float64, vectorised;
    * on large tables, a single-column text key that the suites only check for
      nulls and duplicates as packed integer codes (:func:`_packed_key`);
      :attr:`packings` says how to unpack them for the report's sample values;
    * on large tables, numbers and yes/no columns with few distinct values
      (waits in seconds, IVR scores) as a categorical of their values (one or two
      bytes a row instead of eight): GX judges their distinct values
      (:func:`_compact`) and sees them as plain columns otherwise (:func:`_plain`).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.packings: dict[str, _KeyPacking] = {}
        #: for each packed key, the rows whose key occurs again (:func:`_repeated`),
        #: found in a second thread while the file is read (its sort lets go of
        #: the GIL: half a second of 12 million keys on the other core)
        self.repeated: dict[str, Future[np.ndarray]] = {}

    def __call__(self, column: Column, values: pd.Series) -> Any:
        name = column.name
        large = len(values) >= LARGE_TABLE
        if isinstance(values.dtype, pd.CategoricalDtype) and _codable(values.cat.categories.dtype):
            # numbers read as a dictionary: integers as float64 (the GX form)
            categories = values.cat.categories
            if categories.dtype.kind in "iu" or isinstance(categories.dtype, pd.Int64Dtype):
                floats = pd.Index(categories.to_numpy(dtype="float64", na_value=np.nan))
                return pd.Categorical.from_codes(
                    values.cat.codes.to_numpy(), dtype=pd.CategoricalDtype(floats)
                )
            return values.array
        if large and self.dataset.key != (name,) and _codable(values.dtype):
            coded = _coded(values)
            if coded is not None:
                return coded
        if isinstance(values.dtype, pd.Int64Dtype):
            return values.to_numpy(dtype="float64", na_value=np.nan)
        if (
            large
            and self.dataset.key == (name,)
            and pd.api.types.is_string_dtype(values.dtype)
            and not (column.values or column.lookup)
        ):
            found = _packed_key(values)
            if found is not None:
                codes, self.packings[name] = found
                pool = ThreadPoolExecutor(1, thread_name_prefix="qmsnb-repeated")
                self.repeated[name] = pool.submit(_repeated, pd.Series(codes, copy=False))
                pool.shutdown(wait=False)  # the thread ends with its one task
                return codes
        if isinstance(values.dtype, np.dtype):
            return values.to_numpy(copy=False)
        return values.array


def _codable(dtype: Any) -> bool:
    """Numbers and yes/no values: what :func:`_coded` may hold as a categorical."""
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    return pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    )


def _few_values(series: pd.Series) -> bool:
    """Whether a sample of ``series`` (every n-th of ~65,000 values) holds at most
    :data:`COMPACT_SHARE` distinct values per value: a sample first, before
    hashing 12 million."""
    sample = series.iloc[:: max(1, len(series) // 65_536)]
    return sample.nunique(dropna=False) <= COMPACT_SHARE * len(sample)


def _coded(values: pd.Series) -> pd.Categorical | None:
    """``values`` as a categorical of their distinct values (integers as float64, the
    GX form), or None when they are too many to gain from it.

    Yes/no values are their own codes; integers within a short range are coded by
    their offset from the smallest; other numbers a million rows at a time."""
    n = len(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        categories = pd.Index(pd.array([False, True], dtype="boolean"))
        codes = values.to_numpy(dtype=np.int8, na_value=-1)
        return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories))
    if not _few_values(values):  # near-unique values are not worth coding
        return None
    if isinstance(values.dtype, pd.Int64Dtype) or pd.api.types.is_integer_dtype(values.dtype):
        coded = _coded_range(values)
        if coded is not None:
            return coded
    parts = range(0, n, _CODE_ROWS)

    def chunk(start: int) -> np.ndarray:
        return values.iloc[start : start + _CODE_ROWS].to_numpy(dtype="float64", na_value=np.nan)

    uniques = np.zeros(0, dtype="float64")
    for start in parts:
        part = chunk(start)
        uniques = np.union1d(uniques, pd.unique(part[~np.isnan(part)]))
        if len(uniques) > COMPACT_SHARE * n:
            return None
    codes = np.empty(n, dtype=io.code_dtype(len(uniques)))
    index = pd.Index(uniques)  # its hash table is built once: each chunk a lookup
    for start in parts:
        part = chunk(start)
        codes[start : start + len(part)] = index.get_indexer(part)  # NaN: -1
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(index))


def _coded_range(values: pd.Series) -> pd.Categorical | None:
    """Integers within a short range coded by their offset from the smallest (no
    hashing), renumbered to the values present; None when the range is long."""
    low, high = values.min(), values.max()
    if pd.isna(low) or int(high) - int(low) >= 1 << 16:
        return None
    low = int(low)
    span = int(high) - low + 1
    array = values.array
    # the integers and the missing-value mask of a masked array as they are (no
    # conversion to floats); a plain integer array has no mask
    data = getattr(array, "_data", None)
    mask = getattr(array, "_mask", None)
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iu":
        data, mask = values.to_numpy(), None
    if mask is None:
        mask = np.zeros(len(data), dtype=bool)
    parts = range(0, len(data), _CODE_ROWS)

    def offsets(start: int) -> np.ndarray:  # span: missing
        part = data[start : start + _CODE_ROWS]
        return np.where(mask[start : start + _CODE_ROWS], span, part - low)

    seen = np.zeros(span + 1, dtype=bool)  # the last: missing
    for start in parts:
        seen[offsets(start)] = True
    present = np.flatnonzero(seen[:span])
    renumber = np.full(span + 1, -1, dtype=io.code_dtype(len(present)))
    renumber[present] = np.arange(len(present))  # renumber[span] (missing) stays -1
    codes = np.empty(len(data), dtype=renumber.dtype)
    for start in parts:
        part = offsets(start)
        codes[start : start + len(part)] = renumber[part]
    categories = pd.Index((present + low).astype("float64"))
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories))


#: rows coded at once by :func:`_coded`
_CODE_ROWS = 1 << 20


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the columns :func:`_coded` held as categoricals back as their
    values, for GX checks that look at the column as a whole."""
    coded = [
        name
        for name, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.CategoricalDtype) and _codable(dtype.categories.dtype)
    ]
    if not coded:
        return frame
    frame = frame.copy(deep=False)
    for name in coded:
        series = frame[name]
        values = series.cat.categories.array.take(series.cat.codes.to_numpy(), allow_fill=True)
        frame[name] = values.to_numpy() if isinstance(values.dtype, np.dtype) else values
    return frame


#: rows turned into month codes at once (bounds the temporaries on 12 million rows)
_MONTH_ROWS = 1 << 20


def _months(stamps: np.ndarray) -> pd.Categorical:
    """The month (``2026-10``) of each timestamp, as a categorical of the months
    present (missing: NaN): each timestamp placed among the month boundaries
    between the earliest and the latest (no calendar arithmetic per row)."""
    stamps = stamps.astype("datetime64[us]", copy=False)
    values = stamps.view("int64")
    present_mask = ~np.isnat(stamps)
    if not present_mask.any():
        return pd.Categorical.from_codes(np.full(len(stamps), -1, dtype=np.int8), categories=[])
    top = np.iinfo(np.int64)
    low = values.min(where=present_mask, initial=top.max)
    high = values.max(where=present_mask, initial=top.min)
    first = np.datetime64(int(low), "us").astype("datetime64[M]")
    last = np.datetime64(int(high), "us").astype("datetime64[M]")
    months = np.arange(first, last + 1)  # every month from the earliest to the latest
    starts = months[1:].astype("datetime64[us]").view("int64")
    position = np.empty(len(stamps), dtype=io.code_dtype(len(months)))
    for start in range(0, len(stamps), _MONTH_ROWS):
        part = values[start : start + _MONTH_ROWS]
        position[start : start + len(part)] = np.searchsorted(starts, part, side="right")
    # only the months that hold a timestamp become categories
    seen = np.zeros(len(months), dtype=bool)
    for start in range(0, len(stamps), _MONTH_ROWS):
        part = position[start : start + _MONTH_ROWS]
        seen[part[present_mask[start : start + _MONTH_ROWS]]] = True
    present = np.flatnonzero(seen)
    renumber = np.full(len(months), -1, dtype=io.code_dtype(len(present)))
    renumber[present] = np.arange(len(present))
    codes = renumber[position]
    codes[~present_mask] = -1
    labels = [str(month) for month in months[present]]
    return pd.Categorical.from_codes(codes, categories=labels)


def gx_view(table: io.LoadedTable, period: str | None = None) -> pd.DataFrame:
    """The frame GX validates: present contract columns, ``_row``, ``_period``, ``_totals_row``.

    Columns are taken in their GX form (:class:`_GxForm`); a table read with
    ``keep=_GxForm(...)`` already holds them so, and its arrays are used as they are.
    """
    frame = table.frame
    dataset = table.dataset
    form = table.keep if isinstance(table.keep, _GxForm) else _GxForm(dataset)
    columns: dict[str, Any] = {io.ROW: frame[io.ROW].to_numpy()}
    for name in table.present_columns:
        columns[name] = form(dataset.column(name), frame[name])
    view = pd.DataFrame(columns, copy=False)  # the typed frame's arrays, not copies
    if dataset.period_column and dataset.period_column in table.present_columns:
        view[PERIOD_COL] = _months(frame[dataset.period_column].to_numpy(dtype="datetime64[us]"))
    view[TOTALS_COL] = (
        np.isin(view[io.ROW].to_numpy(), table.totals_rows)
        if table.totals_rows
        else np.zeros(len(view), dtype=bool)
    )
    return view


def _columns_of(item: Mapping[str, Any]) -> set[str]:
    kwargs = item["kwargs"]
    names = {kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")}
    names.update(kwargs.get("column_list") or [])
    condition = kwargs.get("row_condition")
    if isinstance(condition, dict):  # a GX Condition as JSON: {"column": {"name": ...}, ...}
        names.update(
            str(v["name"]) for v in _walk(condition) if isinstance(v, dict) and "name" in v
        )
    elif isinstance(condition, str):
        import re

        names.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:==|!=|>=|<=|>|<)", condition))
    return {n for n in names if n}


def _walk(value: Any) -> Iterable[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _parameters_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            return {str(value["$PARAMETER"])}
        return set().union(*(_parameters_of(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_parameters_of(v) for v in value)) if value else set()
    return set()


# ---------------------------------------------------------------------------
# The compact frame: distinct values, for row-wise expectations on large tables
# ---------------------------------------------------------------------------
@dataclass
class _Compact:
    """The distinct values of some columns of a large view.

    Attributes:
        frame: one row per distinct value (combination): the columns as typed in
            the view, the row number of the first row holding it (``_row``) and its
            id (``_value``).
        codes: a code per row of the view (equal codes: equal values; -1 is the
            last code, as numpy indexes it: a categorical's own codes serve as
            they are, no copy of a 12-million-row column is kept).
        ids: the id of each code (-1: a code no row has).
        counts: how many rows hold each id.
        rows: the view's row numbers (in the original file), aligned with ``codes``.
    """

    frame: pd.DataFrame
    codes: np.ndarray
    ids: np.ndarray
    counts: np.ndarray
    rows: np.ndarray

    def failing(self, values: Iterable[int]) -> tuple[int, list[int]]:
        """Rows holding the failing ids: how many, and the first :data:`MAX_SAMPLES` rows."""
        bad = np.zeros(len(self.counts), dtype=bool)
        bad[np.fromiter(values, dtype=np.int64)] = True
        bad_code = np.zeros(len(self.ids), dtype=bool)
        bad_code[self.ids >= 0] = bad[self.ids[self.ids >= 0]]
        positions: list[int] = []  # the first rows only: a million at a time
        for start in range(0, len(self.codes), _CODE_ROWS):
            found = np.flatnonzero(bad_code[self.codes[start : start + _CODE_ROWS]])
            positions.extend((found[: MAX_SAMPLES - len(positions)] + start).tolist())
            if len(positions) >= MAX_SAMPLES:
                break
        picked = self.rows[np.asarray(positions, dtype=np.int64)]
        return int(self.counts[bad].sum()), picked.astype(int).tolist()


def _column_codes(series: pd.Series) -> tuple[np.ndarray, int] | None:
    """A code per row, equal for equal values, and the number of codes ``width``
    (-1, missing, stands for code ``width - 1``); None when the column has too many
    distinct values to gain from it. A categorical's codes are its own (no copy)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), len(dtype.categories) + 1
    if pd.api.types.is_bool_dtype(dtype):
        return series.to_numpy(dtype=np.int8, na_value=-1), 3
    if not _few_values(series):  # factorizing near-unique values costs for nothing
        return None
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes.astype(np.int32 if len(uniques) < 2**31 - 1 else np.int64), len(uniques) + 1


def _nonnegative(codes: np.ndarray, width: int) -> np.ndarray:
    """``codes`` with -1 written as ``width - 1`` (a new array of at least int64)."""
    out = codes.astype(np.int64)
    np.add(out, width, out=out, where=out < 0)  # ~half the time of out[out < 0] += width
    return out


def _compact(view: pd.DataFrame, columns: Sequence[str]) -> _Compact | None:
    """The compact frame of ``columns`` of ``view``, or None when it would not be compact."""
    n = len(view)
    if not n or not columns:
        return None
    key: np.ndarray | None = None
    size = 1
    for name in columns:
        found = _column_codes(view[name])
        if found is None:
            return None
        codes, width = found
        if key is None:
            key, size = codes, width
            continue
        if key.min() < 0:
            key = _nonnegative(key, size)
        if size * width > 4 * n:  # keep the combined codes small: renumber them
            key, uniques = pd.factorize(key)
            size = len(uniques)
        key = key.astype(np.int64) * width + _nonnegative(codes, width)
        size *= width
    assert key is not None
    # counted a million rows at a time (bincount takes non-negative int64: a whole
    # column's copy otherwise)
    counts = np.zeros(size, dtype=np.int64)
    for start in range(0, n, _CODE_ROWS):
        counts += np.bincount(_nonnegative(key[start : start + _CODE_ROWS], size), minlength=size)
    present = np.flatnonzero(counts)
    if len(present) > COMPACT_SHARE * n:
        return None
    ids = np.full(size, -1, dtype=np.int64)
    ids[present] = np.arange(len(present))
    first = _first_rows(key, present, size)
    rows = view[io.ROW].to_numpy()
    frame = _plain(view[list(columns)].iloc[first].reset_index(drop=True))
    frame[io.ROW] = rows[first]
    frame[VALUE_COL] = np.arange(len(present))
    return _Compact(frame=frame, codes=key, ids=ids, counts=counts[present], rows=rows)


def _first_rows(key: np.ndarray, present: np.ndarray, size: int) -> np.ndarray:
    """The position of the first row holding each code of ``present`` (sorted, in
    ``range(size)``; -1 in ``key`` is ``size - 1``): the few distinct values of a
    large column mostly appear in its first rows; the rows holding the others are
    found with one lookup per row."""
    first = np.full(len(present), -1, dtype=np.int64)

    def place(codes: np.ndarray, at: np.ndarray) -> None:
        first[np.searchsorted(present, _nonnegative(codes, size))] = at

    place(*np.unique(key[: 1 << 18], return_index=True))
    if not (first < 0).any():
        return first
    # rarer values: only the rows holding them are looked at, a million rows at a
    # time, until each has been seen (a value that fills the second half of the
    # month is found in its first chunk, not sorted twelve million times)
    wanted = np.zeros(size, dtype=bool)
    wanted[present[first < 0]] = True
    for start in range(1 << 18, len(key), _CODE_ROWS):
        chunk = key[start : start + _CODE_ROWS]
        rows = np.flatnonzero(wanted[chunk])  # -1 indexes the last code, as meant
        if not len(rows):
            continue
        codes, at = np.unique(chunk[rows], return_index=True)
        place(codes, rows[at] + start)
        wanted[_nonnegative(codes, size)] = False
        if not wanted.any():
            break
    return first


#: Expectations whose failing rows are exactly the rows holding a value that
#: occurs more than once in their (single) column.
DUPLICATES_ONLY = frozenset({"expect_column_values_to_be_unique"})


def _duplicates_only(item: Mapping[str, Any]) -> bool:
    """The expectation fails exactly the rows whose value occurs again (no ``mostly``,
    no condition): the rows of values that occur once cannot change its result."""
    kwargs = item["kwargs"]
    return (
        item["type"] in DUPLICATES_ONLY
        and kwargs.get("mostly") is None
        and not kwargs.get("row_condition")
    )


def _repeated(series: pd.Series) -> np.ndarray:
    """A mask of the rows whose value occurs in another row too (nulls aside)."""
    if series.dtype.kind in "iuf":  # packed keys, numbers: sorting beats hashing 3x
        values = series.to_numpy()
        ordered = np.sort(values)
        twice = ordered[1:][ordered[1:] == ordered[:-1]]
        return np.isin(values, np.unique(twice)) if len(twice) else np.zeros(len(values), bool)
    return series.duplicated(keep=False).to_numpy() & series.notna().to_numpy()


def _row_wise(item: Mapping[str, Any]) -> bool:
    """The expectation judges each row by its own values (``mostly`` counts rows)."""
    return item["type"] in ROW_WISE and item["kwargs"].get("mostly") is None


# ---------------------------------------------------------------------------
# Validation of one table
# ---------------------------------------------------------------------------
def _row_positions(frame: pd.DataFrame, rows: Sequence[int]) -> np.ndarray:
    numbers = frame[io.ROW].to_numpy()
    positions = np.searchsorted(numbers, np.asarray(rows, dtype=numbers.dtype))
    positions = np.clip(positions, 0, max(len(numbers) - 1, 0))
    return positions[numbers[positions] == np.asarray(rows)] if len(numbers) else positions


def _sample_values(table: io.LoadedTable, rows: Sequence[int], columns: Sequence[str]) -> list[str]:
    """The values of ``columns`` in ``rows`` as the typed table holds them."""
    if not rows or not columns:
        return []
    positions = _row_positions(table.frame, rows)
    present = [c for c in columns if c in table.frame.columns]
    packings = table.keep.packings if isinstance(table.keep, _GxForm) else {}
    cells: list[list[str]] = []
    for name in present:
        picked = table.frame[name].iloc[positions.astype(int)].tolist()
        if name in packings:  # held as packed codes: the keys themselves
            cells.append(packings[name].unpack(picked))
            continue
        integer = name in table.dataset.column_names and table.dataset.column(name).dtype == "int"
        cells.append([_cell_text(v, integer) for v in picked])
    return [" | ".join(row) for row in zip(*cells, strict=True)] if cells else []


def _cell_text(value: Any, integer: bool) -> str:
    if pd.isna(value):
        return ""
    if integer and isinstance(value, float) and value.is_integer():
        return str(int(value))  # an integer column held as floats (its GX form)
    return str(value)


def _exception_text(info: Any) -> str | None:
    if isinstance(info, dict):
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "error")
        for value in info.values():
            text = _exception_text(value)
            if text:
                return text
    return None


def _failure_from_result(
    result: Any,
    item: Mapping[str, Any],
    table: io.LoadedTable,
    compact: _Compact | None = None,
    value: str = VALUE_COL,
) -> Failure | None:
    """The failure of one expectation's result (None: it passed).

    Args:
        compact: the compact frame GX judged instead of the rows: failing values
            are mapped back to the rows that hold them.
        value: the column of the judged frame that holds ``compact``'s value ids.
    """
    meta = item["meta"]
    kwargs = item["kwargs"]
    column = (
        kwargs.get("column")
        or (", ".join(kwargs["column_list"]) if kwargs.get("column_list") else None)
        or kwargs.get("column_A")
    )
    if column == PERIOD_COL:
        column = table.dataset.period_column
    elif column == TOTALS_COL:
        column = None
    meaning = {"zh": meta["zh"], "en": meta["en"]}
    fix = {"zh": meta["fix_zh"], "en": meta["fix_en"]}
    error = _exception_text(result.exception_info)
    if error:
        return Failure(
            reason="check_error",
            severity="error",
            column=column,
            check=item["type"],
            meaning={lang: t("gate.reason.check_error", lang) for lang in LANGS},
            fix={lang: t("gate.fix.check_error", lang) for lang in LANGS},
            detail=error[:500],
        )
    if result.success:
        return None
    payload = result.result or {}
    if compact is not None:
        values = [
            int(entry[value])
            for entry in (payload.get("unexpected_index_list") or [])
            if isinstance(entry, dict) and value in entry
        ]
        count, found = compact.failing(values)
        payload = {
            **payload,
            "unexpected_count": count,
            "partial_unexpected_index_list": [{io.ROW: r} for r in found],
        }
    rows = [
        int(entry[io.ROW])
        for entry in (payload.get("partial_unexpected_index_list") or [])
        if isinstance(entry, dict) and io.ROW in entry
    ][:MAX_SAMPLES]
    shown = [
        c
        for c in (
            kwargs.get("column_list")
            or [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")]
        )
        if c
    ]
    shown = [c for c in shown if not c.startswith("_")] or (
        [table.dataset.period_column] if kwargs.get("column") == PERIOD_COL else []
    )
    if kwargs.get("column") == TOTALS_COL:
        shown = [table.present_columns[0]] if table.present_columns else []
    detail = ""
    mismatched = (payload.get("details") or {}).get("mismatched") or {}
    if mismatched.get("missing"):
        detail = ", ".join(mismatched["missing"])
        column = detail
    elif "observed_value" in payload and not rows:
        observed = payload["observed_value"]
        detail = ", ".join(map(str, observed)) if isinstance(observed, list) else str(observed)
    severity = str(getattr(result.expectation_config, "severity", None) or item["severity"])
    severity = severity.split(".")[-1].lower()
    return Failure(
        reason=meta["reason"],
        severity=severity,
        column=column,
        check=item["type"],
        count=payload.get("unexpected_count"),
        rows=rows,
        values=_sample_values(table, rows, shown),
        meaning=meaning,
        fix=fix,
        detail=detail,
    )


def _loader_failures(table: io.LoadedTable) -> list[Failure]:
    failures = []
    for problem in table.problems:
        failures.append(
            Failure(
                reason=problem.reason,
                severity="critical",
                column=problem.column,
                check="loader",
                count=problem.count,
                rows=list(problem.rows[:MAX_SAMPLES]),
                values=list(problem.values[:MAX_SAMPLES]),
                meaning={
                    lang: t(f"gate.reason.{problem.reason}", lang, expected=problem.expected)
                    for lang in LANGS
                },
                fix={lang: t(f"gate.fix.{problem.reason}", lang) for lang in LANGS},
            )
        )
    return failures


def _without_unreadable(failures: list[Failure], table: io.LoadedTable) -> list[Failure]:
    """A value the loader could not convert is reported once, as what it is
    (``not_a_date``...), not a second time as an empty cell (``missing_value``)."""
    unreadable: dict[str, tuple[int, set[int]]] = {}
    for problem in table.problems:
        count, rows = unreadable.get(problem.column, (0, set()))
        unreadable[problem.column] = (count + problem.count, rows | set(problem.rows))
    kept = []
    for failure in failures:
        if failure.reason == "missing_value" and failure.column in unreadable and failure.count:
            count, rows = unreadable[failure.column]
            remaining = failure.count - count
            if remaining <= 0:
                continue
            pairs = [
                (r, v) for r, v in zip(failure.rows, failure.values, strict=False) if r not in rows
            ]
            failure.count = remaining
            failure.rows = [r for r, _ in pairs]
            failure.values = [v for _, v in pairs]
        kept.append(failure)
    return kept


#: what a GX run judged: per expectation (by ``id``), the compact frame it was
#: judged on and the column of that frame's value ids (none: judged on rows)
Compacts = dict[int, tuple[_Compact, str]]


def _runs(
    items: list[dict[str, Any]],
    view: pd.DataFrame,
    repeated: Mapping[str, Future[np.ndarray]] | None = None,
) -> Iterator[tuple[list[dict[str, Any]], pd.DataFrame, Compacts]]:
    """The frames GX validates a table's expectations on, one group at a time.

    Args:
        repeated: for some columns, the rows whose value occurs again, already
            found (:attr:`_GxForm.repeated`).
    """
    if len(view) < LARGE_TABLE:
        yield items, view, {}
        return
    # GX copies the whole frame to drop the rows an expectation ignores: on a
    # 12-million-row table each expectation gets only its own columns, and where
    # the verdict is per row, GX judges each distinct value once
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for item in items:
        by_columns.setdefault(tuple(sorted(_columns_of(item))), []).append(item)
    compacted: list[tuple[tuple[str, ...], list[dict[str, Any]], _Compact]] = []
    for columns, group in by_columns.items():
        if not columns:
            yield group, view, {}
            continue
        duplicates = [item for item in group if _duplicates_only(item)]
        if duplicates and len(columns) == 1:
            # only rows whose value occurs again can break uniqueness: GX judges
            # those (the same failing rows) instead of 12 million
            known = (repeated or {}).get(columns[0])
            again = known.result() if known is not None else _repeated(view[columns[0]])
            subset = view.loc[again, [io.ROW, columns[0]]].reset_index(drop=True)
            yield duplicates, _plain(subset), {}
            group = [item for item in group if not _duplicates_only(item)]
            if not group:
                continue
        row_wise = [item for item in group if _row_wise(item)]
        compact = _compact(view, columns) if row_wise else None
        if compact is not None:
            compacted.append((columns, row_wise, compact))
            group = [item for item in group if not _row_wise(item)]
        if group:
            yield group, _plain(view[[io.ROW, *columns]]), {}
    yield from _merged(compacted)


def _merged(
    compacted: list[tuple[tuple[str, ...], list[dict[str, Any]], _Compact]],
) -> Iterator[tuple[list[dict[str, Any]], pd.DataFrame, Compacts]]:
    """The compact frames of column groups that share no column, side by side in
    one frame (one GX run instead of one each: GX spends ~40 ms a run). A shorter
    frame is padded with its first row: a padded row holds a value id already
    there, so the rows found failing are the same."""
    batches: list[list[tuple[tuple[str, ...], list[dict[str, Any]], _Compact]]] = []
    for entry in compacted:
        batch = next((b for b in batches if not set(entry[0]) & {c for e in b for c in e[0]}), None)
        if batch is None:
            batches.append([entry])
        else:
            batch.append(entry)
    for batch in batches:
        length = max(len(compact.frame) for _, _, compact in batch)
        parts, items, compacts = [], [], {}
        for number, (columns, group, compact) in enumerate(batch):
            frame = compact.frame
            if len(frame) < length:
                frame = frame.iloc[list(range(len(frame))) + [0] * (length - len(frame))]
            value = f"{VALUE_COL}{number}"
            part = frame[list(columns)].reset_index(drop=True)
            part[value] = frame[VALUE_COL].to_numpy()
            parts.append(part)
            items.extend(group)
            compacts.update({id(item): (compact, value) for item in group})
        yield items, pd.concat(parts, axis=1), compacts


class _Runner:
    """One ephemeral GX context for a gate run; validates tables against suites."""

    def __init__(self) -> None:
        gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("qmsnb_gate")
        self.count = 0

    def validate(
        self,
        table: io.LoadedTable,
        spec: Mapping[str, Any],
        path: Path,
        parameters: Mapping[str, Any],
        view: pd.DataFrame,
    ) -> tuple[list[Failure], list[dict[str, str]], int]:
        items, skipped = [], []
        for item in spec["expectations"]:
            absent = sorted(c for c in _columns_of(item) if c not in view.columns)
            unknown = sorted(p for p in _parameters_of(item["kwargs"]) if p not in parameters)
            if absent or unknown:
                skipped.append(
                    {
                        "check": item["type"],
                        "reason": item["meta"]["reason"],
                        "why": ("columns: " + ", ".join(absent))
                        if absent
                        else ("parameters: " + ", ".join(unknown)),
                    }
                )
                continue
            items.append(item)
        if not items:
            return [], skipped, 0
        found: list[tuple[int, Failure]] = []
        position = {id(item): i for i, item in enumerate(items)}
        repeated = table.keep.repeated if isinstance(table.keep, _GxForm) else None
        for group, frame, compacts in _runs(items, view, repeated):
            found.extend(
                (position[id(item)], failure)
                for item, failure in self._run(
                    table, spec, path, parameters, group, frame, compacts
                )
            )
            del frame, compacts  # one group's frames at a time
        # in the suite's order, whatever order GX evaluated them in
        return [f for _, f in sorted(found, key=lambda x: x[0])], skipped, len(items)

    def _run(
        self,
        table: io.LoadedTable,
        spec: Mapping[str, Any],
        path: Path,
        parameters: Mapping[str, Any],
        items: list[dict[str, Any]],
        view: pd.DataFrame,
        compacts: Compacts | None = None,
    ) -> list[tuple[dict[str, Any], Failure]]:
        self.count += 1
        name = f"{table.dataset.id}_{self.count}"
        # GX does not keep the suite's order in its results: each expectation
        # carries its position in meta
        numbered = [{**item, "meta": {**item["meta"], "_index": i}} for i, item in enumerate(items)]
        suite = self.context.suites.add(
            load_suite(path, {**spec, "name": name, "expectations": numbered})
        )
        asset = self.source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("whole")
        definition = self.context.validation_definitions.add(
            self.gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        outcome = definition.run(
            batch_parameters={"dataframe": view},
            expectation_parameters=dict(parameters),
            result_format=(
                {
                    # every failing distinct value, to find all the rows holding one
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": sorted({v for _, v in compacts.values()}),
                    "return_unexpected_index_query": False,
                }
                if compacts
                else {
                    "result_format": "SUMMARY",
                    "unexpected_index_column_names": [io.ROW],
                    "partial_unexpected_count": MAX_SAMPLES,
                    "return_unexpected_index_query": False,
                }
            ),
        )
        failures = []
        for result in outcome.results:
            item = items[int(result.expectation_config.meta["_index"])]
            compact, value = (compacts or {}).get(id(item), (None, VALUE_COL))
            failure = _failure_from_result(result, item, table, compact, value)
            if failure is not None:
                failures.append((item, failure))
        # nothing of this table may stay referenced once it is judged: GX's
        # execution engine keeps every batch's frame (a 12-million-row view held
        # for the rest of the batch run otherwise)
        self.context.validation_definitions.delete(name)
        self.context.suites.delete(name)
        self.source.delete_asset(name)
        manager = self.source.get_execution_engine().batch_manager
        manager.batch_data_cache.clear()
        manager.reset_batch_cache()
        return failures


# ---------------------------------------------------------------------------
# The gate over a period
# ---------------------------------------------------------------------------
def _lookup_values(params: Params) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name in (
        "departments",
        "complaint_categories",
        "complaint_subcategories",
        "scopes",
        "kpis",
    ):
        try:
            values[name] = sorted(set(params.lookup(name).values()))
        except KeyError:
            continue
    return values


def _table_fingerprint(table: io.LoadedTable) -> str:
    """What an already loaded table (a records-store register) holds, as a hash:
    its values, columns and types, and what the loader noted; "" when a value
    cannot be hashed (then it is validated afresh)."""
    digest = hashlib.sha256()
    try:
        hashed = pd.util.hash_pandas_object(table.frame, index=False).to_numpy()
    except (TypeError, ValueError):
        return ""
    digest.update(hashed.tobytes())
    digest.update(repr([(str(c), str(t)) for c, t in table.frame.dtypes.items()]).encode())
    digest.update(repr((table.problems, table.notes, table.present_columns)).encode())
    return digest.hexdigest()


def _params_fingerprint(params: Params) -> str:
    text = json.dumps(_lookup_values(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_key(parts: Mapping[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Gate:
    """The gate over one project: suites, parameters, cache, and the GX runner."""

    def __init__(self, params: Params, *, cache: bool = True) -> None:
        self.params = params
        self.cache_dir = params.output_dir / ".cache" / "gate" if cache else None
        self.specs: dict[str, dict[str, Any]] = {}
        self.hashes: dict[str, str] = {}
        self.lookups = _lookup_values(params)
        self.params_hash = _params_fingerprint(params)
        self._runner: _Runner | None = None
        if not suite_dir(params).is_dir():
            raise ConfigError("error.gate.no_suites", folder=str(suite_dir(params)))
        for dataset in DATASETS:
            path = suite_path(params, dataset)
            if path.is_file():
                self.specs[dataset] = load_suite_spec(path)
                self.hashes[dataset] = _file_hash(path)

    def runner(self) -> _Runner:
        if self._runner is None:
            self._runner = _Runner()
        return self._runner

    def check_suites(self) -> None:
        """Load every suite with GX (a misspelt type fails here, loudly).

        Once the suites as they are now have all loaded with this GX version, a
        marker in the cache says so and later runs skip the import.
        """
        marker = None
        if self.cache_dir is not None:
            from importlib.metadata import version

            key = _cache_key({"suites": self.hashes, "gx": version("great_expectations")})
            marker = self.cache_dir / f"suites-{key}.json"
            if marker.is_file():
                return
        preload()
        for dataset, spec in self.specs.items():
            load_suite(suite_path(self.params, dataset), spec)
        if marker is not None:
            io.write_json(marker, {"suites": self.hashes})

    def validate(
        self,
        dataset: Dataset,
        path: Path | None,
        period: str | None,
        parameters: Mapping[str, Any],
        table: io.LoadedTable | None = None,
    ) -> tuple[DatasetResult, io.LoadedTable | None]:
        """Validate one dataset's file (or an already loaded table, for the records store)."""
        if path is None and table is None:
            return DatasetResult(dataset.id, period, "missing"), None
        sha = _table_fingerprint(table) if table is not None else io.sha256_file(path)
        source = (table.source or str(table.path)) if table is not None else str(path)
        spec = self.specs.get(dataset.id)
        if spec is None:
            raise ConfigError(
                "error.gate.suite_missing", file=str(suite_path(self.params, dataset.id))
            )
        key = _cache_key(
            {
                "v": GATE_VERSION,
                "sha": sha,
                "suite": self.hashes[dataset.id],
                "params": self.params_hash,
                "period": period,
                "parameters": parameters,
            }
        )
        cached = (
            self.cache_dir / f"{dataset.id}-{period or 'register'}-{key}.json"
            if self.cache_dir
            else None
        )
        if cached is not None and sha and cached.is_file():
            result = DatasetResult.from_dict(io.read_json(cached))
            result.cached = True
            return result, table
        preload()  # GX imports in the background while the file is read
        result = DatasetResult(
            dataset.id, period, "pass", file=source, sha256=table.sha256 if table else sha
        )
        try:
            if table is None:
                # an export is read straight into its GX form (the gate keeps
                # nothing else of it); a register's table is used afterwards
                keep = _GxForm(dataset) if dataset.kind == "export" else None
                table = io.read_dataset(path, dataset, self.params, sha256=sha, keep=keep)
        except DataError as exc:
            result.failures.append(
                Failure(
                    reason="unreadable",
                    severity="critical",
                    column=None,
                    check="loader",
                    meaning={lang: exc.message(lang) for lang in LANGS},
                    fix={lang: t("gate.fix.unreadable", lang) for lang in LANGS},
                    detail=exc.key,
                )
            )
            result.status = _status(result.failures)
            self._store(cached, result)
            return result, None
        result.rows = table.rows
        result.notes = [{"key": key_, "facts": facts} for key_, facts in table.notes]
        if table.unknown_columns:
            result.notes.append(
                {
                    "key": "note.unknown_columns",
                    "facts": {"columns": ", ".join(table.unknown_columns)},
                }
            )
        view = gx_view(table, period)
        failures, skipped, checks = self.runner().validate(
            table, spec, suite_path(self.params, dataset.id), parameters, view
        )
        del view
        result.failures = _loader_failures(table) + _without_unreadable(failures, table)
        result.skipped = skipped
        result.checks = checks
        result.status = _status(result.failures)
        self._store(cached, result)
        return result, table

    def _store(self, cached: Path | None, result: DatasetResult) -> None:
        if cached is not None:
            io.write_json(cached, result.to_dict())

    # -- a period ---------------------------------------------------------------
    def export_parameters(self, period: str, history: Sequence[int]) -> dict[str, Any]:
        counts = [c for c in history[-ROW_COUNT_MONTHS:] if c]
        floor = int(ROW_COUNT_FLOOR * float(np.median(counts))) if counts else 0
        return {**self.lookups, "period_list": [period], "min_rows": floor}

    def run(self, period: str, months: int | None = None) -> GateResult:
        """Gate the period's exports, the registers, and the trend months before it.

        Args:
            months: how many months of exports to gate, ending with ``period``
                (the KPI catalogue's trend window by default).
        """
        from qmsnb import prepare

        started = time.monotonic()
        window = months or self.params.catalogue.status.trend_months
        history: dict[str, list[int]] = {}
        trend: dict[str, dict[str, DatasetResult]] = {}
        for month in [str(p) for p in Period.parse(period).back(window)]:
            files = prepare.export_files(self.params, month)
            results: dict[str, DatasetResult] = {}
            for dataset in exports():
                counts = history.setdefault(dataset.id, [])
                parameters = self.export_parameters(month, counts)
                result, _ = self.validate(dataset, files.get(dataset.id), month, parameters)
                results[dataset.id] = result
                if result.rows and not result.blocking:
                    counts.append(result.rows)
            trend[month] = results
        current = trend.pop(period)
        current.update(self.registers())
        return GateResult(
            period=period,
            datasets=current,
            trend=trend,
            suites=dict(self.hashes),
            seconds=time.monotonic() - started,
        )

    def registers(self) -> dict[str, DatasetResult]:
        """Gate the registers (files or the records store), references resolved in order."""
        from qmsnb.records import snapshot

        kept, _ = snapshot(self.params)
        parameters: dict[str, Any] = dict(self.lookups)
        results: dict[str, DatasetResult] = {}
        keys = {
            "process_register": "process_ids",
            "audit_programme": "audit_ids",
            "findings": "finding_ids",
        }
        order = ["process_register", "audit_programme", "findings"]
        ordered = sorted(registers(), key=lambda d: order.index(d.id) if d.id in order else 99)
        for dataset in ordered:
            if dataset.id not in self.specs:
                continue
            table = kept.get(dataset.id)
            path = (
                None
                if table is not None
                else io.find_dataset_file(self.params.registers_dir, dataset)
            )
            if table is not None:
                table.present_columns = [
                    c.name for c in dataset.columns if c.name in table.frame.columns
                ]
            result, loaded = self.validate(dataset, path, None, parameters, table)
            results[dataset.id] = result
            if dataset.id in keys:
                if loaded is None and path is not None and result.status != "missing":
                    try:
                        loaded = io.read_dataset(path, dataset, self.params)
                    except DataError:
                        loaded = None
                if loaded is not None:
                    key = dataset.key[0]
                    parameters[keys[dataset.id]] = sorted(
                        loaded.frame[key].dropna().astype(str).unique().tolist()
                    )
        return results


def run_gate(
    params: Params, period: str, *, months: int | None = None, cache: bool = True
) -> GateResult:
    """Gate ``period`` (see :class:`Gate`); every suite must load first.

    GX is imported only when something must be validated: a re-run whose files,
    registers and suites all have cached results never pays its ~4 s import.
    """
    gate = Gate(params, cache=cache)
    gate.check_suites()
    return gate.run(str(Period.parse(period)), months)


# ---------------------------------------------------------------------------
# Writing: gate.json and the data-quality report
# ---------------------------------------------------------------------------
def dataset_name(dataset: str, lang: str) -> str:
    spec = DATASETS.get(dataset)
    if spec is None:
        return dataset
    return spec.zh if lang == "zh" else spec.en


def _failure_view(failure: Failure, lang: str) -> dict[str, Any]:
    return {
        "reason": failure.reason,
        "severity": failure.severity,
        "severity_label": t(f"gate.severity.{failure.severity}", lang),
        "column": failure.column or "",
        "count": failure.count,
        "meaning": failure.meaning.get(lang) or failure.meaning.get("en", ""),
        "fix": failure.fix.get(lang) or failure.fix.get("en", ""),
        "detail": failure.detail,
        "samples": list(
            zip(failure.rows, failure.values or [""] * len(failure.rows), strict=False)
        ),
    }


def _dataset_view(result: DatasetResult, lang: str) -> dict[str, Any]:
    order = {"error": 0, "critical": 1, "warning": 2}
    return {
        "id": result.dataset,
        "name": dataset_name(result.dataset, lang),
        "period": result.period,
        "status": result.status,
        "status_label": t(f"gate.status.{result.status}", lang),
        "file": result.file or "",
        "sha256": result.sha256 or "",
        "rows": "" if result.rows is None else f"{result.rows:,}",
        "checks": result.checks,
        "failures": [
            _failure_view(f, lang)
            for f in sorted(result.failures, key=lambda f: order.get(f.severity, 3))
        ],
        "notes": [t(n["key"], lang, **n["facts"]) for n in result.notes],
        "skipped": result.skipped,
    }


def summary_lines(result: GateResult, lang: str, blocking: bool) -> list[str]:
    """One line per dataset with critical failures (or warnings), for banners and the CLI."""
    lines = []
    for name, r in result.datasets.items():
        wanted = [f for f in r.failures if (f.severity != "warning") == blocking]
        if not wanted or (blocking and not r.blocking):
            continue
        items = []
        for f in wanted:
            meaning = (f.meaning.get(lang) or f.meaning.get("en", "")).rstrip("。.")
            where = [f.column] if f.column and ", " not in f.column else []
            if f.count:
                where.append(t("gate.rows_count", lang, count=f"{f.count:,}"))
            items.append(
                t("gate.summary_item", lang, meaning=meaning, where=", ".join(where))
                if where
                else meaning
            )
        reasons = t("gate.summary_sep", lang).join(dict.fromkeys(items))
        lines.append(
            t(
                "gate.banner_line",
                lang,
                dataset=dataset_name(name, lang),
                file=Path(r.file or "").name,
                reasons=reasons,
            )
        )
    return lines


def render_report(result: GateResult, params: Params, lang: str, portal_link: bool = True) -> str:
    """``data_quality.html``: our own page, every value escaped, no external resource."""
    from qmsnb.publish import _jinja, _templates

    datasets = [_dataset_view(r, lang) for r in result.datasets.values()]
    trend = [
        {
            "period": month,
            "label": period_label(month, lang),
            "datasets": [_dataset_view(r, lang) for r in results.values() if r.status != "pass"],
        }
        for month, results in sorted(result.trend.items(), reverse=True)
    ]
    trend = [m for m in trend if m["datasets"]]
    return (
        _jinja()
        .get_template("data_quality.html.j2")
        .render(
            html_lang="zh-CN" if lang == "zh" else "en",
            t=lambda key, **kw: t(key, lang, **kw),
            title=t("gate.title", lang, period=period_label(result.period, lang)),
            subtitle=t(
                "gate.subtitle",
                lang,
                org=params.organisation.name(lang),
                time=datetime.now().strftime("%Y-%m-%d %H:%M"),
            ),
            status=result.status,
            status_label=t(f"gate.status.{result.status}", lang),
            datasets=datasets,
            trend=trend,
            max_samples=MAX_SAMPLES,
            portal_link=portal_link,
            css=io.read_text(_templates() / "portal.css"),
            footer=t("portal.footer", lang, version=__import__("qmsnb").__version__),
        )
    )


def write_outputs(
    result: GateResult, folder: Path, params: Params, lang: str, portal_link: bool = True
) -> tuple[Path, Path]:
    """Write ``gate.json`` and ``data_quality.html`` into ``folder``.

    Args:
        portal_link: the page links back to ``index.html`` beside it (the portal of
            a batch run; ``qmsnb validate`` has none).
    """
    json_path = io.write_json(folder / "gate.json", result.to_json())
    html_path = io.write_text(
        folder / "data_quality.html", render_report(result, params, lang, portal_link)
    )
    return json_path, html_path
