"""The loader: encodings, header mapping, conversions, problems with row numbers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from qmsnb import io
from qmsnb.config import Params
from qmsnb.contract import DATASETS
from qmsnb.exceptions import DataError

CALLBACKS_ZH = "任务编号,派发时间,执行部门,回访类型,是否完成,回访成功,完成时间\r\n"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_gb18030_csv_with_chinese_headers(tmp_path: Path, params: Params) -> None:
    path = tmp_path / "callbacks.csv"
    text = CALLBACKS_ZH + "R1,2026-10-02 09:00,服监中心,装移修回访,是,否,2026-10-02 11:00\r\n"
    path.write_bytes(text.encode("gb18030"))
    before = _sha(path)
    table = io.read_dataset(path, "callbacks", params)
    assert table.encoding == "GB18030"
    row = table.frame.iloc[0]
    assert row["department"] == "service_supervision"
    assert row["task_type"] == "install_repair"
    assert bool(row["completed"]) is True and bool(row["reached"]) is False
    assert row["created_at"] == pd.Timestamp("2026-10-02 09:00")
    assert table.problems == []
    assert _sha(path) == before  # inputs are never touched


def test_utf8_bom_title_rows_and_percent_text(tmp_path: Path, params: Params) -> None:
    path = tmp_path / "monthly_indicators.csv"
    text = (
        "2026年10月 月度指标汇总,,,,,\r\n"
        ",,,,,\r\n"
        "月份,部门,指标,分子,分母,指标值\r\n"
        '2026年10月,行政部,供方一次交验合格率,"1,045","1,100",95.0%\r\n'
    )
    path.write_bytes(text.encode("utf-8-sig"))
    table = io.read_dataset(path, "monthly_indicators", params)
    assert table.encoding == "UTF-8-BOM"
    assert table.header_row == 3
    assert ("note.title_rows", {"rows": 2}) in table.notes
    assert ("note.percent_text", {"column": "value"}) in table.notes
    row = table.frame.iloc[0]
    assert row["period"] == "2026-10"
    assert row["indicator"] == "supplier_first_pass"
    assert row["numerator"] == 1045 and row["denominator"] == 1100 and row["value"] == 95.0
    assert row[io.ROW] == 4


def test_full_width_digits_and_cjk_dates(tmp_path: Path, params: Params) -> None:
    path = tmp_path / "callbacks.csv"
    text = CALLBACKS_ZH + "R２,2026年10月3日,服监中心,服务回访,１,１,\r\n"
    path.write_text(text, encoding="utf-8")
    table = io.read_dataset(path, "callbacks", params)
    row = table.frame.iloc[0]
    assert row["task_id"] == "R2"
    assert row["created_at"] == pd.Timestamp("2026-10-03")
    assert bool(row["completed"]) is True
    assert ("note.cjk_dates", {"column": "created_at"}) in table.notes


def test_bad_values_become_problems_with_file_rows(tmp_path: Path, params: Params) -> None:
    path = tmp_path / "callbacks.csv"
    text = (
        CALLBACKS_ZH
        + "R1,2026-10-02 09:00,服监中心,服务回访,是,是,\r\n"
        + "R2,not a date,服监中心,服务回访,是,是,\r\n"
        + "R3,2026-10-02 09:00,销售部,服务回访,也许,是,\r\n"
    )
    path.write_text(text, encoding="utf-8")
    table = io.read_dataset(path, "callbacks", params)
    by_reason = {(p.column, p.reason): p for p in table.problems}
    assert by_reason[("created_at", "not_a_date")].rows == (3,)
    assert by_reason[("created_at", "not_a_date")].values == ("not a date",)
    assert by_reason[("completed", "not_yes_no")].values == ("也许",)
    # an unknown department is read as it is: the gate's suite decides (tests/test_gate.py)
    assert ("department", "unknown_department") not in by_reason
    assert table.frame["department"].tolist()[2] == "销售部"


@pytest.mark.parametrize(
    ("content", "key"),
    [
        (b"", "error.data.empty_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "error.data.binary_file"),
        (b"\xff\xfe\xfa\xfb\x81\x30 not text", "error.data.encoding"),
    ],
)
def test_unreadable_files_are_clear_errors(tmp_path: Path, content: bytes, key: str) -> None:
    path = tmp_path / "calls.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        io.read_dataset(path, "calls")
    assert info.value.key == key
    assert str(path) in info.value.message("en")


def test_missing_required_columns_are_listed(tmp_path: Path, params: Params) -> None:
    path = tmp_path / "callbacks.csv"
    path.write_text("任务编号,派发时间\r\nR1,2026-10-02\r\n", encoding="utf-8")
    table = io.read_dataset(path, "callbacks", params)
    assert table.missing_columns == [
        "department",
        "task_type",
        "completed",
        "reached",
        "completed_at",
    ]


def test_two_candidate_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "calls.csv").write_text("x", encoding="utf-8")
    (tmp_path / "呼叫记录.xlsx").write_bytes(b"x")
    with pytest.raises(DataError) as info:
        io.find_dataset_file(tmp_path, DATASETS["calls"])
    assert info.value.key == "error.data.ambiguous_file"


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_write_export_round_trip(tmp_path: Path, params: Params, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "task_id": ["R1", "R2"],
            "created_at": ["2026-10-01 09:00", "2026-10-05 10:30"],
            "department": ["服监中心", "service_supervision"],
            "task_type": ["service", "装移修回访"],
            "completed": ["1", "0"],
            "reached": ["1", "0"],
            "completed_at": ["2026-10-01 12:00", ""],
        }
    )
    path = io.write_export(frame, tmp_path / f"callbacks{suffix}", "callbacks", headers="zh")
    table = io.read_dataset(path, "callbacks", params)
    assert table.problems == []
    assert table.frame["department"].tolist() == ["service_supervision"] * 2
    assert table.frame["task_type"].tolist() == ["service", "install_repair"]
    assert table.frame["completed"].tolist() == [True, False]
    assert pd.isna(table.frame["completed_at"].iloc[1])


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.write_text(target, f"{Boom()}")
    assert io.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize(
    "value",
    ["a", " a", "a ", "\ta", "a\n", "", None, "中 文", "\u3000x", "x\u3000", "\x0bx", "a b"],
)
def test_the_edge_space_check_agrees_with_the_regular_expression(value: str | None) -> None:
    """Reading bytes at the edges of each value says what ``^\\s|\\s$`` says (also
    for sliced arrays and several chunks)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from qmsnb.io import _edge_space

    arrow = pa.chunked_array(
        [pa.array([value, "zz"]), pa.array(["q"]), pa.array(["b", value]).slice(1)]
    )
    expected = bool(pc.any(pc.match_substring_regex(arrow, r"^\s|\s$")).as_py())
    assert _edge_space(arrow) is expected


@pytest.mark.parametrize(
    ("dtype", "categories"),
    [
        ("bool", ["Y", "N", "是", "否", "", "也许"]),
        ("period", ["2026-10", "2026年9月", "", "not a month"]),
        ("int", ["3", "", "7", "3.5"]),
    ],
)
def test_columns_read_as_dictionaries_convert_alike_expanded_or_kept_categorical(
    dtype: str, categories: list[str]
) -> None:
    """A reader's ``keep`` gets dictionary columns as a categorical of their converted
    values (one byte a row): every row holds what the expanded column holds."""
    column = next(c for d in DATASETS.values() for c in d.columns if c.dtype == dtype)
    codes = pd.Series([0, 1, 2, 3, -1, 1, 0, 3, 2, 1] * 3).to_numpy(dtype="int8")
    codes[codes >= len(categories)] = -1

    def converted() -> io._Converted:
        return io._convert_values(column, pd.Series(categories, dtype="str"), None)

    expanded = io._expand(converted(), codes)
    kept = io._expand(converted(), codes, categorical=True)
    assert isinstance(kept.values.dtype, pd.CategoricalDtype)
    assert kept.values.astype(object).where(kept.values.notna(), None).tolist() == (
        expanded.values.astype(object).where(expanded.values.notna(), None).tolist()
    )
    assert [list(m) for _, _, m in kept.bad] == [list(m) for _, _, m in expanded.bad]


def test_a_comma_that_does_not_group_thousands_is_reported_not_guessed(params: Params) -> None:
    """``1,234`` is a thousands separator (read, with a note); ``12,5`` could be a
    decimal comma or a typo: the row is reported with its value, never read as 125."""
    frame = pd.DataFrame(
        {
            "Call ID": ["C1", "C2", "C3"],
            "Start time": ["2026-10-01 09:00:00"] * 3,
            "Department": ["热线运营部"] * 3,
            "Queue": ["normal"] * 3,
            "Billing period": ["Y"] * 3,
            "Answered": ["Y"] * 3,
            "Wait (s)": ["1,234", "12,5", "3.5"],
            "Handle time (s)": ["10"] * 3,
        }
    )
    table = io.typed_frame(frame, "calls", params)
    assert table.frame["wait_seconds"].tolist()[0] == 1234.0
    assert pd.isna(table.frame["wait_seconds"].tolist()[1])
    (problem,) = [p for p in table.problems if p.reason == "not_a_number"]
    assert (problem.column, problem.rows, problem.values) == ("wait_seconds", (2,), ("12,5",))
    assert ("note.thousands", {"column": "wait_seconds"}) in table.notes


def test_written_files_are_as_readable_as_the_umask_allows(tmp_path: Path) -> None:
    """Reports are written atomically through a temporary file, which mkstemp makes
    private (0600); the page a web server or a colleague reads must not be."""
    import os
    import stat

    from qmsnb import io

    old = os.umask(0o022)
    try:
        page = io.write_text(tmp_path / "report.html", "<p>x</p>")
        data = io.write_json(tmp_path / "manifest.json", {"a": 1})
        os.umask(0o077)
        private = io.write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(page.stat().st_mode) == 0o644
    assert stat.S_IMODE(data.stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_a_cached_frame_comes_back_with_its_types_or_not_at_all(tmp_path: Path) -> None:
    import pandas as pd

    from qmsnb import io

    typed = pd.DataFrame(
        {
            "id": pd.array(["F-1", None], dtype="string[pyarrow]"),
            "count": pd.array([3, None], dtype="Int64"),
            "due": pd.to_datetime(["2026-10-01", None]),
            "level": pd.Categorical(["高", "低"], categories=["低", "中", "高"], ordered=True),
        }
    )
    io.write_frame_cache(tmp_path / "typed.parquet", typed)
    pd.testing.assert_frame_equal(io.read_frame_cache(tmp_path / "typed.parquet"), typed)
    # Python ints in an object column come back as int64: not the frame kept
    loose = pd.DataFrame({"n": pd.Series([1, 2], dtype=object)})
    io.write_frame_cache(tmp_path / "loose.parquet", loose)
    assert io.read_frame_cache(tmp_path / "loose.parquet") is None
    assert io.read_frame_cache(tmp_path / "missing.parquet") is None


def test_utf16_text_is_named_for_what_it_is_with_or_without_a_byte_order_mark(
    tmp_path: Path, params: Params
) -> None:
    from qmsnb import io
    from qmsnb.exceptions import DataError

    text = "回访编号\t回访时间\r\nR1\t2026-10-01 09:00\r\n" * 20
    with_bom = tmp_path / "with_bom.csv"
    with_bom.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    ascii_heavy = tmp_path / "no_bom.csv"
    ascii_heavy.write_bytes(("id\tdate\r\n" + "R1\t2026-10-01\r\n" * 50).encode("utf-16-le"))
    for path in (with_bom, ascii_heavy):
        with pytest.raises(DataError) as raised:
            io.read_dataset(path, "callbacks", params)
        assert raised.value.key == "error.data.utf16"
    # Chinese text in GB18030 or UTF-8 has no zero bytes: read as before
    assert not io._utf16("回访编号,回访时间\r\n".encode("gb18030") * 50)
    assert not io._utf16("回访编号,回访时间\r\n".encode() * 50)


def test_the_sheet_holding_the_table_is_read_and_named(params: Params) -> None:
    """An instructions sheet in front of the data is passed over, with a note."""
    from qmsnb import io

    bad = Path(__file__).parent / "fixtures" / "bad_exports"
    behind = io.read_dataset(bad / "cover_sheet_first.xlsx", "monthly_indicators", params)
    alone = io.read_dataset(bad / "merged_header.xlsx", "monthly_indicators", params)
    pd.testing.assert_frame_equal(behind.frame, alone.frame)
    assert ("note.xlsx_sheet", {"sheet": "Sheet", "first": "填报说明"}) in behind.notes
    assert not any(key == "note.xlsx_sheet" for key, _ in alone.notes)
