"""The data-quality gate: one fixture per defect class, suites, caching, batch, report.

Every fixture in ``tests/fixtures/bad_exports/`` is validated from where it lies
(read-only) and must stay byte-identical; the expected dataset, column, reason
and row numbers (in the original file) were worked out by hand from the file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qmsnb import gate, io
from qmsnb.config import Params, load_params
from qmsnb.contract import DATASETS
from qmsnb.exceptions import ConfigError, ExitCode

BAD = Path(__file__).parent / "fixtures" / "bad_exports"
REPO = Path(__file__).resolve().parents[1]


def _hashes() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(BAD.iterdir())}


BEFORE = _hashes()


@pytest.fixture(scope="module")
def demo_params(demo_project: Path) -> Params:
    return load_params(demo_project / "params")


@pytest.fixture(scope="module")
def checker(demo_params: Params) -> gate.Gate:
    return gate.Gate(demo_params, cache=False)


def _validate(checker: gate.Gate, name: str, dataset: str) -> gate.DatasetResult:
    spec = DATASETS[dataset]
    if spec.kind == "register":
        period, parameters = (
            None,
            {
                **checker.lookups,
                "audit_ids": ["IA-2026-001"],
                "process_ids": ["C1"],
            },
        )
    else:
        period, parameters = "2026-10", checker.export_parameters("2026-10", [])
    result, _ = checker.validate(spec, BAD / name, period, parameters)
    assert result.dataset == dataset
    return result


def _found(result: gate.DatasetResult) -> set[tuple[str, str | None, int | None, tuple[int, ...]]]:
    return {(f.reason, f.column, f.count, tuple(f.rows)) for f in result.failures}


# (file, dataset, status, {(reason, column, count, rows)}, note keys)
CASES: list[tuple[str, str, str, set[Any], set[str]]] = [
    # read as they arrive: normalised, passed, and the report says what was done
    ("gb18030_chinese_headers.csv", "callbacks", "pass", set(), set()),
    ("title_rows.csv", "callbacks", "pass", set(), {"note.title_rows"}),
    ("totals_row_at_end.csv", "callbacks", "pass", set(), {"note.totals_row"}),
    ("percent_text.csv", "monthly_indicators", "pass", set(), {"note.percent_text"}),
    ("cjk_dates.csv", "callbacks", "pass", set(), {"note.cjk_dates"}),
    ("thousands_separators.csv", "monthly_indicators", "pass", set(), {"note.thousands"}),
    ("fullwidth_digits.csv", "callbacks", "pass", set(), {"note.fullwidth"}),
    (
        "merged_header.xlsx",
        "monthly_indicators",
        "pass",
        set(),
        {"note.merged_header", "note.title_rows", "note.percent_text"},
    ),
    (
        "cover_sheet_first.xlsx",
        "monthly_indicators",
        "pass",
        set(),
        {"note.xlsx_sheet", "note.merged_header", "note.title_rows", "note.percent_text"},
    ),
    # rejected
    (
        "renamed_column.csv",
        "calls",
        "fail",
        {("missing_column", "answered", None, ())},
        {"note.unknown_columns"},
    ),
    (
        "previous_month_file.csv",
        "calls",
        "fail",
        {
            ("wrong_period_file", "start_time", None, ()),
            ("outside_period", "start_time", 5, (2, 3, 4, 5, 6)),
        },
        set(),
    ),
    (
        "stray_rows_from_other_month.csv",
        "calls",
        "fail",
        {("outside_period", "start_time", 1, (3,))},
        set(),
    ),
    (
        "duplicate_ticket.csv",
        "complaints",
        "fail",
        {("duplicate_key", "ticket_id", 2, (3, 5))},
        set(),
    ),
    (
        "duplicate_rows.csv",
        "monthly_indicators",
        "fail",
        {
            ("duplicate_key", "period, department, indicator", 2, (2, 4)),
            (
                "duplicate_row",
                "period, department, indicator, numerator, denominator, value",
                2,
                (2, 4),
            ),
        },
        set(),
    ),
    (
        "subtotal_row_inside.csv",
        "callbacks",
        "fail",
        {
            ("totals_row", None, 1, (4,)),
            ("not_yes_no", "completed", 1, (4,)),
            ("not_yes_no", "reached", 1, (4,)),
            ("missing_value", "created_at", 1, (4,)),
            ("missing_value", "department", 1, (4,)),
            ("missing_value", "task_type", 1, (4,)),
        },
        set(),
    ),
    (
        "unknown_department.csv",
        "callbacks",
        "fail",
        {("unknown_department", "department", 2, (3, 4))},
        set(),
    ),
    ("not_allowed_values.csv", "calls", "fail", {("not_allowed", "queue", 1, (3,))}, set()),
    (
        "out_of_range.csv",
        "calls",
        "fail",
        {("out_of_range", "ivr_score", 1, (3,)), ("out_of_range", "wait_seconds", 1, (4,))},
        set(),
    ),
    (
        "rate_above_100.csv",
        "monthly_indicators",
        "fail",
        {
            ("rate_above_100", "value", 1, (2,)),
            ("numerator_above_denominator", "denominator", 1, (4,)),
        },
        {"note.percent_text"},
    ),
    ("missing_values.csv", "callbacks", "fail", {("missing_value", "department", 1, (3,))}, set()),
    (
        "bad_values.csv",
        "callbacks",
        "fail",
        {("not_a_date", "created_at", 1, (3,)), ("not_yes_no", "completed", 1, (4,))},
        set(),
    ),
    (
        "findings_unknown_audit.csv",
        "findings",
        "fail",
        {("unknown_reference", "audit_id", 1, (3,))},
        set(),
    ),
    ("truncated_download.csv", "callbacks", "fail", {("unreadable", None, None, ())}, set()),
    ("binary_renamed.csv", "calls", "fail", {("unreadable", None, None, ())}, set()),
    ("excel_unicode_text.csv", "callbacks", "fail", {("unreadable", None, None, ())}, set()),
    ("empty.csv", "calls", "fail", {("unreadable", None, None, ())}, set()),
    (
        "truncated_workbook.xlsx",
        "monthly_indicators",
        "fail",
        {("unreadable", None, None, ())},
        set(),
    ),
]


@pytest.mark.parametrize(
    ("name", "dataset", "status", "failures", "notes"), CASES, ids=[c[0] for c in CASES]
)
def test_each_defect_class(
    checker: gate.Gate, name: str, dataset: str, status: str, failures: set[Any], notes: set[str]
) -> None:
    before = hashlib.sha256((BAD / name).read_bytes()).hexdigest()
    result = _validate(checker, name, dataset)
    assert result.status == status
    assert _found(result) == failures
    assert {n["key"] for n in result.notes} == notes
    for failure in result.failures:  # every failure says what it means and how to fix it
        assert failure.meaning["zh"] and failure.meaning["en"]
        assert failure.fix["zh"] and failure.fix["en"]
    assert hashlib.sha256((BAD / name).read_bytes()).hexdigest() == before


def test_every_fixture_is_covered_and_unchanged() -> None:
    covered = {c[0] for c in CASES} | {"xss_value.csv", "_make.py", "README.md"}
    assert set(BEFORE) == covered
    assert _hashes() == BEFORE


def test_unreadable_files_say_why(checker: gate.Gate) -> None:
    truncated = _validate(checker, "truncated_download.csv", "callbacks").failures[0]
    assert truncated.detail == "error.data.truncated"
    assert "truncated_download.csv" in truncated.meaning["zh"]
    assert "line 4" in truncated.meaning["en"]
    binary = _validate(checker, "binary_renamed.csv", "calls").failures[0]
    assert binary.detail == "error.data.binary_file"
    # Excel's "Unicode Text" is named for what it is, with how to save it instead
    unicode_text = _validate(checker, "excel_unicode_text.csv", "callbacks").failures[0]
    assert unicode_text.detail == "error.data.utf16"
    assert "excel_unicode_text.csv" in unicode_text.meaning["zh"]
    assert (
        "CSV UTF-8" in unicode_text.meaning["zh"] and "Unicode Text" in unicode_text.meaning["en"]
    )


def test_samples_show_the_original_values(checker: gate.Gate) -> None:
    result = _validate(checker, "unknown_department.csv", "callbacks")
    (failure,) = result.failures
    assert failure.values == ["销售部", "销售部"]
    result = _validate(checker, "previous_month_file.csv", "calls")
    wrong = next(f for f in result.failures if f.reason == "wrong_period_file")
    assert wrong.detail == "2026-09"  # the month most rows belong to


def test_normalised_values_are_right(demo_params: Params) -> None:
    table = io.read_dataset(BAD / "merged_header.xlsx", "monthly_indicators", demo_params)
    assert table.header_row == 3
    row = table.frame.iloc[0]
    assert (row["indicator"], row["numerator"], row["denominator"]) == (
        "supplier_first_pass",
        41,
        43,
    )
    assert row["value"] == pytest.approx(95.35)  # a 0.0% cell holding 0.9535
    assert table.frame.iloc[1]["note"] == "含兼职2人"
    totals = io.read_dataset(BAD / "totals_row_at_end.csv", "callbacks", demo_params)
    assert totals.rows == 3 and ("note.totals_row", {"rows": "5"}) in totals.notes
    fullwidth = io.read_dataset(BAD / "fullwidth_digits.csv", "callbacks", demo_params)
    assert fullwidth.frame["task_id"].iloc[0] == "R20261000001"  # R２０２６１０００００１


def test_row_count_drop_is_a_warning(checker: gate.Gate) -> None:
    spec = DATASETS["callbacks"]
    parameters = checker.export_parameters("2026-10", [300, 310, 290])
    assert parameters["min_rows"] == 150
    result, _ = checker.validate(spec, BAD / "gb18030_chinese_headers.csv", "2026-10", parameters)
    assert result.status == "warn"
    (failure,) = result.failures
    assert (failure.reason, failure.severity, failure.detail) == ("row_count_drop", "warning", "2")


def test_references_of_a_missing_register_are_skipped_not_passed(checker: gate.Gate) -> None:
    spec = DATASETS["findings"]
    result, _ = checker.validate(
        spec, BAD / "findings_unknown_audit.csv", None, dict(checker.lookups)
    )
    assert result.status == "pass"
    assert {s["reason"] for s in result.skipped} == {"unknown_reference"}


# ---------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------
def test_suites_agree_with_the_contract() -> None:
    """The records store checks one record against the contract; the gate checks
    files against the suites: both must say the same."""
    suites = {p.stem for p in (REPO / "expectations").glob("*.json")}
    assert {d.id for d in DATASETS.values() if d.kind == "export"} <= suites
    for dataset in DATASETS.values():
        if dataset.id not in suites:  # a register without a suite is not gated
            continue
        spec = gate.load_suite_spec(REPO / "expectations" / f"{dataset.id}.json")
        by = {}
        for item in spec["expectations"]:
            by.setdefault((item["type"], item["kwargs"].get("column")), []).append(item)
        for column in dataset.columns:
            if not column.nullable:
                key = ("expect_column_values_to_not_be_null", column.name)
                assert key in by, (dataset.id, column.name)
            if column.values:
                (item,) = by[("expect_column_values_to_be_in_set", column.name)]
                assert item["kwargs"]["value_set"] == list(column.values)
            if column.lookup or column.references:
                assert ("expect_column_values_to_be_in_set", column.name) in by
            if column.minimum is not None or column.maximum is not None:
                # the range for every row; ranges for some rows only (a rate's
                # value up to 100 %) are the suite's alone
                (item,) = [
                    i
                    for i in by[("expect_column_values_to_be_between", column.name)]
                    if not i["kwargs"].get("row_condition")
                ]
                assert item["kwargs"].get("min_value") == column.minimum
                assert item["kwargs"].get("max_value") == column.maximum
        assert any(i["meta"]["reason"] == "duplicate_key" for i in spec["expectations"])


def test_every_suite_loads_completely(checker: gate.Gate) -> None:
    checker.check_suites()
    assert {p.stem for p in (REPO / "expectations").glob("*.json")} == set(checker.specs)


def _project_with_suite(tmp_path: Path, demo_project: Path, dataset: str, edit: Any) -> Params:
    root = tmp_path / "p"
    shutil.copytree(demo_project / "params", root / "params")
    shutil.copytree(demo_project / "notebooks", root / "notebooks")
    shutil.copytree(REPO / "expectations", root / "expectations")
    path = root / "expectations" / f"{dataset}.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    edit(spec)
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return load_params(root / "params")


def test_a_misspelt_expectation_type_fails_loudly(tmp_path: Path, demo_project: Path) -> None:
    def misspell(spec: dict[str, Any]) -> None:
        spec["expectations"][3]["type"] = "expect_column_values_to_be_inset"

    params = _project_with_suite(tmp_path, demo_project, "calls", misspell)
    with pytest.raises(ConfigError) as info:
        gate.run_gate(params, "2026-10", months=1, cache=False)
    assert info.value.key == "error.gate.suite_unknown_type"
    assert info.value.facts["type"] == "expect_column_values_to_be_inset"
    assert info.value.facts["index"] == 3
    assert "calls.json" in info.value.message("zh")


def test_gx_would_have_dropped_it_silently() -> None:
    """Why the check above exists: GX builds the suite without the unknown type."""
    gx = gate._gx()
    spec = gate.load_suite_spec(REPO / "expectations" / "calls.json")
    items = [dict(i) for i in spec["expectations"]]
    items[0] = {**items[0], "type": "expect_column_values_to_be_inset"}
    assert len(gx.ExpectationSuite(name="x", expectations=items).expectations) == len(items) - 1


def test_a_suite_without_meaning_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    path.write_text(
        json.dumps(
            {
                "name": "calls",
                "expectations": [
                    {
                        "type": "expect_column_values_to_not_be_null",
                        "kwargs": {"column": "call_id"},
                        "severity": "critical",
                        "meta": {"reason": "missing_value"},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        gate.load_suite_spec(path)
    assert info.value.key == "error.gate.suite_invalid"


def test_a_check_that_errors_is_not_a_data_failure(tmp_path: Path, demo_project: Path) -> None:
    def erroring(spec: dict[str, Any]) -> None:
        # comparing datetimes with a number raises inside GX, at run time (FINDINGS.md)
        spec["expectations"].append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "created_at", "min_value": {"$PARAMETER": "min_rows"}},
                "severity": "warning",
                "meta": {
                    "reason": "bad_rule",
                    "zh": "规则",
                    "en": "rule",
                    "fix_zh": "改",
                    "fix_en": "fix",
                },
            }
        )

    params = _project_with_suite(tmp_path, demo_project, "callbacks", erroring)
    result, _ = gate.Gate(params, cache=False).validate(
        DATASETS["callbacks"],
        BAD / "title_rows.csv",
        "2026-10",
        gate.Gate(params, cache=False).export_parameters("2026-10", []),
    )
    (failure,) = result.failures
    assert (failure.reason, failure.severity, result.status) == ("check_error", "error", "error")
    assert failure.detail


# ---------------------------------------------------------------------------
# The GX view
# ---------------------------------------------------------------------------
def test_packed_keys_keep_duplicates_exactly() -> None:
    keys = pd.Series(
        ["C202610-00000001", "C202610-00000002", "C202610-00000001", "C202610-10000002"],
        dtype="str",
    )
    found = gate._packed_key(keys)
    assert found is not None
    codes, packing = found
    assert pd.Series(codes).duplicated(keep=False).tolist() == [True, False, True, False]
    # exactly invertible: the report's sample values are the keys themselves
    assert packing.unpack(codes.tolist()) == keys.tolist()
    wide = pd.Series(["工单-0001", "工单-0902", "工单-0001"], dtype="str")  # multi-byte text
    wide_codes, wide_packing = gate._packed_key(wide)
    assert wide_packing.unpack(wide_codes.tolist()) == wide.tolist()
    assert gate._packed_key(pd.Series(["A1", "A22"], dtype="str")) is None  # lengths differ


def test_large_tables_validate_on_packed_keys(
    checker: gate.Gate, demo_params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate, "LARGE_TABLE", 1)
    table = io.typed_frame(
        pd.DataFrame(
            {
                "task_id": ["R1", "R2", "R1"],
                "created_at": ["2026-10-02 09:00"] * 3,
                "department": ["服监中心"] * 3,
                "task_type": ["service"] * 3,
                "completed": ["1"] * 3,
                "reached": ["1"] * 3,
                "completed_at": [""] * 3,
            }
        ),
        "callbacks",
        demo_params,
    )
    view = gate.gx_view(table, "2026-10")
    assert view["task_id"].dtype == "uint32"  # two keys: a small key space
    assert view["_period"].tolist() == ["2026-10"] * 3


# ---------------------------------------------------------------------------
# A period: trend months, cache, outputs
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def period_result(demo_params: Params) -> gate.GateResult:
    return gate.run_gate(demo_params, "2026-10", months=3, cache=False)


def test_the_demo_month_passes_and_the_flawed_month_is_left_out(
    period_result: gate.GateResult,
) -> None:
    result = period_result
    assert result.status == "pass" and result.blocked() == set()
    assert set(result.trend) == {"2026-08", "2026-09"}
    flawed = result.trend["2026-09"]["callbacks"]
    assert flawed.status == "fail"
    assert _found(flawed) == {
        ("duplicate_key", "task_id", 10, (42, 43, 44, 45, 46, 47, 48, 49, 50, 51)),
        (
            "duplicate_row",
            "task_id, created_at, department, task_type, completed, reached, completed_at",
            10,
            (42, 43, 44, 45, 46, 47, 48, 49, 50, 51),
        ),
    }
    assert flawed.notes == [{"key": "note.totals_row", "facts": {"rows": "307"}}]
    assert result.left_out() == {"2026-09": ["callbacks"]}
    assert [r["dataset"] for r in result.rejected()] == ["callbacks"]
    assert result.rejected()[0]["sha256"] == flawed.sha256
    assert result.exit_code == ExitCode.OK


def test_results_are_cached_per_file(tmp_path: Path, project: Path) -> None:
    params = load_params(project / "params")
    first = gate.run_gate(params, "2026-10", months=2)
    assert not any(r.cached for r in first.datasets.values())
    second = gate.run_gate(params, "2026-10", months=2)
    assert all(r.cached for n, r in second.datasets.items() if DATASETS[n].kind == "export")
    flawed = first.trend["2026-09"]["callbacks"]
    assert second.trend["2026-09"]["callbacks"].to_dict() == flawed.to_dict()
    # a corrected file is validated afresh
    shutil.copy(BAD / "gb18030_chinese_headers.csv", project / "data" / "2026-10" / "callbacks.csv")
    third = gate.run_gate(params, "2026-10", months=2)
    assert not third.datasets["callbacks"].cached
    assert third.datasets["callbacks"].rows == 2


def test_gate_json_is_what_the_review_reads(
    period_result: gate.GateResult, demo_params: Params, tmp_path: Path
) -> None:
    json_path, html_path = gate.write_outputs(period_result, tmp_path, demo_params, "en")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["status"] == "pass" and data["period"] == "2026-10"
    assert data["datasets"]["calls"]["status"] == "pass"
    assert data["left_out"] == {"2026-09": ["callbacks"]}
    assert data["trend"]["2026-09"]["callbacks"]["failures"][0]["rows"][:2] == [42, 43]
    page = html_path.read_text(encoding="utf-8")
    assert "Problems in the trend months" in page and "duplicate_key" in page
    from qmsnb.publish import external_references

    assert not external_references(page)


@pytest.mark.slow
@pytest.mark.browser
def test_a_script_in_a_bad_value_is_shown_not_run(
    browser: Any, checker: gate.Gate, demo_params: Params, tmp_path: Path
) -> None:
    from tests.browser import open_offline

    bad = _validate(checker, "xss_value.csv", "callbacks")
    result = gate.GateResult(period="2026-10", datasets={"callbacks": bad})
    _, html = gate.write_outputs(result, tmp_path, demo_params, "zh")
    markup = html.read_text(encoding="utf-8")
    assert "<script>alert" not in markup and "onerror=" not in markup.replace("onerror=&#34;", "")
    visit = open_offline(browser, html, screenshot=tmp_path / "dq.png")
    assert visit.dialogs == [] and visit.page_errors == [] and visit.blocked_requests == []
    text = visit.page.inner_text("body")
    assert "<script>alert('xss')</script>" in text
    assert '<img src=x onerror="alert(1)">' in text
    assert visit.page.locator("img").count() == 0


@pytest.mark.parametrize(
    "name",
    [
        "out_of_range.csv",
        "duplicate_rows.csv",
        "subtotal_row_inside.csv",
        "previous_month_file.csv",
    ],
)
def test_the_large_table_path_finds_the_same(
    checker: gate.Gate, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables from LARGE_TABLE rows on: packed keys, one narrow frame per column group."""
    expected = next(c for c in CASES if c[0] == name)
    monkeypatch.setattr(gate, "LARGE_TABLE", 1)
    result = _validate(checker, name, expected[1])
    assert (result.status, _found(result)) == (expected[2], expected[3])


@pytest.mark.parametrize(
    ("name", "dataset", "status", "failures", "notes"), CASES, ids=[c[0] for c in CASES]
)
def test_distinct_values_judged_once_find_the_same_rows(
    checker: gate.Gate,
    name: str,
    dataset: str,
    status: str,
    failures: set[Any],
    notes: set[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Row-wise expectations on a compact frame (every column compacted, however
    many distinct values; numbers and yes/no columns held as categoricals): the
    same counts, row numbers in the original file and sample values."""
    plain = _validate(checker, name, dataset)
    monkeypatch.setattr(gate, "LARGE_TABLE", 1)
    monkeypatch.setattr(gate, "COMPACT_SHARE", 1.0)
    compacted: list[int] = []
    original = gate._compact

    def spy(view: pd.DataFrame, columns: Any) -> Any:
        found = original(view, columns)
        if found is not None:
            compacted.append(len(found.frame))
        return found

    monkeypatch.setattr(gate, "_compact", spy)
    result = _validate(checker, name, dataset)
    assert (result.status, _found(result)) == (status, failures)
    assert sorted((f.reason, f.column, f.rows, f.values) for f in result.failures) == sorted(
        (f.reason, f.column, f.rows, f.values) for f in plain.failures
    )
    if result.checks:
        assert compacted


@pytest.mark.parametrize(
    ("name", "dataset"),
    [
        ("bad_values.csv", "callbacks"),
        ("missing_values.csv", "callbacks"),
        ("unknown_department.csv", "callbacks"),
        ("duplicate_rows.csv", "callbacks"),
        ("not_allowed_values.csv", "calls"),
        ("out_of_range.csv", "calls"),
        ("stray_rows_from_other_month.csv", "calls"),
    ],
)
def test_a_parquet_export_read_in_gx_form_finds_what_its_csv_finds(
    checker: gate.Gate,
    name: str,
    dataset: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same records as parquet (text columns read as dictionaries, yes/no
    columns kept as categoricals of their values, numbers coded): the same
    failures, counts and sample values; rows one less (no header line)."""
    plain = _validate(checker, name, dataset)
    records = pd.read_csv(BAD / name, dtype=str, keep_default_na=False)
    # number columns stored as numbers where every value is one (Arrow then
    # dictionary-encodes those with few distinct values)
    known = io.header_map(DATASETS[dataset])
    for header in records.columns:
        name_ = known.get(io._header_key(header))
        if name_ and DATASETS[dataset].column(name_).dtype in ("int", "float"):
            numbers = pd.to_numeric(records[header].replace("", None), errors="coerce")
            if numbers.notna().sum() == (records[header] != "").sum():
                records[header] = numbers
    parquet = tmp_path / (Path(name).stem + ".parquet")
    records.to_parquet(parquet, index=False)
    monkeypatch.setattr(gate, "LARGE_TABLE", 1)
    monkeypatch.setattr(gate, "COMPACT_SHARE", 1.0)
    encoded: list[bool] = []

    def every_number(values: Any, sample: int = 0) -> bool:  # however few the rows
        import pyarrow as pa

        encoded.append(pa.types.is_integer(values.type) or pa.types.is_floating(values.type))
        return encoded[-1]

    monkeypatch.setattr(io, "_few_distinct", every_number)
    period, parameters = "2026-10", checker.export_parameters("2026-10", [])
    result, _ = checker.validate(DATASETS[dataset], parquet, period, parameters)
    if dataset == "calls":
        assert any(encoded)  # the number columns went through Arrow's dictionary
    assert plain.failures
    assert sorted(
        (f.reason, f.column, f.count, [r - 1 for r in f.rows], f.values) for f in plain.failures
    ) == sorted((f.reason, f.column, f.count, f.rows, f.values) for f in result.failures)


def test_a_compact_frame_maps_failing_values_to_every_row_holding_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate, "COMPACT_SHARE", 0.7)  # 4 combinations in 6 rows
    view = pd.DataFrame(
        {
            io.ROW: [2, 3, 4, 5, 6, 7],
            "queue": pd.Categorical(["vip", "bad", "vip", None, "bad", "night"]),
            "wait": [1.0, 2.0, 1.0, float("nan"), 2.0, 1.0],
        }
    )
    compact = gate._compact(view, ["queue", "wait"])
    assert compact is not None
    # one row per combination, with the first row holding it, and how many rows do
    first = dict(zip(compact.frame[io.ROW], compact.counts, strict=True))
    assert first == {2: 2, 3: 2, 5: 1, 7: 1}
    by_row = compact.frame.set_index(io.ROW)
    assert by_row.loc[3, "queue"] == "bad" and pd.isna(by_row.loc[5, "queue"])
    bad = compact.frame.loc[compact.frame["queue"] == "bad", gate.VALUE_COL].tolist()
    assert compact.failing(bad) == (2, [3, 6])
    # a column with a value per row is left alone
    unique = pd.DataFrame({io.ROW: range(2, 12), "id": [f"K{i}" for i in range(10)]})
    assert gate._compact(unique, ["id"]) is None


def test_the_first_row_of_each_value_is_found_however_late_it_appears() -> None:
    # values that first appear after the rows looked at together (2**18) and after
    # the first million-row chunk, missing values (-1) among them; the reference
    # is numpy's first index of each code over the whole column
    n = 2_600_000
    key = np.zeros(n, dtype=np.int8)
    key[1::7] = 2
    key[1_500_000] = 3
    key[2_400_000:] = 4  # fills the end of the month
    key[1_100_001] = -1
    key[2_599_999] = 1
    size = 6  # codes 0-4 and -1 (standing for 5)
    as_codes = np.where(key < 0, size - 1, key)
    present, expected = np.unique(as_codes, return_index=True)
    assert gate._first_rows(key, present, size).tolist() == expected.tolist()
    assert expected.tolist() == [0, 2_599_999, 1, 1_500_000, 2_400_000, 1_100_001]


# ---------------------------------------------------------------------------
# The gate in the batch (three runs in one project: the gate cache is shared)
# ---------------------------------------------------------------------------
def _statuses(result: Any) -> dict[tuple[str, str], str]:
    return {(r["notebook"], r["department"]): r["status"] for r in result.reports}


@pytest.mark.slow
def test_the_batch_builds_warns_and_blocks_exactly_the_dependent_reports(
    cached_project: Path,
) -> None:
    project = cached_project
    from qmsnb.batch import run_batch

    params = load_params(project / "params")
    month = project / "data" / "2026-10"

    # 1. clean month: built; the flawed September callbacks are a gap in the trends
    clean = run_batch(
        params, "2026-10", departments=["organisation"], notebooks=["quality_objectives"]
    )
    assert _statuses(clean) == {("quality_objectives", "organisation"): "ok"}
    assert clean.exit_code == ExitCode.OK
    assert [b["kind"] for b in clean.manifest["banners"]] == ["info"]
    meta = json.loads((clean.folder / "prepared" / "meta.json").read_text(encoding="utf-8"))
    assert meta["left_out"] == [{"period": "2026-09", "dataset": "callbacks"}]
    kpi = pd.read_parquet(clean.folder / "prepared" / "kpi.parquet")
    callbacks_kpi = kpi[kpi["kpi"] == "callback_completion"]
    months = set(callbacks_kpi["period"])
    assert "2026-09" not in months and "2026-08" in months

    # 2. warnings only (October has 100 calls, the months before 3,000): built, yellow banner
    calls = (month / "calls.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (month / "calls.csv").write_text("".join(calls[:101]), encoding="utf-8")
    warned = run_batch(
        params, "2026-10", departments=["organisation"], notebooks=["quality_objectives"]
    )
    assert _statuses(warned) == {("quality_objectives", "organisation"): "ok"}
    assert warned.exit_code == ExitCode.OK
    yellow = [b for b in warned.manifest["banners"] if b["kind"] == "yellow"]
    assert len(yellow) == 1 and "calls.csv" in yellow[0]["lines"][0]
    gate_json = json.loads((warned.folder / "gate.json").read_text(encoding="utf-8"))
    assert gate_json["datasets"]["calls"]["status"] == "warn"
    assert gate_json["datasets"]["calls"]["failures"][0]["reason"] == "row_count_drop"

    # 3. a critical failure in callbacks: the report that needs it is blocked (its
    #    previous good version carried forward), the other one is built
    shutil.copy(BAD / "unknown_department.csv", month / "callbacks.csv")
    before = hashlib.sha256((month / "callbacks.csv").read_bytes()).hexdigest()
    assert "callbacks" in params.notebooks["quality_objectives"].needs
    assert "callbacks" not in params.notebooks["internal_audit"].needs
    blocked = run_batch(
        params,
        "2026-10",
        departments=["organisation"],
        notebooks=["quality_objectives", "internal_audit"],
    )
    assert _statuses(blocked) == {
        ("quality_objectives", "organisation"): "blocked",
        ("internal_audit", "organisation"): "ok",
    }
    assert blocked.exit_code == ExitCode.GATE_FAILED
    report = next(r for r in blocked.reports if r["status"] == "blocked")
    assert report["blocked_by"] == ["callbacks"] and "回访任务" in report["reason"]
    assert report["previous"] and (blocked.folder / report["previous"]).is_file()
    red = blocked.manifest["banners"][0]
    assert red["kind"] == "red" and "callbacks.csv" in red["lines"][0]
    rejected = blocked.manifest["gate"]["rejected"]
    assert {"dataset": "callbacks", "period": "2026-10"}.items() <= rejected[-1].items()
    assert rejected[-1]["sha256"] == before
    assert hashlib.sha256((month / "callbacks.csv").read_bytes()).hexdigest() == before
    portal = (blocked.folder / "index.html").read_text(encoding="utf-8")
    assert 'href="data_quality.html"' in portal and "数据未通过质量检查" in portal
    page = (blocked.folder / "data_quality.html").read_text(encoding="utf-8")
    assert "销售部" in page and "unknown_department" in page


def test_validate_command_exit_codes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qmsnb.cli import main

    params_dir = str(project / "params")
    assert (
        main(
            [
                "--params",
                params_dir,
                "--lang",
                "en",
                "validate",
                "--period",
                "2026-08",
                "--months",
                "1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "--params",
                params_dir,
                "--lang",
                "en",
                "validate",
                "--period",
                "2026-09",
                "--months",
                "1",
            ]
        )
        == 3
    )
    out = capsys.readouterr()
    assert "Callback tasks: Failed · duplicate_key; duplicate_row" in out.out
    assert (project / "outputs" / ".validate" / "2026-09" / "data_quality.html").is_file()
    suite = project / "expectations" / "calls.json"
    suite.write_text(
        suite.read_text(encoding="utf-8").replace(
            "expect_column_values_to_be_unique", "expect_column_values_to_be_uniq"
        ),
        encoding="utf-8",
    )
    assert main(["--params", params_dir, "validate", "--period", "2026-09"]) == 2
    assert "expect_column_values_to_be_uniq" in capsys.readouterr().err


def test_interactive_prepare_leaves_out_what_the_last_batch_rejected(
    cached_project: Path, tmp_path: Path
) -> None:
    from qmsnb import prepare

    project = cached_project
    params = load_params(project / "params")
    assert prepare.prepare(params, "2026-10", tmp_path / "a")["left_out"] == []
    io.write_json(
        project / "outputs" / "2026-10" / "gate.json",
        {"left_out": {"2026-09": ["callbacks", "complaints"]}},
    )
    meta = prepare.prepare(params, "2026-10", tmp_path / "b")
    assert meta["left_out"] == [
        {"period": "2026-09", "dataset": "callbacks"},
        {"period": "2026-09", "dataset": "complaints"},
    ]
    assert "2026-09" not in meta["complaint_months"] and "2026-08" in meta["complaint_months"]
    kpi = pd.read_parquet(tmp_path / "b" / "kpi.parquet")
    assert "2026-09" not in set(kpi.loc[kpi["kpi"] == "callback_completion", "period"])


@pytest.mark.parametrize(
    ("dataset", "kind", "frame", "expected"),
    [
        (
            "complaints",
            "expect_column_pair_values_a_to_be_greater_than_b",
            {
                "created_at": pd.to_datetime(
                    ["2026-10-02", "2026-10-03", "2026-10-02", "2026-10-05", None]
                ),
                "due_at": pd.to_datetime(
                    ["2026-10-09", "2026-10-01", "2026-10-09", "2026-10-01", "2026-10-01"]
                ),
            },
            (2, [3, 5]),
        ),
        (
            "actions",
            "expect_column_values_to_not_be_null",  # with a row condition on source
            {
                "source": pd.array(["audit", "audit", "complaint", "audit", "complaint"]),
                "finding_id": pd.array(["F1", None, None, None, "F2"], dtype="str"),
            },
            (2, [3, 5]),
        ),
    ],
)
def test_pairs_and_row_conditions_on_a_compact_frame(
    dataset: str,
    kind: str,
    frame: dict[str, Any],
    expected: tuple[int, list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Column pairs (a missing value skips the row) and row conditions: the compact
    frame and the full frame give the same count and rows."""
    spec = json.loads((REPO / "expectations" / f"{dataset}.json").read_text(encoding="utf-8"))
    items = [
        i
        for i in spec["expectations"]
        if i["type"] == kind
        and (dataset != "actions" or i["kwargs"].get("row_condition"))
        and set(gate._columns_of(i)) <= set(frame)
    ]
    assert items
    view = pd.DataFrame({io.ROW: [2, 3, 4, 5, 6], **frame})
    table = io.LoadedTable(
        dataset=DATASETS[dataset],
        path=Path("x.csv"),
        sha256="",
        frame=view,
        present_columns=list(frame),
    )
    monkeypatch.setattr(gate, "COMPACT_SHARE", 1.0)
    runner = gate._Runner()
    found = []
    for large in (1, 10**9):  # compact frame, then the frame as it is
        monkeypatch.setattr(gate, "LARGE_TABLE", large)
        failures, _, _ = runner.validate(
            table,
            {**spec, "expectations": items},
            REPO / "expectations" / f"{dataset}.json",
            {},
            view,
        )
        found.append([(f.count, f.rows) for f in failures])
    assert found[0] == found[1] == [expected]


def test_english_row_counts_read_right_for_one_row() -> None:
    from qmsnb.i18n import t

    for key in ("gate.affected", "gate.rows_count"):
        assert "1 rows" not in t(key, "en", count="1")


_SECOND_RUN = """
import json, sys
from qmsnb import gate
from qmsnb.config import load_params
result = gate.run_gate(load_params(sys.argv[1]), "2026-10", months=2)
print(json.dumps({"gx": "great_expectations" in sys.modules,
                  "cached": {n: r.cached for n, r in result.datasets.items()},
                  "status": {n: r.status for n, r in result.datasets.items()}}))
"""


def _gate_in_a_new_process(project: Path) -> dict[str, Any]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _SECOND_RUN, str(project / "params")],
        capture_output=True,
        text=True,
        check=True,
        cwd=project,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_rerun_with_nothing_changed_never_imports_gx(project: Path) -> None:
    """Re-running the month while exports are corrected: what did not change is
    not validated again, registers in the records store included, and when
    nothing changed GX is not even imported."""
    from qmsnb import demo
    from qmsnb.records import open_store

    params = load_params(project / "params")
    demo.seed_store(params, params.registers_dir)  # registers kept in the records store
    first = gate.run_gate(params, "2026-10", months=2)
    assert not any(r.cached for r in first.datasets.values())
    again = _gate_in_a_new_process(project)
    assert again["gx"] is False
    assert all(again["cached"].values()), again["cached"]
    assert again["status"] == {n: r.status for n, r in first.datasets.items()}
    # a finding changed in the store: that register (only) is validated afresh
    with open_store(params) as store:
        finding = store.frame("findings").iloc[0]
        store.update(
            "findings",
            str(finding["finding_id"]),
            {"statement": str(finding["statement"]) + " (re-worded)"},
            who="auditor",
            reason="test",
        )
    changed = _gate_in_a_new_process(project)
    assert changed["gx"] is True
    assert changed["cached"]["findings"] is False
    assert changed["cached"]["calls"] is True and changed["cached"]["audit_programme"] is True


def test_a_store_table_with_other_values_has_another_fingerprint(project: Path) -> None:
    from qmsnb import demo
    from qmsnb.records import snapshot

    params = load_params(project / "params")
    demo.seed_store(params, params.registers_dir)
    tables, _ = snapshot(params)
    table = tables["risks"]
    before = gate._table_fingerprint(table)
    assert before and before == gate._table_fingerprint(table)
    table.frame = table.frame.copy()
    table.frame.loc[0, "description"] = str(table.frame.loc[0, "description"]) + "!"
    assert gate._table_fingerprint(table) != before


@pytest.mark.parametrize(
    ("name", "dataset"), [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_large_table_path_reports_the_very_same_failures(
    checker: gate.Gate, name: str, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read straight into the GX form, keys packed, uniqueness judged on the rows
    that repeat a value: every failure as the small-table path reports it, sample
    values included (packed keys unpacked, integers shown as integers)."""
    small = _validate(checker, name, dataset)
    monkeypatch.setattr(gate, "LARGE_TABLE", 1)
    large = _validate(checker, name, dataset)
    assert large.status == small.status
    assert [asdict(f) for f in large.failures] == [asdict(f) for f in small.failures]
