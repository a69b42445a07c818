"""The I/O layer: every read and write of a file goes through here.

Reading an export means: find its file, fingerprint it (sha256), decode it (UTF-8
with or without BOM, GB18030/GBK as Chinese Excel writes it, XLSX, parquet), find
the header row, map Chinese or English headers to the contract's column ids,
convert each column to its type, map department names and labels to ids, and
compute derived columns. Every value that cannot be converted becomes a
:class:`Problem` (dataset, file, column, row in the original file, value, reason),
never a silent NaN. Inputs are opened read-only and never written.

Writes are atomic (write to a temporary file in the same folder, then rename), so
an interrupted run never leaves a half-written report or table behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qmsnb.contract import DATASETS, Column, Dataset
from qmsnb.exceptions import DataError

if TYPE_CHECKING:
    from qmsnb.config import Params

#: File formats the loader reads, in the order they are looked for.
SUFFIXES = (".csv", ".xlsx", ".parquet")
#: How many lines are searched for the header row (title rows above it are skipped).
_HEADER_SEARCH_ROWS = 10
#: How many problem examples are kept per column and reason.
MAX_EXAMPLES = 20
#: Row number column added to every loaded frame: the line in the original file.
ROW = "_row"

_TRUE = {"1", "true", "t", "yes", "y", "是", "已接通", "接通", "已完成", "完成", "成功", "√"}
_FALSE = {"0", "false", "f", "no", "n", "否", "未接通", "未完成", "失败", "×"}
_DATE_CJK = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(?:(\d{1,2})\s*日)?")
_PERIOD_TEXT = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?$")


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One kind of bad value in one column of one file.

    Attributes:
        reason: stable reason code (``not_a_number``, ``not_a_date``, ``not_allowed``,
            ``unknown_department``, ``missing_value``, ``out_of_range``, ...).
        rows: row numbers in the original file (first :data:`MAX_EXAMPLES`).
        values: the offending raw values, aligned with ``rows``.
        count: how many rows have this problem in all.
    """

    dataset: str
    file: str
    column: str
    reason: str
    expected: str
    count: int
    rows: tuple[int, ...]
    values: tuple[str, ...]


@dataclass
class LoadedTable:
    """A dataset read from one file, typed to the contract."""

    dataset: Dataset
    path: Path
    sha256: str
    frame: pd.DataFrame
    encoding: str | None = None
    header_row: int = 1
    problems: list[Problem] = field(default_factory=list)
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    #: Contract columns the file has (the others are added empty).
    present_columns: list[str] = field(default_factory=list)
    #: Rows (in the original file) that look like totals (合计) inside the data.
    totals_rows: list[int] = field(default_factory=list)
    #: Where a table that was not read from a file came from (the records store's
    #: ``<url>#<register>``); None for files.
    source: str | None = None
    #: What the reader keeps of each converted column: ``keep(column, values)``
    #: returns the array to store (see :func:`read_dataset`); None keeps ``values``.
    keep: Callable[[Column, pd.Series], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def rows(self) -> int:
        return len(self.frame)


# ---------------------------------------------------------------------------
# Small file helpers
# ---------------------------------------------------------------------------
#: What one read of a file found (its sha256, line breaks, blank lines), by path
#: and what ``stat`` says of the file (its :func:`file_stamp`: size, modification
#: and change times in ns, inode): a batch reads each export once for this although the gate, the
#: KPI prepare and the complaint tables all key their caches by its sha256, and
#: the CSV reader needs its line count (a 12-million-row CSV takes a second to read).
_SCANNED: dict[tuple[str, int, int, int, int], tuple[str, int, bool]] = {}


#: files whose lines are counted with their sha256 (the CSV reader needs them)
_LINED = (".csv", ".txt", ".tsv")


def _scan(path: Path, chunk: int = 1 << 22) -> tuple[str, int, bool]:
    """(sha256, number of line breaks, whether an empty line sits between two records).

    Lines are counted for text files only (:data:`_LINED`; others: -1, False)."""
    key = (str(Path(path).resolve()), *_stamp(os.stat(path)))
    found = _SCANNED.get(key)
    if found is not None:
        return found
    digest = hashlib.sha256()
    lines, blank, previous = 0, False, b""
    if Path(path).suffix.lower() not in _LINED:
        # hashlib lets go of the GIL for each block: other threads run meanwhile
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
        _SCANNED[key] = found = (digest.hexdigest(), -1, False)
        return found
    # the digest is taken in a second thread (hashlib lets go of the GIL) while
    # the lines are counted here, with numpy: bytes.count and a search for
    # b"\n\n" took 2.5 s of a 1 GB file, this 0.3 s
    with open(path, "rb") as handle, ThreadPoolExecutor(1) as hasher:
        while block := handle.read(chunk):
            hashed = hasher.submit(digest.update, block)
            codes = np.frombuffer(block, dtype=np.uint8)
            lines += int(np.count_nonzero(codes == 10))
            if not blank:
                blank = _has_blank_line(previous + block)
            previous = block[-2:]
            hashed.result()
    if len(_SCANNED) > 4096:
        _SCANNED.clear()
    _SCANNED[key] = found = (digest.hexdigest(), lines, blank)
    return found


def _has_blank_line(data: bytes) -> bool:
    """Whether ``data`` holds an empty line between two lines (trailing line
    breaks aside): two line breaks in a row, or one with a carriage return between."""
    data = data.rstrip(b"\r\n")
    codes = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(codes == 10)
    gaps = np.diff(breaks)
    return bool((gaps == 1).any() or ((gaps == 2) & (codes[breaks[:-1] + 1] == 13)).any())


def _stamp(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def file_stamp(path: Path) -> tuple[int, int, int, int] | None:
    """(size, modification and change times in ns, inode) of a file; None if absent:
    what tells a file was replaced or changed without reading it."""
    try:
        return _stamp(os.stat(path))
    except OSError:
        return None


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in chunks (never loads the whole file)."""
    return _scan(path)[0]


def read_text(path: Path) -> str:
    """A UTF-8 text file (params, templates, notebooks)."""
    return Path(path).read_text(encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(read_text(path))


def _umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting it back."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _atomic(path: Path, mode: str) -> Iterator[Any]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    # mkstemp makes the file private (0600); a report or portal page must be as
    # readable as any file the user writes (a web server or a colleague reads it)
    os.fchmod(fd, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    with _atomic(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: Path, data: bytes) -> Path:
    """Write bytes atomically."""
    with _atomic(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json(path: Path, data: Any) -> Path:
    """Write JSON (UTF-8, indented, sorted keys kept as given) atomically."""
    return write_text(path, json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    """Write a frame to parquet atomically."""
    with _atomic(path, "wb") as fh:
        frame.to_parquet(fh, index=False)
    return Path(path)


def read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


_DTYPES_KEY = b"qmsnb_dtypes"


def _dtypes(frame: pd.DataFrame) -> str:
    return json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()])


def write_frame_cache(path: Path, frame: pd.DataFrame) -> Path | None:
    """Keep a typed frame for a later run (parquet with its dtypes noted); None if
    it cannot be written (a read-only output folder: the cache is only a shortcut)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), _DTYPES_KEY: _dtypes(frame).encode()}
        with _atomic(path, "wb") as fh:
            pq.write_table(table.replace_schema_metadata(metadata), fh)
    except (OSError, ValueError, TypeError, pa.ArrowException):
        return None
    return Path(path)


def read_frame_cache(path: Path) -> pd.DataFrame | None:
    """A frame :func:`write_frame_cache` kept, exactly as it was typed; None if
    there is none, it cannot be read, or it comes back with other dtypes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        noted = (table.schema.metadata or {}).get(_DTYPES_KEY, b"").decode()
        frame = table.to_pandas()
    except (OSError, ValueError, TypeError, pa.ArrowException):
        return None
    return frame if noted and _dtypes(frame) == noted else None


def copy_file(source: Path, target: Path) -> Path:
    """Copy a file (the source is only read)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return Path(target)


def ensure_dir(path: Path) -> Path:
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def remove_tree(path: Path) -> None:
    """Remove a folder qmsnb created itself (staging); never used on inputs."""
    shutil.rmtree(path, ignore_errors=True)


def remove_cache_file(path: Path) -> None:
    """Remove a file qmsnb keeps in its own cache; never used on inputs or reports."""
    with contextlib.suppress(OSError):
        Path(path).unlink()


def move(source: Path, target: Path) -> Path:
    """Rename (atomic on one filesystem)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    return Path(target)


# ---------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------
def find_dataset_file(folder: Path, dataset: Dataset) -> Path | None:
    """The file holding ``dataset`` in ``folder`` (by id or Chinese name), or None.

    Raises:
        DataError: two files could both be the dataset (e.g. ``calls.csv`` and
            ``calls.xlsx``): qmsnb will not guess.
    """
    if not folder.is_dir():
        return None
    stems = {s.lower() for s in dataset.stems}
    matches = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in SUFFIXES and p.stem.lower() in stems
    )
    if len(matches) > 1:
        raise DataError(
            "error.data.ambiguous_file",
            dataset=dataset.id,
            folder=str(folder),
            files=", ".join(p.name for p in matches),
        )
    return matches[0] if matches else None


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------
#: CSV files at least this large are read with pyarrow's multi-threaded, typed
#: reader (see :func:`_read_csv_fast`); smaller ones, and large ones the fast
#: reader cannot take exactly, go through the general reader.
FAST_CSV_BYTES = 16 * 2**20
#: A row whose first filled cell is one of these is a totals row (合计 / 总计 ...).
_TOTALS = re.compile(
    r"^(合\s*计|总\s*计|小\s*计|总合计|共\s*计|grand\s*total|sub\s*-?\s*totals?|totals?)\s*[:：]?$",
    re.IGNORECASE,
)


def _utf16(head: bytes) -> bool:
    """UTF-16 text (Excel's "Unicode Text"): a UTF-16 byte-order mark, or a zero
    byte in every other position of mostly ASCII text; and, decoded so, text with
    line breaks or separators in it."""
    sample = head[:8192]
    codec = None
    if sample.startswith(b"\xff\xfe"):
        codec, sample = "utf-16-le", sample[2:]
    elif sample.startswith(b"\xfe\xff"):
        codec, sample = "utf-16-be", sample[2:]
    else:
        half = len(sample) // 2
        if half >= 8 and sample[1::2].count(0) > 0.6 * half:
            codec = "utf-16-le"
        elif half >= 8 and sample[0::2].count(0) > 0.6 * half:
            codec = "utf-16-be"
    if codec is None:
        return False
    text = sample[: len(sample) // 2 * 2].decode(codec, errors="replace")
    return any(mark in text for mark in ("\t", "\n", ","))


def _check_not_binary(head: bytes, path: Path) -> None:
    if not head.strip():
        raise DataError("error.data.empty_file", file=str(path))
    if _utf16(head):
        raise DataError("error.data.utf16", file=str(path))
    if b"\x00" in head[:8192]:
        raise DataError("error.data.binary_file", file=str(path))


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    _check_not_binary(raw, path)
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        label = (
            "UTF-8-BOM"
            if encoding == "utf-8-sig" and raw.startswith(b"\xef\xbb\xbf")
            else ("UTF-8" if encoding == "utf-8-sig" else "GB18030")
        )
        return text, label
    raise DataError("error.data.encoding", file=str(path))


def _header_key(text: Any) -> str:
    return unicodedata.normalize("NFKC", str(text)).strip().lower().replace(" ", "")


def header_map(dataset: Dataset) -> dict[str, str]:
    """Normalised header text → column id, for every header a column answers to."""
    table: dict[str, str] = {}
    for col in dataset.columns:
        for header in col.headers:
            table[_header_key(header)] = col.name
    return table


def _find_header_row(grid: pd.DataFrame, dataset: Dataset) -> int:
    """Index of the row (in the first few) that matches most known headers."""
    known = header_map(dataset)
    best, best_hits = 0, -1
    for index in range(min(_HEADER_SEARCH_ROWS, len(grid))):
        hits = sum(_header_key(v) in known for v in grid.iloc[index].tolist() if pd.notna(v))
        if hits > best_hits:
            best, best_hits = index, hits
    return best


def _csv_records(text: str, path: Path) -> list[list[str]]:
    """Every record of a CSV text; blank lines are kept (as empty records) so that
    record numbers are the row numbers a spreadsheet shows."""
    import csv
    import io as _io

    records: list[list[str]] = []
    reader = csv.reader(_io.StringIO(text, newline=""), strict=True)
    try:
        for record in reader:
            records.append(record)
    except csv.Error as exc:
        # an unterminated quote at the end: the download stopped inside a value
        raise DataError(
            "error.data.truncated", file=str(path), line=reader.line_num, problem=str(exc)
        ) from exc
    return records


def _raw_grid(path: Path, table: LoadedTable) -> pd.DataFrame:
    """The file as a grid of strings (no header interpretation yet)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = path.read_bytes()
        text, table.encoding = _decode(raw, path)
        records = _csv_records(text, path)
        if not any(any(cell.strip() for cell in r) for r in records):
            raise DataError("error.data.empty_file", file=str(path))
        width = max(len(r) for r in records)
        grid = pd.DataFrame([r + [""] * (width - len(r)) for r in records], dtype=object)
        # A file that does not end with a line break and whose last record is
        # shorter than the longest one was cut off (an interrupted download).
        if not text.endswith(("\n", "\r")) and len(records) > 1 and len(records[-1]) < width:
            raise DataError(
                "error.data.truncated",
                file=str(path),
                line=len(records),
                problem=f"{len(records[-1])}/{width}",
            )
        return grid
    if suffix == ".xlsx":
        return _xlsx_grid(path, table)
    raise DataError("error.data.unsupported_format", file=str(path), suffix=suffix)


def _xlsx_cell_text(cell: Any) -> str:
    import datetime as _dt

    value = cell.value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, int | float):
        if "%" in str(cell.number_format or ""):  # 0.853 shown as 85.3%: the value is 85.3 %
            return f"{round(float(value) * 100, 10):g}%"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return repr(value) if isinstance(value, float) else str(value)
    return str(value)


def _table_sheet(book: Any, dataset: Dataset) -> Any:
    """The worksheet whose first rows name most of the dataset's columns (the
    first sheet when none names more)."""
    known = header_map(dataset)
    best, best_hits = book.worksheets[0], 0
    for sheet in book.worksheets:
        rows = sheet.iter_rows(max_row=_HEADER_SEARCH_ROWS, values_only=True)
        hits = max(
            (sum(_header_key(v) in known for v in row if v is not None) for row in rows),
            default=0,
        )
        if hits > best_hits:
            best, best_hits = sheet, hits
    return best


def _xlsx_grid(path: Path, table: LoadedTable) -> pd.DataFrame:
    """The worksheet holding the table (:func:`_table_sheet`) as a grid of strings;
    merged header cells are filled.

    A header cell merged over several columns or rows (a two-level header) holds
    its text only in its top-left cell; every cell of the merged range gets that
    text, so the header row below a group label still names every column.
    """
    from openpyxl import load_workbook

    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        raise DataError("error.data.empty_file", file=str(path))
    if not head.startswith(b"PK"):  # every .xlsx is a zip archive
        raise DataError("error.data.not_xlsx", file=str(path))
    try:
        book = load_workbook(path, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise DataError("error.data.xlsx_unreadable", file=str(path), problem=str(exc)) from exc
    sheet = _table_sheet(book, table.dataset)
    if sheet is not book.worksheets[0]:  # e.g. a 填报说明 sheet in front of the data
        table.notes.append(
            ("note.xlsx_sheet", {"sheet": sheet.title, "first": book.worksheets[0].title})
        )
    grid = [[_xlsx_cell_text(cell) for cell in row] for row in sheet.iter_rows()]
    filled = False
    for merged in sheet.merged_cells.ranges:
        if merged.min_row > _HEADER_SEARCH_ROWS:
            continue
        text = grid[merged.min_row - 1][merged.min_col - 1]
        for r in range(merged.min_row, merged.max_row + 1):
            for c in range(merged.min_col, merged.max_col + 1):
                if (r, c) != (merged.min_row, merged.min_col):
                    grid[r - 1][c - 1] = text
                    filled = True
    book.close()
    if filled:
        table.notes.append(("note.merged_header", {}))
    if not any(any(v.strip() for v in row) for row in grid):
        raise DataError("error.data.empty_file", file=str(path))
    return pd.DataFrame(grid, dtype=object)


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------
def _nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


#: The bytes RE2's ``\s`` matches (tab, newline, form feed, carriage return, space).
_SPACE_BYTES = np.array([9, 10, 12, 13, 32], dtype=np.uint8)
#: whether a byte is one of :data:`_SPACE_BYTES`, by its value
_SPACE_LUT = np.isin(np.arange(256), _SPACE_BYTES)


def string_buffers(chunk: Any) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (one more than values) and the UTF-8 bytes of an Arrow string
    array, as numpy views of its buffers (no copy)."""
    import pyarrow as pa

    n = len(chunk)
    large = pa.types.is_large_string(chunk.type)
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64 if large else np.int32)
    offsets = offsets[chunk.offset : chunk.offset + n + 1] if n else offsets[:0]
    data = chunk.buffers()[2]
    return offsets, (
        np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    )


def _edge_space(arrow: Any) -> bool:
    r"""Whether any string starts or ends with whitespace (``^\s|\s$``).

    Looks at the first and last byte of each value in the Arrow buffers (a byte
    of a multi-byte UTF-8 character is never one of these): a 12-million-row key
    in 0.05 s, where the regular expression took 0.7 s.
    """
    for chunk in arrow.chunks:
        offsets, data = string_buffers(chunk)
        if not len(data):
            continue
        filled = offsets[1:] > offsets[:-1]
        if chunk.null_count:
            filled &= chunk.is_valid().to_numpy(zero_copy_only=False)
        # a lookup per byte (np.isin sorts: 0.3 s of GIL on 92 chunks of call ids)
        if _SPACE_LUT[data[offsets[:-1][filled]]].any():
            return True
        if _SPACE_LUT[data[offsets[1:][filled] - 1]].any():
            return True
    return False


def _normalise_text(series: pd.Series) -> tuple[pd.Series, bool]:
    """Trimmed text; full-width digits and signs (NFKC) → ASCII; empty → NA.

    Runs on the Arrow strings with pyarrow compute; only non-ASCII values go
    through NFKC, so a 12-million-row ASCII column costs a few vectorised passes.
    Returns the text and whether NFKC changed a value.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pd.array(series, dtype="string[pyarrow]")
    arrow = pa.chunked_array(text.__arrow_array__())
    if _edge_space(arrow):  # trim only if needed:
        arrow = pc.utf8_trim_whitespace(arrow)  # a 12-million-row key is 200 MB a copy
    changed = False
    non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(arrow), True))
    if pc.any(non_ascii).as_py():
        stripped = pd.Series(pd.array(arrow, dtype="string[pyarrow]"))
        mask = stripped.notna() & ~stripped.str.isascii().fillna(True)
        before = stripped[mask]
        after = before.map(_nfkc, na_action="ignore")
        changed = bool((before != after).fillna(False).any())
        stripped[mask] = after
        arrow = pa.chunked_array(pd.array(stripped, dtype="string[pyarrow]").__arrow_array__())
    empty = pc.equal(arrow, "")
    if pc.any(empty).as_py():
        arrow = pc.if_else(empty, pa.scalar(None, arrow.type), arrow)
    return pd.Series(pd.array(arrow, dtype="string[pyarrow]"), copy=False), changed


#: a number whose commas group its digits by three (1,234 or -12,345.67 or 1,234%)
_GROUPED = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?%?"


def _to_number(text: pd.Series) -> tuple[pd.Series, pd.Series, bool, bool]:
    """Numbers with thousands separators or a % sign.

    A comma is read as a thousands separator only where it groups digits by three
    (``1,234.5``); ``12,5`` (a decimal comma? a typo?) is not a number here: it is
    reported, never guessed into 125 or 12.5.

    Returns (values, bad mask, had %, had thousands separators).
    """
    commas = text.str.contains(",", regex=False).fillna(False)
    had_commas = False
    cleaned = text
    if commas.any():
        grouped = commas & text.str.fullmatch(_GROUPED).fillna(False)
        had_commas = bool(grouped.any())
        # other values with a comma keep it: they do not parse, so they are reported
        cleaned = text.where(~grouped, text.str.replace(",", "", regex=False))
    had_percent = bool(cleaned.str.endswith("%").fillna(False).any())
    if had_percent:
        cleaned = cleaned.str.removesuffix("%")
    values = pd.to_numeric(cleaned, errors="coerce")
    bad = text.notna() & values.isna()
    return values.astype("float64"), bad, had_percent, had_commas


def _to_bool(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    lowered = text.str.lower()
    result = pd.Series(pd.NA, index=text.index, dtype="boolean")
    result[lowered.isin(_TRUE).fillna(False)] = True
    result[lowered.isin(_FALSE).fillna(False)] = False
    bad = text.notna() & result.isna()
    return result, bad


def _to_datetime(text: pd.Series) -> tuple[pd.Series, pd.Series, bool]:
    prepared = text.str.replace("/", "-", regex=False)
    values = pd.to_datetime(prepared, errors="coerce", format="ISO8601")
    retry = prepared.notna() & values.isna()
    cjk = False
    if retry.any():
        # 2026年10月1日 08:00 and other spellings: only the rows ISO 8601 did not take.
        subset = prepared[retry]
        has_cjk = subset.str.contains("年", regex=False).fillna(False)
        cjk = bool(has_cjk.any())
        if cjk:
            subset = subset.str.replace(
                _DATE_CJK,
                lambda m: f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3) or 1):02d}",
                regex=True,
            )
        values[retry] = pd.to_datetime(subset, errors="coerce", format="mixed")
    bad = text.notna() & values.isna()
    return values.astype("datetime64[us]"), bad, cjk


def _to_period(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    def one(value: Any) -> Any:
        if not isinstance(value, str):
            return pd.NA
        match = _PERIOD_TEXT.match(value)
        if not match or not 1 <= int(match.group(2)) <= 12:
            return pd.NA
        return f"{int(match.group(1)):04d}-{int(match.group(2)):02d}"

    values = text.map(one, na_action="ignore").astype("string")
    bad = text.notna() & values.isna()
    return values, bad


def _label_map(column: Column) -> dict[str, str]:
    table: dict[str, str] = {}
    for value, (zh, en) in (column.values or {}).items():
        for label in (value, zh, en):
            table[label.strip().lower()] = value
    return table


_EXPECTED_TYPE = {
    "int": "integer",
    "float": "number",
    "bool": "yes/no",
    "datetime": "date-time",
    "date": "date",
    "period": "YYYY-MM",
    "str": "text",
}


@dataclass
class _Converted:
    """One column's values converted to its type, and what could not be converted."""

    values: pd.Series
    bad: list[tuple[str, str, pd.Series]] = field(default_factory=list)
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


#: rows converted at once where a whole column's temporaries would add up
_CHUNK_ROWS = 1 << 20


def _already_typed(column: Column, raw: pd.Series) -> _Converted | None:
    """``raw`` as the column's type when a typed reader (pyarrow) already parsed it."""
    dtype = raw.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if column.dtype == "float" and numeric:
        return _Converted(raw.astype("float64"))
    if column.dtype == "int" and pd.api.types.is_integer_dtype(dtype):
        return _Converted(raw.astype("Int64"))  # integers already: nothing to round
    if column.dtype == "int" and numeric:
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
        fractional = np.zeros(len(values), dtype=bool)
        data = np.empty(len(values), dtype=np.int64)
        # a million rows at a time: a 12-million-row column's temporaries are
        # then 8 MB, not three more copies of it
        for start in range(0, len(values), _CHUNK_ROWS):
            part = values[start : start + _CHUNK_ROWS]
            rounded = np.round(part)
            fractional[start : start + len(part)] = (part != rounded) & ~np.isnan(part)
            rounded[np.isnan(part)] = 0  # masked below; NaN does not cast to int64
            data[start : start + len(part)] = rounded
        return _Converted(
            pd.Series(pd.arrays.IntegerArray(data, missing), copy=False),
            [("not_an_integer", _EXPECTED_TYPE["int"], pd.Series(fractional, copy=False))],
        )
    if column.dtype == "bool" and pd.api.types.is_bool_dtype(dtype):
        return _Converted(raw.astype("boolean"))
    if column.dtype == "datetime" and pd.api.types.is_datetime64_dtype(dtype):
        return _Converted(raw.astype("datetime64[us]"))
    if column.dtype == "date" and pd.api.types.is_datetime64_dtype(dtype):
        return _Converted(raw.astype("datetime64[us]").dt.normalize())
    return None


def _convert_values(column: Column, raw: pd.Series, params: Params | None) -> _Converted:
    """Convert raw values (text as read) to the column's type: pure, no rules."""
    typed = _already_typed(column, raw)
    if typed is not None:
        return typed
    text, changed = _normalise_text(raw)
    out = _Converted(text)
    if changed:
        out.notes.append(("note.fullwidth", {"column": column.name}))
    expected = _EXPECTED_TYPE[column.dtype]
    if column.dtype in ("int", "float"):
        values, bad, had_percent, had_commas = _to_number(text)
        out.bad.append(("not_a_number", expected, bad))
        if had_percent:
            out.notes.append(("note.percent_text", {"column": column.name}))
        if had_commas:
            out.notes.append(("note.thousands", {"column": column.name}))
        if column.dtype == "int":
            fractional = values.notna() & (values != values.round())
            out.bad.append(("not_an_integer", expected, fractional))
            out.values = values.round().astype("Int64")
        else:
            out.values = values
    elif column.dtype == "bool":
        out.values, bad = _to_bool(text)
        out.bad.append(("not_yes_no", expected, bad))
    elif column.dtype in ("datetime", "date"):
        values, bad, had_cjk = _to_datetime(text)
        out.bad.append(("not_a_date", expected, bad))
        if had_cjk:
            out.notes.append(("note.cjk_dates", {"column": column.name}))
        out.values = values.dt.normalize() if column.dtype == "date" else values
    elif column.dtype == "period":
        out.values, bad = _to_period(text)
        out.bad.append(("not_a_period", expected, bad))
    else:
        result = text
        if column.values:
            mapped = text.str.lower().map(_label_map(column))
            result = mapped.where(mapped.notna(), text).astype("string")
        if column.lookup and params is not None and params.lookup(column.lookup):
            known = params.lookup(column.lookup)
            mapped = text.map(known)
            mapped = mapped.where(mapped.notna(), text.str.lower().map(known))
            result = mapped.where(mapped.notna(), text).astype("string")
        out.values = result
    return out


def code_dtype(count: int) -> np.dtype[Any]:
    """The narrowest signed integers that number ``count`` values and -1 (missing)."""
    return np.min_scalar_type(-max(count, 1))


def _expand(converted: _Converted, codes: np.ndarray, categorical: bool = False) -> _Converted:
    """Values converted once per distinct value (the categories) → one per row.

    Text comes back as a categorical; other types as their own arrays, or as a
    categorical of the converted values when ``categorical`` (a reader's ``keep``
    takes them so: yes/no columns then stay one byte a row, never expanded).
    """
    missing = codes < 0
    safe = np.where(missing, 0, codes) if missing.any() else codes
    values = converted.values
    if categorical and not pd.api.types.is_string_dtype(values.dtype):
        # equal converted values (Y and 是 both yes) share one category
        value_codes, uniques = pd.factorize(values, use_na_sentinel=True)
        small = code_dtype(len(uniques))
        row_codes = value_codes.astype(small)[safe]
        row_codes[missing] = -1
        expanded = pd.Series(
            pd.Categorical.from_codes(row_codes, dtype=pd.CategoricalDtype(pd.Index(uniques))),
            copy=False,
        )
    elif pd.api.types.is_string_dtype(values.dtype):
        new_codes, uniques = pd.factorize(values.to_numpy(dtype=object, na_value=None))
        # the smallest integers that hold the codes: 12 million rows of int64 codes
        # would be 96 MB for a column of a few hundred agents
        new_codes = new_codes.astype(code_dtype(len(uniques)))
        row_codes = np.where(missing, -1, new_codes[safe])
        expanded = pd.Series(
            pd.Categorical.from_codes(row_codes, categories=pd.Index(uniques, dtype="str")),
            copy=False,
        )
    elif isinstance(values.dtype, pd.BooleanDtype):
        data = values.fillna(False).to_numpy(dtype=bool)[safe]
        mask = values.isna().to_numpy()[safe] | missing
        expanded = pd.Series(pd.arrays.BooleanArray(data, mask), copy=False)
    else:
        expanded = pd.Series(values.array.take(codes, allow_fill=True), copy=False)
    bad = [
        (reason, expected, pd.Series(mask.to_numpy(dtype=bool)[safe] & ~missing, copy=False))
        for reason, expected, mask in converted.bad
        if mask.any()
    ]
    return _Converted(expanded, bad, converted.notes)


def _contract_checks(
    table: LoadedTable, column: Column, values: pd.Series, raw: pd.Series, params: Params | None
) -> None:
    """The contract's value rules for one record at a time (the records store's forms).

    Exports and registers read in a batch are checked by the data-quality gate
    instead (:mod:`qmsnb.gate`, rules in ``expectations/*.json``); the records
    store validates a single record as it is saved, where importing Great
    Expectations (~4 s) is out of the question. ``tests/test_gate.py`` checks
    that these contract rules and the suites agree.
    """
    expected = _EXPECTED_TYPE[column.dtype]
    if column.values:
        unknown = values.notna() & ~values.isin(list(column.values)).fillna(False)
        _problem(table, column.name, "not_allowed", " / ".join(column.values), unknown, raw)
    if column.lookup and params is not None and params.lookup(column.lookup):
        known = params.lookup(column.lookup)
        unknown = values.notna() & ~values.isin(set(known.values())).fillna(False)
        reason = "unknown_department" if column.lookup == "departments" else "not_allowed"
        _problem(table, column.name, reason, ", ".join(sorted(set(known.values()))), unknown, raw)
    if not column.nullable:
        _problem(table, column.name, "missing_value", expected, values.isna(), raw)
    if column.minimum is not None or column.maximum is not None:
        numeric = pd.to_numeric(values, errors="coerce")
        low = column.minimum if column.minimum is not None else -np.inf
        high = column.maximum if column.maximum is not None else np.inf
        outside = numeric.notna() & ((numeric < low) | (numeric > high))
        _problem(
            table,
            column.name,
            "out_of_range",
            f"{column.minimum if column.minimum is not None else '…'}–"
            f"{column.maximum if column.maximum is not None else '…'}",
            outside.fillna(False),
            raw,
        )


def _problem(
    table: LoadedTable, column: str, reason: str, expected: str, mask: pd.Series, raw: pd.Series
) -> None:
    mask = pd.Series(np.asarray(mask, dtype=bool))
    count = int(mask.sum())
    if not count:
        return
    where = np.flatnonzero(mask.to_numpy())[:MAX_EXAMPLES]
    rows = table.frame[ROW].to_numpy()[where].astype(int).tolist()
    values = [str(v) for v in pd.Series(raw).iloc[where].tolist()]
    table.problems.append(
        Problem(
            dataset=table.dataset.id,
            file=str(table.source or table.path),
            column=column,
            reason=reason,
            expected=expected,
            count=count,
            rows=tuple(rows),
            values=tuple(values),
        )
    )


def _convert_column(
    table: LoadedTable, column: Column, raw: pd.Series, params: Params | None, check_rules: bool
) -> pd.Series:
    raw = raw.reset_index(drop=True)
    if isinstance(raw.dtype, pd.CategoricalDtype):
        # convert each distinct value once (the fast readers' dictionary columns)
        categories = pd.Series(raw.cat.categories.astype("str"))
        converted = _expand(
            _convert_values(column, categories, params),
            raw.cat.codes.to_numpy(),
            categorical=table.keep is not None,
        )
    else:
        converted = _convert_values(column, raw, params)
    for reason, expected, mask in converted.bad:
        _problem(table, column.name, reason, expected, mask, raw)
    for note in converted.notes:
        if note not in table.notes:
            table.notes.append(note)
    if check_rules:
        _contract_checks(table, column, converted.values, raw, params)
    return converted.values


def _first_cells(body: pd.DataFrame) -> pd.Series:
    """The first non-empty cell of every row (text), for spotting totals rows."""
    first = pd.Series("", index=body.index, dtype=object)
    for position in range(body.shape[1] - 1, -1, -1):
        cells = body.iloc[:, position].astype("string").fillna("").str.strip()
        first = cells.where(cells != "", first)
    return first


def _typed_from_grid(
    grid: pd.DataFrame, table: LoadedTable, params: Params | None, check_rules: bool = False
) -> None:
    dataset = table.dataset
    header_index = _find_header_row(grid, dataset)
    table.header_row = header_index + 1
    if header_index:
        table.notes.append(("note.title_rows", {"rows": header_index}))
    known = header_map(dataset)
    headers = [str(v) for v in grid.iloc[header_index].tolist()]
    body = grid.iloc[header_index + 1 :]
    # drop fully empty rows (Excel leaves them at the end); column-wise, vectorised
    if len(body):
        filled = body.astype("string").fillna("").apply(lambda col: col.str.strip().ne(""))
        body = body[filled.any(axis=1).to_numpy()]
    width = max((i + 1 for i, h in enumerate(headers) if h.strip()), default=0)
    if len(body) and body.shape[1] > width:
        extra = (
            body.iloc[:, width:]
            .astype("string")
            .fillna("")
            .apply(lambda col: col.str.strip().ne(""))
            .any(axis=1)
        )
        if extra.any():
            table.problems.append(
                Problem(
                    dataset=dataset.id,
                    file=str(table.path),
                    column="*",
                    reason="extra_fields",
                    expected=str(width),
                    count=int(extra.sum()),
                    rows=tuple(int(i) + 1 for i in body.index[extra.to_numpy()][:MAX_EXAMPLES]),
                    values=tuple(
                        ",".join(str(v) for v in body.loc[i].tolist() if str(v).strip())[:200]
                        for i in body.index[extra.to_numpy()][:MAX_EXAMPLES]
                    ),
                )
            )
    # totals rows: trailing ones are dropped (a note says so), others are kept and
    # reported by the gate (they would count as data)
    if len(body):
        totals = _first_cells(body).map(lambda v: bool(_TOTALS.match(_nfkc(str(v)))))
        trailing: list[int] = []
        for index in reversed(body.index.tolist()):
            if not totals[index]:
                break
            trailing.append(index)
        if trailing:
            body = body.drop(index=trailing)
            totals = totals.drop(index=trailing)
            table.notes.append(
                ("note.totals_row", {"rows": ", ".join(str(i + 1) for i in sorted(trailing))})
            )
        table.totals_rows = [int(i) + 1 for i in totals.index[totals.to_numpy(dtype=bool)]]
    row_numbers = body.index.to_numpy() + 1
    columns: dict[str, pd.Series] = {}
    for position, header in enumerate(headers):
        name = known.get(_header_key(header))
        if name is None:
            if header.strip():
                table.unknown_columns.append(header.strip())
            continue
        if name in columns:
            raise DataError(
                "error.data.duplicate_column", file=str(table.path), column=header, name=name
            )
        columns[name] = body.iloc[:, position].reset_index(drop=True)
    raw = pd.DataFrame(columns)
    raw[ROW] = row_numbers
    _convert(raw, table, params, check_rules)


def _unwrapped(values: pd.Series) -> Any:
    """The array behind a column: numpy arrays bare (a frame built from them with
    ``copy=False`` keeps them; wrapped, it copies them), extension arrays as they are."""
    if isinstance(values.dtype, np.dtype):
        array = values.to_numpy(copy=False)
        # a view of Arrow's memory is read-only; the table is the caller's to change
        return array if array.flags.writeable else array.copy()
    return values.array


def _convert(
    raw: pd.DataFrame, table: LoadedTable, params: Params | None, check_rules: bool = False
) -> None:
    dataset = table.dataset
    rows = len(raw)
    columns: dict[str, Any] = {ROW: raw[ROW].to_numpy()}
    # the row numbers, for the problems found while converting
    table.frame = pd.DataFrame({ROW: columns[ROW]}, copy=False)
    table.present_columns = [c.name for c in dataset.columns if c.name in raw.columns]
    for column in dataset.columns:
        if column.name not in raw.columns:
            if column.required:
                table.missing_columns.append(column.name)
            columns[column.name] = pd.array([pd.NA] * rows, dtype="string")
            continue
        series = raw.pop(column.name)  # frees the raw column once converted
        if (
            series.dtype == object
            and column.dtype != "str"
            and not isinstance(series.dtype, pd.CategoricalDtype)
        ):
            series = series.astype("string")
        values = _convert_column(table, column, series, params, check_rules)
        del series
        columns[column.name] = (
            _unwrapped(values) if table.keep is None else table.keep(column, values)
        )
        del values
    # one column at a time above; the frame takes the arrays as they are (no copies)
    table.frame = pd.DataFrame(columns, index=pd.RangeIndex(rows), copy=False)
    del columns
    if not table.missing_columns and table.keep is None:
        for derived in dataset.derived:
            table.frame[derived.name] = derived.compute(table.frame)


# ---------------------------------------------------------------------------
# The fast readers: large CSV (pyarrow, typed, multi-threaded) and parquet
# ---------------------------------------------------------------------------
def _arrow_type(column: Column, dataset: Dataset) -> Any:
    import pyarrow as pa

    if column.dtype in ("int", "float"):
        return pa.float64()
    if column.dtype == "bool":
        return pa.bool_()
    if column.dtype in ("datetime", "date"):
        return pa.timestamp("s")
    if column.name in dataset.key:
        return pa.string()
    return pa.dictionary(pa.int32(), pa.string())


def _spellings(words: set[str]) -> list[str]:
    return sorted({v for w in words for v in (w, w.upper(), w.title())})


def _scan_lines(path: Path) -> tuple[int, bool]:
    """(number of line breaks, whether an empty line sits between two records)."""
    _, lines, blank = _scan(path)
    return lines, blank


def _read_csv_fast(path: Path, table: LoadedTable, params: Params | None) -> bool:
    """Read a large CSV with pyarrow when that gives exactly what the general
    reader would; False (nothing read) when the file needs the general reader:
    a value pyarrow cannot parse, blank lines, line breaks inside values, a
    totals row, or a header it cannot place."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    dataset = table.dataset
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    _check_not_binary(head, path)
    cut = head[: head.rfind(b"\n") + 1] or head
    try:
        sample, table.encoding = _decode(cut, path)
    except DataError:
        return False
    sample_grid = pd.DataFrame(_csv_records(sample, path)[:_HEADER_SEARCH_ROWS], dtype=object)
    header_index = _find_header_row(sample_grid, dataset)
    known = header_map(dataset)
    headers = [str(v) for v in sample_grid.iloc[header_index].tolist() if v is not None]
    mapped = {h: known[_header_key(h)] for h in headers if _header_key(h) in known}
    if len(set(mapped.values())) != len(mapped):
        return False
    lines, blank = _scan_lines(path)
    if blank:
        return False
    types = {h: _arrow_type(dataset.column(name), dataset) for h, name in mapped.items()}
    try:
        arrow = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                skip_rows=header_index,
                encoding="gb18030" if table.encoding == "GB18030" else "utf8",
                block_size=16 << 20,
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(mapped),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                true_values=_spellings(_TRUE - {"√"}),
                false_values=_spellings(_FALSE - {"×"}),
                timestamp_parsers=[
                    pacsv.ISO8601,
                    "%Y/%m/%d %H:%M:%S",
                    "%Y/%m/%d %H:%M",
                    "%Y/%m/%d",
                ],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        return False
    n = arrow.num_rows
    ends_with_break = _ends_with_newline(path)
    if lines - (0 if ends_with_break else -1) != header_index + 1 + n:
        return False  # a line break inside a value, or a blank line: row numbers would drift
    if n:
        last = arrow.slice(n - 1, 1).to_pylist()[0]
        first_text = next((str(v) for v in last.values() if v not in (None, "")), "")
        if _TOTALS.match(_nfkc(first_text)):
            return False
    table.header_row = header_index + 1
    if header_index:
        table.notes.append(("note.title_rows", {"rows": header_index}))
    table.unknown_columns = [h.strip() for h in headers if h not in mapped and h.strip()]
    # one column at a time: each Arrow column is handed to pandas, converted and
    # dropped before the next (the whole table as pandas beside Arrow's doubled
    # the peak of a 12-million-row file)
    columns = {mapped[c]: arrow.column(c) for c in arrow.column_names}
    del arrow
    raw = _ArrowColumns(columns, row_range(n, first=header_index + 2))
    del columns
    _convert(raw, table, params)  # type: ignore[arg-type]
    return True


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) in (b"\n", b"\r")


def row_range(rows: int, first: int = 1) -> np.ndarray:
    """The row numbers of ``rows`` consecutive records, the first being ``first``:
    int32 while they fit (a 12-million-row export's numbers are then 48 MB)."""
    dtype = np.int32 if first + rows < np.iinfo(np.int32).max else np.int64
    return np.arange(first, first + rows, dtype=dtype)


def _arrow_to_pandas(arrow: Any, name: str) -> pd.Series:
    """One Arrow column (a one-column table) as pandas, Arrow's copy freed.

    Dictionary columns become categoricals of the narrowest codes and naive
    timestamps datetime64 directly from Arrow's buffers (pyarrow's general
    conversion held the GIL 4x longer on 12 million rows); the rest as pyarrow
    converts it."""
    import pyarrow as pa

    values = arrow.column(0)
    kind = values.type
    if pa.types.is_dictionary(kind) and values.num_chunks:
        series = _dictionary_to_pandas(values)
        if series is not None:
            return series.rename(name)
    if pa.types.is_timestamp(kind) and kind.tz is None and kind.unit == "us":
        return pd.Series(values.to_numpy(), name=name, copy=False)
    column = arrow.column_names[0]  # the table is unusable once it self-destructed
    series = arrow.to_pandas(
        self_destruct=True,
        split_blocks=True,
        types_mapper={pa.bool_(): pd.BooleanDtype()}.get,
    )[column]
    return series.rename(name)


def _dictionary_to_pandas(values: Any) -> pd.Series | None:
    """A dictionary-encoded Arrow column as a categorical (codes of the narrowest
    integers, -1 for nulls), or None when its dictionary holds a null."""
    import pyarrow.compute as pc

    values = values.unify_dictionaries()  # one dictionary for every chunk
    dictionary = values.chunks[0].dictionary
    if dictionary.null_count:
        return None
    width = len(dictionary)
    codes = np.empty(len(values), dtype=code_dtype(width))
    position = 0
    for chunk in values.chunks:
        indices = chunk.indices
        if indices.null_count:
            indices = pc.fill_null(indices, -1)
        codes[position : position + len(chunk)] = indices.to_numpy()
        position += len(chunk)
    categories = pd.Index(dictionary.to_pandas())
    return pd.Series(
        pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories), validate=False),
        copy=False,
    )


class _ArrowColumns:
    """The raw frame :func:`_convert` reads, each column handed over as pandas only
    when it is taken (``pop``): a column is converted and dropped before the next
    one becomes pandas, and its Arrow memory goes with it."""

    def __init__(self, columns: Mapping[str, Any], rows: np.ndarray) -> None:
        self.arrow = dict(columns)
        self.numbers = rows
        self.columns = [*self.arrow, ROW]

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, name: str) -> pd.Series:
        if name != ROW:
            raise KeyError(name)
        return pd.Series(self.numbers, copy=False)

    def _read(self, name: str) -> Any:
        import pyarrow as pa

        return pa.table({name: self.arrow.pop(name)})

    def _take(self, name: str) -> Any:
        return self._read(name)

    def pop(self, name: str) -> pd.Series:
        import pyarrow as pa

        self.columns.remove(name)
        arrow = self._take(name)
        series = _arrow_to_pandas(arrow, name)
        del arrow
        pa.default_memory_pool().release_unused()  # Arrow keeps freed blocks otherwise
        return series


class _ParquetColumns(_ArrowColumns):
    """:class:`_ArrowColumns` of a parquet file: each column read from the file
    only when it is taken, so one raw column is alive at a time."""

    def __init__(
        self,
        path: Path,
        rename: Mapping[str, str],
        dictionary: Sequence[str],
        rows: int,
        encode: set[str] | None = None,
        order: Sequence[str] | None = None,
    ) -> None:
        super().__init__({name: column for column, name in rename.items()}, row_range(rows))
        self.path = path
        self.dictionary = set(dictionary)
        self.encode = encode or set()
        self.order = list(order or [])
        self.ahead: tuple[str, Future[Any]] | None = None

    def _take(self, name: str) -> Any:
        """The column ``name``, read ahead if it was; then the next one in
        :attr:`order` is read in a second thread (parquet decoding lets go of the
        GIL) while this one is converted: one more raw column in memory."""
        if self.ahead is not None and self.ahead[0] == name:
            arrow = self.ahead[1].result()
        else:
            if self.ahead is not None:  # read out of order: the read-ahead is dropped
                self.ahead[1].result()
            arrow = self._read(name)
        self.ahead = None
        following = [c for c in self.order if c in self.arrow]
        if following:
            pool = ThreadPoolExecutor(1, thread_name_prefix="qmsnb-read-ahead")
            self.ahead = (following[0], pool.submit(self._read, following[0]))
            pool.shutdown(wait=False)  # its thread ends with this one read
        return arrow

    def _read(self, name: str) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        column = self.arrow.pop(name)
        try:
            # read_table decodes row groups in parallel (1.5x faster than ParquetFile.read)
            arrow = pq.read_table(
                self.path,
                columns=[column],
                read_dictionary=[column] if column in self.dictionary else None,
            ).rename_columns([name])
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError on broken files
            raise DataError(
                "error.data.parquet_unreadable", file=str(self.path), problem=str(exc)
            ) from exc
        values = arrow.column(0)
        if name in self.encode and _few_distinct(values):
            arrow = pa.table({name: pc.dictionary_encode(values)})
        return arrow


def _few_distinct(values: Any, sample: int = 1 << 16) -> bool:
    """Whether a numeric Arrow column's first values repeat enough to encode it as a
    dictionary (at most a quarter of them distinct)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        return False
    head = values.slice(0, sample)
    return len(head) > 0 and pc.count_distinct(head).as_py() <= len(head) // 4


def _read_parquet_file(path: Path, table: LoadedTable, params: Params | None) -> None:
    import pyarrow.parquet as pq

    dataset = table.dataset
    known = header_map(dataset)
    try:
        names = pq.read_schema(path).names
        rename = {c: known[_header_key(c)] for c in names if _header_key(c) in known}
        # text columns with few distinct values come back as categoricals: they are
        # converted once per distinct value
        dictionary = [
            c
            for c, name in rename.items()
            if dataset.column(name).dtype in ("str", "bool", "period") and name not in dataset.key
        ]
        # one column at a time: a whole 12-million-row table took three times the
        # CPU of its columns read one by one, and only one raw column is alive
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError on broken files
        raise DataError("error.data.parquet_unreadable", file=str(path), problem=str(exc)) from exc
    table.unknown_columns = [str(c) for c in names if c not in rename]
    # for a caller that keeps its own form of each column (the gate), numbers with
    # few distinct values are dictionary-encoded by Arrow too (in C++, without the
    # GIL): they are then converted once per distinct value, like text
    encode = (
        {
            name
            for name in rename.values()
            if dataset.column(name).dtype in ("int", "float") and name not in dataset.key
        }
        if table.keep is not None
        else set()
    )
    # in the order the columns are converted (read ahead one at a time)
    order = [c.name for c in dataset.columns if c.name in rename.values()]
    raw = _ParquetColumns(path, rename, dictionary, rows, encode, order)
    _convert(raw, table, params)  # type: ignore[arg-type]


def read_dataset(
    path: Path,
    dataset: Dataset | str,
    params: Params | None = None,
    *,
    sha256: str | None = None,
    keep: Callable[[Column, pd.Series], Any] | None = None,
) -> LoadedTable:
    """Read one file of ``dataset`` into a typed table, collecting what could not be read.

    The file is opened read-only. Values that cannot be converted to their
    column's type are collected in ``.problems`` with their row numbers in the
    original file; the data-quality gate (:mod:`qmsnb.gate`) decides what they
    mean and checks every rule. A file that cannot be read at all raises.

    Args:
        sha256: the file's sha256 when the caller has just computed it (a
            12-million-row CSV is a second's read to hash again).
        keep: for a caller that wants each typed column in another form (the
            data-quality gate: integers as floats, a long key as integer codes):
            ``keep(column, values)`` gets each converted column as soon as it is
            converted and returns what the frame holds instead, so the typed
            column and its other form never both stay in memory for every
            column. Derived columns are then left out.

    Raises:
        DataError: the file does not exist, is empty, binary, in an unknown
            encoding, truncated, or not parseable as its format.
    """
    dataset = DATASETS[dataset] if isinstance(dataset, str) else dataset
    path = Path(path)
    if not path.is_file():
        raise DataError("error.data.missing_file", file=str(path), dataset=dataset.id)
    table = LoadedTable(
        dataset=dataset,
        path=path,
        sha256=sha256 or sha256_file(path),
        frame=pd.DataFrame(),
        keep=keep,
    )
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        _read_parquet_file(path, table, params)
    elif (
        suffix == ".csv"
        and path.stat().st_size >= FAST_CSV_BYTES
        and _read_csv_fast(path, table, params)
    ):
        pass
    else:
        table.notes.clear()
        _typed_from_grid(_raw_grid(path, table), table, params)
    if suffix in (".csv", ".parquet") and "pyarrow" in sys.modules:
        # Arrow's allocator keeps freed blocks for reuse: hand the read's back
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    return table


def release_memory() -> None:
    """Hand the memory freed after reading large files back to the system.

    Arrow's allocator and the C library's both keep freed blocks for reuse; a
    batch that read a 12-million-row export would otherwise hold its gigabyte
    through every report that runs after it.
    """
    import ctypes
    import gc

    gc.collect()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def raise_for_problems(table: LoadedTable) -> None:
    """Raise the first thing that kept a table from being read as a DataError.

    For reads outside the batch (e.g. seeding the risk register from a process
    register file); the batch's exports and registers go through the gate instead.
    """
    if table.missing_columns:
        raise DataError(
            "error.data.missing_columns",
            file=str(table.path),
            dataset=table.dataset.id,
            columns=", ".join(table.missing_columns),
        )
    if table.problems:
        first = table.problems[0]
        raise DataError(
            f"error.data.problem.{first.reason}",
            file=first.file,
            column=first.column,
            rows=", ".join(map(str, first.rows[:5])),
            count=first.count,
            value=first.values[0] if first.values else "",
            expected=first.expected,
        )


def load(
    folder: Path, dataset: str, params: Params | None = None, required: bool = True
) -> LoadedTable | None:
    """Find and read ``dataset`` in ``folder``.

    Raises:
        DataError: ``required`` and no file found.
    """
    spec = DATASETS[dataset]
    path = find_dataset_file(folder, spec)
    if path is None:
        if required:
            raise DataError(
                "error.data.dataset_not_found",
                dataset=dataset,
                name=spec.zh,
                folder=str(folder),
                names=", ".join(f"{s}{x}" for s in spec.stems[:2] for x in SUFFIXES),
            )
        return None
    return read_dataset(path, spec, params)


def typed_frame(
    frame: pd.DataFrame, dataset: Dataset | str, params: Params | None = None, source: str = ""
) -> LoadedTable:
    """Type an in-memory frame to the contract exactly as a file would be read.

    Headers may be column ids, Chinese or English headers; values may be text
    (as in a file) or Python/pandas values (dates, numbers, booleans). Problems are
    collected in ``.problems`` like :func:`read_dataset` does; ``source`` names
    where the frame came from in those problems.
    """
    dataset = DATASETS[dataset] if isinstance(dataset, str) else dataset
    table = LoadedTable(
        dataset=dataset, path=Path(source or dataset.id), sha256="", frame=pd.DataFrame()
    )
    known = header_map(dataset)
    rename = {c: known[_header_key(c)] for c in frame.columns if _header_key(c) in known}
    raw = frame.rename(columns=rename).reset_index(drop=True)
    table.unknown_columns = [str(c) for c in raw.columns if c not in rename.values()]
    raw = raw[[c for c in raw.columns if c in rename.values()]].copy()
    raw[ROW] = np.arange(1, len(raw) + 1)
    _convert(raw, table, params, check_rules=True)
    return table


# ---------------------------------------------------------------------------
# Spreadsheets people open: formula neutralisation and the XLSX writer
# ---------------------------------------------------------------------------
#: A cell text starting with one of these could run as a formula in Excel/WPS
#: (OWASP "CSV injection"); exported text gets a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    """``=1+1`` → ``'=1+1``: text that a spreadsheet would run as a formula is quoted."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def restore_formula(text: str) -> str:
    """Undo :func:`neutralise_formula` (``'=1+1`` → ``=1+1``) when reading our own export back."""
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text


@dataclass
class Sheet:
    """One worksheet to write: a header row and rows of Python values.

    Attributes:
        title: sheet name (at most 31 characters; longer names are cut).
        headers: the header row.
        rows: the data rows (str, int, float, bool, date, datetime or None).
        widths: column widths in characters (guessed from the content when empty).
        title_rows: lines written above the header (e.g. an audit's heading).
    """

    title: str
    headers: list[str]
    rows: list[list[Any]]
    widths: list[float] = field(default_factory=list)
    title_rows: list[str] = field(default_factory=list)


def _cell_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return neutralise_formula(value)
    return value


def write_xlsx(path: Path, sheets: list[Sheet]) -> Path:
    """Write worksheets atomically with openpyxl.

    Every text cell goes through :func:`neutralise_formula` and is stored as text,
    so nothing written here can run as a formula when the file is opened.
    Dates are real Excel dates (``yyyy-mm-dd``); the header row is bold, frozen
    and filterable.
    """
    import datetime as _dt

    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    for sheet in sheets:
        ws = book.create_sheet(sheet.title[:31])
        for line in sheet.title_rows:
            ws.append([neutralise_formula(line)])
            ws.cell(ws.max_row, 1).font = Font(bold=True)
        header_row = len(sheet.title_rows) + 1
        ws.append([neutralise_formula(str(h)) for h in sheet.headers])
        for cell in ws[header_row]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="E8F0FE")
        for row in sheet.rows:
            ws.append([_cell_value(v) for v in row])
            for cell in ws[ws.max_row]:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # never "f": text stays text
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
                elif isinstance(cell.value, _dt.datetime | _dt.date):
                    cell.number_format = "yyyy-mm-dd"
        for index, header in enumerate(sheet.headers, 1):
            if sheet.widths and index <= len(sheet.widths):
                width = sheet.widths[index - 1]
            else:
                longest = max(
                    [len(str(header))]
                    + [
                        len(str(r[index - 1]))
                        for r in sheet.rows[:200]
                        if index <= len(r) and r[index - 1] is not None
                    ]
                )
                width = min(60, max(8, longest * 1.6))
            ws.column_dimensions[get_column_letter(index)].width = width
        ws.freeze_panes = ws.cell(header_row + 1, 1)
        if sheet.rows:
            last = get_column_letter(len(sheet.headers))
            ws.auto_filter.ref = f"A{header_row}:{last}{header_row + len(sheet.rows)}"
    with _atomic(path, "wb") as fh:
        book.save(fh)
    return Path(path)


# ---------------------------------------------------------------------------
# Writing exports (the demo and test fixtures use these)
# ---------------------------------------------------------------------------
def write_export(
    frame: pd.DataFrame,
    path: Path,
    dataset: Dataset | str,
    headers: str = "en",
    encoding: str = "utf-8",
) -> Path:
    """Write ``frame`` as an export file with ``zh``, ``en`` or ``id`` headers.

    The format follows the suffix: ``.csv`` (in ``encoding``), ``.xlsx`` or ``.parquet``.
    """
    dataset = DATASETS[dataset] if isinstance(dataset, str) else dataset
    label: Mapping[str, str] = {
        c.name: (c.zh if headers == "zh" else c.en if headers == "en" else c.name)
        for c in dataset.columns
    }
    out = frame[[c for c in frame.columns if c in label]].rename(columns=label)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with _atomic(path, "wb") as fh:
            fh.write(out.to_csv(index=False, lineterminator="\r\n").encode(encoding))
    elif suffix == ".xlsx":
        with _atomic(path, "wb") as fh:
            out.to_excel(fh, index=False, engine="openpyxl")
    elif suffix == ".parquet":
        write_parquet(path, out)
    else:
        raise ValueError(f"unsupported export format {suffix}")
    return path


# ---------------------------------------------------------------------------
# Columnar copies of CSV exports (qmsnb.columnar queries them with DuckDB)
# ---------------------------------------------------------------------------
#: Bytes read to find a CSV's encoding sample and header row.
_SAMPLE_BYTES = 1 << 16
#: Bytes per block when a non-UTF-8 CSV is transcoded for DuckDB.
_TRANSCODE_BLOCK = 1 << 24


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _csv_header(path: Path, dataset: Dataset, encoding: str) -> tuple[int, list[str]] | None:
    """(header row index, header texts) of a CSV, found as the loader finds them."""
    import csv

    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    if b"\x00" in sample[:8192]:
        return None
    text = sample.decode(encoding, errors="replace").splitlines()[:_HEADER_SEARCH_ROWS]
    rows = list(csv.reader(text))
    if not rows:
        return None
    width = max(len(r) for r in rows)
    grid = pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype=object)
    index = _find_header_row(grid, dataset)
    headers = [h for h in rows[index]]
    if headers and headers[0].startswith("\ufeff"):
        headers[0] = headers[0][1:]
    return index, headers


def parquet_cache(
    path: Path, dataset: Dataset | str, cache_dir: Path, sha256: str | None = None
) -> Path | None:
    """A parquet copy of a CSV export, made once and kept under its sha256.

    The copy is the file's table as text: title rows above the header skipped,
    one VARCHAR column per header (named as in the file), every value as written
    (empty cells are NULL). It converts nothing, so the loader's rules still
    decide what each value means. UTF-8 (with or without BOM) is read as it is;
    anything else is transcoded from GB18030 first, as the loader decodes it.

    Returns:
        The cached file, or None when the file is not a plain CSV table this fast
        path can copy faithfully (binary, undecodable, ragged, duplicate headers):
        the caller then reads it with :func:`read_dataset`, which reports why.
    """
    import duckdb

    dataset = DATASETS[dataset] if isinstance(dataset, str) else dataset
    path = Path(path)
    digest = sha256 or sha256_file(path)
    target = Path(cache_dir) / f"{digest}.parquet"
    if target.is_file():
        return target
    ensure_dir(target.parent)
    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    sample = sample[: sample.rfind(b"\n") + 1] or sample
    try:
        sample.decode("utf-8")
        encodings = ["utf-8", "gb18030"]
    except UnicodeDecodeError:
        encodings = ["gb18030"]
    scratch = None
    try:
        for encoding in encodings:
            source = path
            if encoding != "utf-8":  # transcoded, as the loader would decode it
                scratch = target.with_name(f".{target.stem}.utf8.csv")
                try:
                    _transcode(path, scratch, encoding)
                except UnicodeDecodeError:
                    return None
                source = scratch
            found = _csv_header(path, dataset, encoding)
            if found is None:
                return None
            header_index, headers = found
            if len(set(headers)) != len(headers) or not all(h.strip() for h in headers):
                return None
            names = ", ".join(_sql_text(h) for h in headers)
            query = (
                f"SELECT * FROM read_csv({_sql_text(str(source))}, header = false, "
                f"skip = {header_index + 1}, delim = ',', quote = '\"', escape = '\"', "
                f"all_varchar = true, null_padding = true, names = [{names}])"
            )
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.close(fd)
            try:
                with duckdb.connect() as con:
                    con.execute(f"COPY ({query}) TO {_sql_text(tmp)} (FORMAT parquet)")
                os.replace(tmp, target)
                return target
            except duckdb.Error as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                if "unicode" not in str(exc).lower():
                    return None  # not UTF-8 after all: try the next encoding
        return None
    finally:
        if scratch is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(scratch)


def _transcode(source: Path, target: Path, encoding: str) -> None:
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    with open(source, "rb") as raw, open(target, "w", encoding="utf-8", newline="") as out:
        while block := raw.read(_TRANSCODE_BLOCK):
            out.write(decoder.decode(block))
        out.write(decoder.decode(b"", final=True))


def columnar_relation(path: Path) -> str:
    """The DuckDB table expression that reads a parquet file (for :mod:`qmsnb.columnar`)."""
    return f"read_parquet({_sql_text(str(path))})"


# Bundles, locks and outgoing mail (distribution)
# ---------------------------------------------------------------------------
#: Time stamp of every zip member, so the same files always give the same bundle bytes.
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)


def read_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


def write_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """Write a zip atomically; same members in, same bytes out (fixed time stamps).

    Args:
        members: (name inside the zip, content) pairs, in the order to write them.
    """
    import zipfile

    with _atomic(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return Path(path)


def read_zip(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every member of a zip as (name, content)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            yield info.filename, archive.read(info)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block.

    Yields True when the lock was taken, False when another process holds it.
    The lock goes with the process (a killed process leaves no stale lock).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 - held for the whole block
    try:
        try:
            import fcntl

            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        except ImportError:  # Windows
            import msvcrt

            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError:
                yield False
                return
        yield True
    finally:
        handle.close()


def write_message(path: Path, message: Any) -> Path:
    """Write an ``email.message.EmailMessage`` as an ``.eml`` file (atomically)."""
    return write_bytes(path, bytes(message))
