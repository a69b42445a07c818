"""The columnar prepare: a month's KPI inputs from the export files, one DuckDB pass each.

Reading a 12-million-row call export with the pandas loader (every column as
text, then converted) takes minutes and gigabytes; the KPIs need a handful of
low-cardinality columns. So, per export file:

1. CSV is copied once to parquet (:func:`qmsnb.io.parquet_cache`, kept under the
   file's sha256 in ``outputs/.cache/parquet``); parquet exports are read as they are.
2. One ``GROUP BY`` query reads the columns the catalogue's measures use (their
   ``where`` and ``numerator`` keys, the inputs of derived columns, the
   department) and returns one row per distinct combination with its count
   (:data:`qmsnb.kpi.WEIGHT`). For 12 million calls that is a few hundred rows.
3. The distinct raw values of each column are converted by the loader itself
   (:func:`qmsnb.io.read_dataset` on a small file of those values), so "Y", "是"
   and "已接通" mean what they mean everywhere else, departments are looked up
   the same way and derived columns are computed by the contract's own code.
   Date-time and decimal columns (high cardinality) are cast in SQL only when
   every value is in the plain ISO / decimal form both readers agree on.
4. :func:`qmsnb.kpi.compute_period` computes the KPIs from those rows, counting
   each with its weight: the same code, the same numerators and denominators.

Nothing is translated per KPI: a catalogue entry with new ``where`` keys just
adds columns to the query. Whatever this path cannot prove it reads exactly as
the loader would (an XLSX file, a non-plain date, a bad value when the period
must be clean, a missing or duplicated column) returns None, and the caller
uses the loader, which also produces the exact error message.
"""

from __future__ import annotations

import contextlib
import csv
import io as _stdio
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qmsnb import io
from qmsnb.config import KpiCatalogue, Params, RatioMeasure
from qmsnb.contract import Column, Dataset, Derived
from qmsnb.kpi import WEIGHT

#: Column types cast in SQL (high cardinality); all others are converted per
#: distinct value by the loader.
CAST_TYPES = frozenset({"datetime", "date", "float"})
_EMPTY_DTYPES = {
    "str": "string",
    "period": "string",
    "int": "Int64",
    "float": "Float64",
    "bool": "boolean",
    "datetime": "datetime64[us]",
    "date": "datetime64[us]",
}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def derived_inputs(dataset: Dataset, derived: Derived) -> set[str]:
    """The columns a derived column is computed from (found by running it on no rows)."""
    used: set[str] = set()

    class Recorder(dict[str, pd.Series]):
        def __getitem__(self, key: str) -> pd.Series:
            used.add(key)
            return super().__getitem__(key)

    empty = Recorder({c.name: pd.Series([], dtype=_EMPTY_DTYPES[c.dtype]) for c in dataset.columns})
    try:
        derived.compute(empty)  # type: ignore[arg-type]
    except Exception:  # cannot tell: take every column
        return {c.name for c in dataset.columns}
    return used


def kpi_columns(catalogue: KpiCatalogue, dataset: Dataset) -> list[str]:
    """The file columns the catalogue's ratio measures on ``dataset`` read."""
    wanted: set[str] = set()
    for kpi in catalogue.kpis:
        measure = kpi.measure
        if isinstance(measure, RatioMeasure) and measure.dataset == dataset.id:
            wanted |= {"department", *measure.where, *measure.numerator}
    if not wanted:
        return []
    derived = {d.name: d for d in dataset.derived}
    columns: set[str] = set()
    for name in wanted:
        columns |= derived_inputs(dataset, derived[name]) if name in derived else {name}
    order = [c.name for c in dataset.columns]
    return sorted(columns, key=order.index)


def _text(expr: str) -> str:
    return f"CAST({expr} AS VARCHAR)"


#: Ranges of first characters that may make a value blank for the loader (it
#: strips Unicode white space): ASCII controls and space, U+0085-U+00A0,
#: U+1680, U+2000-U+205F, U+3000. Written as string comparisons, so DuckDB can
#: skip whole row groups by their min/max statistics instead of testing each row.
_SPACE_RANGES = ((133, 161), (5760, 5761), (8192, 8288), (12288, 12289))


def _blank_or_spaced(expr: str) -> str:
    """SQL true for NULL, empty or white-space-led text (such values go to the loader)."""
    text = _text(expr)
    ranges = " OR ".join(f"({text} >= chr({a}) AND {text} < chr({b}))" for a, b in _SPACE_RANGES)
    return f"({expr} IS NULL OR {text} < '!' OR {ranges})"


_NUMERIC_SQL = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)
_TIME_SQL = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE")


def _typed(column: Column, sql_type: str) -> bool:
    """Whether the file already stores the column as the number or time it means."""
    base = sql_type.split("(")[0].upper()
    return base in (_NUMERIC_SQL if column.dtype == "float" else _TIME_SQL)


def _cast(column: Column, expr: str, sql_type: str) -> tuple[str, str]:
    """(typed SQL value, SQL flag for a value not in a form both readers read alike).

    Text must be a plain decimal or an ISO date (``YYYY-MM-DD``, optionally with
    `` HH:MM[:SS[.ffffff]]``); anything else (thousands separators, ``2026/10/01``,
    ``2026年10月``, offsets, full-width digits) is left to the loader.
    """
    target = "DOUBLE" if column.dtype == "float" else "TIMESTAMP"
    if _typed(column, sql_type):
        value = f"CAST({expr} AS {target})"
        # NaN and infinities fall outside (a range test DuckDB can answer from statistics)
        finite = f"coalesce({value} BETWEEN -1.7e308 AND 1.7e308, true)"
        flag = f"NOT {finite}" if column.dtype == "float" else "false"
    else:
        text = _text(expr)
        value = f"TRY_CAST({text} AS {target})"
        if column.dtype == "float":
            plain = f"isfinite({value}) AND NOT contains({text}, '_')"
        else:
            plain = (
                f"{value} IS NOT NULL AND substr({text}, 5, 1) = '-' "
                f"AND substr({text}, 8, 1) = '-' AND (length({text}) IN (10, 16, 19) "
                f"OR (length({text}) BETWEEN 21 AND 26 AND substr({text}, 20, 1) = '.')) "
                f"AND (length({text}) = 10 OR substr({text}, 11, 1) IN (' ', 'T'))"
            )
        plain = f"coalesce({plain}, false)"
        blank = f"({expr} IS NULL OR {text} = '')"
        value = f"CASE WHEN {plain} THEN {value} END"
        flag = f"NOT {blank} AND NOT {plain}"
    if column.dtype == "date":
        value = f"CAST(CAST({value} AS DATE) AS TIMESTAMP)"
    return value, flag


def _check(column: Column, expr: str, sql_type: str) -> str | None:
    """SQL flag for a value the loader would report (columns not converted here)."""
    flags = []
    if column.dtype in CAST_TYPES:
        value, flag = _cast(column, expr, sql_type)
        flags.append(flag)
        if column.minimum is not None:
            flags.append(f"coalesce({value} < {column.minimum}, false)")
        if column.maximum is not None:
            flags.append(f"coalesce({value} > {column.maximum}, false)")
    if not column.nullable:
        if _typed(column, sql_type) and column.dtype in CAST_TYPES:
            flags.append(f"{expr} IS NULL")
        else:
            flags.append(_blank_or_spaced(expr))
    return " OR ".join(f"({f})" for f in flags) if flags else None


#: Values already converted by the loader: (dataset, column, raw) → (value, dtype, problem).
Memo = dict[tuple[str, str, Any], tuple[Any, Any, bool]]


def _converted_by_loader(
    dataset: Dataset,
    params: Params | None,
    values: Mapping[str, list[Any]],
    memo: Memo | None = None,
) -> tuple[dict[str, dict[Any, Any]], dict[str, Any], bool]:
    """Each column's distinct raw values as the loader converts them.

    The loader converts each value of a column on its own, so a value converted
    once (e.g. in an earlier month) is looked up in ``memo``.

    Returns:
        (raw → value per column, the loader's dtype per column, whether the loader
        found a problem with any of these values).
    """
    memo = {} if memo is None else memo
    todo = {c: [v for v in vals if (dataset.id, c, v) not in memo] for c, vals in values.items()}
    todo = {c: v for c, v in todo.items() if v}
    if todo:
        columns = list(todo)
        length = max(len(v) for v in todo.values())
        buffer = _stdio.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(columns)
        for i in range(length):  # shorter columns repeat their own values
            row = [todo[c][i % len(todo[c])] for c in columns]
            writer.writerow(["" if v is None else v for v in row])
        with tempfile.TemporaryDirectory(prefix="qmsnb-distinct-") as tmp:
            path = io.write_text(Path(tmp) / f"{dataset.id}.csv", buffer.getvalue())
            table = io.read_dataset(path, dataset, params)
        # a problem marks its whole column (the loader keeps only some example rows)
        bad_columns = {problem.column for problem in table.problems}
        for column in columns:
            converted = table.frame[column].tolist()
            dtype = table.frame[column].dtype
            bad = column in bad_columns
            for i, raw in enumerate(todo[column]):
                memo[(dataset.id, column, raw)] = (converted[i], dtype, bad)
    maps = {c: {v: memo[(dataset.id, c, v)][0] for v in vals} for c, vals in values.items()}
    dtypes = {c: memo[(dataset.id, c, vals[0])][1] for c, vals in values.items() if vals}
    problems = any(memo[(dataset.id, c, v)][2] for c, vals in values.items() for v in vals)
    return maps, dtypes, problems


def _raw(series: pd.Series) -> list[str | None]:
    """Raw text values with missing ones as None (pandas' str dtype gives NaN)."""
    return [None if v is None or (isinstance(v, float) and v != v) else v for v in series.tolist()]


def _distinct(con: Any, relation: str, expr: str) -> list[Any]:
    rows = con.execute(f"SELECT DISTINCT CAST({expr} AS VARCHAR) FROM {relation}").fetchall()
    return [r[0] for r in rows]


def read_kpi_table(
    path: Path,
    dataset: Dataset,
    params: Params,
    cache_dir: Path,
    *,
    strict: bool,
    sha256: str | None = None,
    memo: Memo | None = None,
) -> pd.DataFrame | None:
    """The KPI columns of one export file, one row per distinct combination.

    Args:
        cache_dir: where CSV files are kept as parquet (by sha256).
        strict: also prove that no column of the file has a value the loader
            would report; if one might, return None (the loader then raises).

    Returns:
        Typed columns the KPIs read (derived ones included) and :data:`WEIGHT`,
        or None when the loader must read this file.
    """
    import duckdb

    needed = kpi_columns(params.catalogue, dataset)
    if not needed:
        return None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        cached = io.parquet_cache(path, dataset, cache_dir, sha256=sha256)
        if cached is None:
            return None
        relation = io.columnar_relation(cached)
    elif suffix == ".parquet":
        relation = io.columnar_relation(path)
    else:
        return None
    with duckdb.connect() as con:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        names = [row[0] for row in described]
        sql_types = {row[0]: str(row[1]) for row in described}
        known = io.header_map(dataset)
        found: dict[str, str] = {}
        types: dict[str, str] = {}
        for name in names:
            column = known.get(io._header_key(name))
            if column is None:
                continue
            if column in found:
                return None  # two headers for one column: the loader says so
            found[column] = _quote(name)
            types[column] = sql_types[name]
        if any(c.required and c.name not in found for c in dataset.columns):
            return None
        if any(c not in found for c in needed):
            return None
        if suffix == ".csv":  # the loader drops rows with nothing in them
            blank = " AND ".join(f"coalesce({_text(e)}, '') = ''" for e in found.values())
            relation = f"(SELECT * FROM {relation} WHERE NOT ({blank}))"
        columns = {c.name: c for c in dataset.columns}
        mapped = [c for c in needed if columns[c].dtype not in CAST_TYPES]
        cast = [c for c in needed if columns[c].dtype in CAST_TYPES]
        # one pass: group on the raw values; convert the few distinct ones afterwards
        keys = {c: _quote(f"_key_{c}") for c in needed}
        inner = [f"{found[c]} AS {keys[c]}" for c in needed]
        checks: list[str] = []
        if strict:
            for name, expr in found.items():
                column = columns[name]
                if name in needed or not (column.dtype in CAST_TYPES or column.dtype == "str"):
                    continue
                if column.dtype == "str" and (column.values or column.lookup):
                    continue  # checked by the loader below, on its distinct values
                flag = _check(column, expr, types[name])
                if flag:
                    checks.append(_quote(f"_check_{name}"))
                    inner.append(f"sum(CASE WHEN {flag} THEN 1 ELSE 0 END) AS {checks[-1]}")
        inner.append(f"count(*) AS {_quote(WEIGHT)}")
        outer = [f"CAST({keys[c]} AS VARCHAR) AS {_quote(c)}" for c in mapped]
        flags = list(checks)
        for c in cast:
            value, flag = _cast(columns[c], keys[c], types[c])
            outer.append(f"{value} AS {_quote(c)}")
            flags.append(_quote(f"_plain_{c}"))
            outer.append(f"CASE WHEN {flag} THEN 1 ELSE 0 END AS {flags[-1]}")
        outer += [_quote(WEIGHT), *checks]
        query = (
            f"SELECT {', '.join(outer)} FROM "
            f"(SELECT {', '.join(inner)} FROM {relation} GROUP BY ALL)"
        )
        result = con.sql(query).to_arrow_table().to_pandas()
        if any(result[k.strip('"')].sum() for k in flags):
            return None  # a value only the loader can judge
        extra: dict[str, list[Any]] = {}
        if strict:
            for name, expr in found.items():
                column = columns[name]
                if name in mapped:
                    continue
                if column.dtype in ("bool", "period", "int") or column.values or column.lookup:
                    extra[name] = _distinct(con, relation, expr)
    codes, values = {}, {}
    for c in mapped:  # factorize: convert each distinct value once, then take
        found_codes, uniques = pd.factorize(result[c], use_na_sentinel=True)
        values[c] = _raw(pd.Series(uniques, dtype=object))
        if (found_codes < 0).any():  # missing values: one more entry, at the end
            found_codes = np.where(found_codes < 0, len(values[c]), found_codes)
            values[c].append(None)
        codes[c] = found_codes
    maps, dtypes, problems = _converted_by_loader(dataset, params, {**values, **extra}, memo)
    if problems and strict:
        return None  # the loader raises with the file's own rows
    frame = pd.DataFrame(index=result.index)
    for c in needed:
        if c in mapped:
            converted = pd.array([maps[c][v] for v in values[c]], dtype=dtypes[c])
            frame[c] = converted.take(codes[c], allow_fill=False)
        elif columns[c].dtype == "float":
            frame[c] = result[c].astype("Float64")
        else:
            frame[c] = pd.to_datetime(result[c]).astype("datetime64[us]")
    for derived in dataset.derived:
        with contextlib.suppress(KeyError):
            frame[derived.name] = derived.compute(frame)
    frame[WEIGHT] = result[WEIGHT].astype("int64").to_numpy()
    return frame


def kpi_frames(
    params: Params,
    files: Mapping[str, Path],
    cache_dir: Path,
    *,
    strict: bool,
    hashes: Mapping[str, str] | None = None,
    memo: Memo | None = None,
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Frames for :func:`qmsnb.kpi.compute_period` from the columnar path, where it applies.

    Returns:
        (frames by dataset id, the dataset ids the loader must read instead).
    """
    from qmsnb.contract import DATASETS

    frames: dict[str, pd.DataFrame] = {}
    rest: list[str] = []
    for name, path in files.items():
        frame = read_kpi_table(
            path,
            DATASETS[name],
            params,
            cache_dir,
            strict=strict,
            sha256=(hashes or {}).get(name),
            memo=memo,
        )
        if frame is None:
            rest.append(name)
        else:
            frames[name] = frame
    return frames, rest


#: Columns with at most this many distinct values are converted per distinct value
#: by the loader; others (ids, free text, times) column-wise.
DISTINCT_LIMIT = 50_000


def read_table(
    path: Path,
    dataset: Dataset,
    params: Params,
    cache_dir: Path,
    *,
    sha256: str | None = None,
) -> pd.DataFrame | None:
    """A whole export file typed exactly as :func:`qmsnb.io.read_dataset` types it.

    For tables the prepare step keeps row by row (e.g. the period's complaint
    tickets), at a fraction of the loader's cost: few-valued columns converted per
    distinct value by the loader, dates and numbers cast in SQL when plain, text
    normalised column-wise as the loader does. Returns None whenever that cannot
    be proven equal (then the caller loads the file): a missing or doubled column,
    a blank line (the loader's row numbers count it), a non-plain date or number.
    """
    import duckdb

    suffix = path.suffix.lower()
    header_row = 0
    if suffix == ".csv":
        cached = io.parquet_cache(path, dataset, cache_dir, sha256=sha256)
        if cached is None:
            return None
        with open(path, "rb") as handle:
            raw = handle.read()
        if b"\n\n" in raw or b"\n\r\n" in raw or b"\r\r" in raw:
            return None  # a blank line: the loader's row numbers count it
        sample = raw[: 1 << 16]
        del raw
        try:
            (sample[: sample.rfind(b"\n") + 1] or sample).decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "gb18030"
        found_header = io._csv_header(path, dataset, encoding)
        if found_header is None:
            return None
        header_row = found_header[0]
        relation = io.columnar_relation(cached)
    elif suffix == ".parquet":
        relation = io.columnar_relation(path)
    else:
        return None
    columns = {c.name: c for c in dataset.columns}
    with duckdb.connect() as con:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        known = io.header_map(dataset)
        found: dict[str, str] = {}
        types: dict[str, str] = {}
        for name, sql_type, *_ in described:
            column = known.get(io._header_key(name))
            if column is None:
                continue
            if column in found:
                return None
            found[column], types[column] = _quote(name), str(sql_type)
        if any(c.required and c.name not in found for c in dataset.columns):
            return None
        present = [c for c in columns if c in found]
        counts = con.execute(
            "SELECT count(*), "
            + ", ".join(f"count(DISTINCT {_text(found[c])})" for c in present)
            + f" FROM {relation}"
        ).fetchall()[0]
        total, distinct = counts[0], dict(zip(present, counts[1:], strict=True))
        select, flags = [], []
        for c in present:
            column = columns[c]
            if column.dtype in CAST_TYPES and distinct[c] > DISTINCT_LIMIT:
                value, flag = _cast(column, found[c], types[c])
                select.append(f"{value} AS {_quote(c)}")
                flags.append(f"sum(CASE WHEN {flag} THEN 1 ELSE 0 END)")
            else:
                select.append(f"{_text(found[c])} AS {_quote(c)}")
        if suffix == ".csv":  # the loader drops rows with nothing in them: none may be here
            blank = " AND ".join(f"coalesce(trim({_text(e)}), '') = ''" for e in found.values())
            flags.append(f"sum(CASE WHEN {blank} THEN 1 ELSE 0 END)")
        if flags and any(con.execute(f"SELECT {', '.join(flags)} FROM {relation}").fetchall()[0]):
            return None
        result = con.sql(f"SELECT {', '.join(select)} FROM {relation}").to_arrow_table()
        result = result.to_pandas()
    frame = pd.DataFrame(
        {io.ROW: np.arange(1, total + 1) + (header_row + 1 if suffix == ".csv" else 0)}
    )
    low = {
        c: None
        for c in present
        if not (columns[c].dtype in CAST_TYPES and distinct[c] > DISTINCT_LIMIT)
        and (
            distinct[c] <= DISTINCT_LIMIT
            or columns[c].dtype != "str"
            or columns[c].values
            or columns[c].lookup
        )
    }
    codes, values = {}, {}
    for c in low:
        found_codes, uniques = pd.factorize(result[c], use_na_sentinel=True)
        values[c] = _raw(pd.Series(uniques, dtype=object))
        if (found_codes < 0).any():
            found_codes = np.where(found_codes < 0, len(values[c]), found_codes)
            values[c].append(None)
        codes[c] = found_codes
    maps, dtypes, _ = _converted_by_loader(dataset, params, values)
    for c in columns:
        if c not in found:
            frame[c] = pd.Series(pd.NA, index=frame.index, dtype="string")
        elif c in low:
            converted = pd.array([maps[c][v] for v in values[c]], dtype=dtypes[c])
            frame[c] = converted.take(codes[c], allow_fill=False)
        elif columns[c].dtype == "float":
            frame[c] = result[c].astype("Float64").array
        elif columns[c].dtype in ("datetime", "date"):
            frame[c] = pd.to_datetime(result[c]).astype("datetime64[us]").array
        else:  # free text: the loader's own normalisation, column-wise
            frame[c] = io._normalise_text(result[c])[0].array
    for derived in dataset.derived:
        frame[derived.name] = derived.compute(frame)
    return frame
