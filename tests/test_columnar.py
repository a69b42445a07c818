"""The columnar prepare gives the loader's KPI values exactly, and caches CSV as parquet."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from qmsnb import columnar, io, prepare
from qmsnb.config import Params, load_params
from qmsnb.contract import DATASETS


@pytest.fixture
def params(project: Path) -> Params:
    """The demo project with a three-month trend window (the smallest allowed)."""
    kpis = project / "params" / "kpis.yaml"
    text = kpis.read_text(encoding="utf-8")
    assert "trend_months: 12" in text
    kpis.write_text(text.replace("trend_months: 12", "trend_months: 3"), encoding="utf-8")
    return load_params(project / "params")


def both(params: Params, period: str = "2026-10") -> pd.DataFrame:
    """KPI history from each reader; they must be identical to the last bit."""
    loader, _ = prepare.kpi_history(params, period, None, reader="pandas")
    fast, _ = prepare.kpi_history(params, period, None, reader="columnar")
    pd.testing.assert_frame_equal(fast, loader, check_exact=True)
    return fast


def test_demo_kpis_are_identical_and_read_columnar(params: Params, tmp_path: Path) -> None:
    values = both(params)
    assert len(values) > 40 and values["denominator"].sum() > 0
    # the fast path really read the three exports (UTF-8, GB18030, UTF-8 with BOM)
    folder = params.data_dir / "2026-10"
    for name in ("calls", "complaints", "callbacks"):
        path = io.find_dataset_file(folder, DATASETS[name])
        frame = columnar.read_kpi_table(path, DATASETS[name], params, tmp_path, strict=True)
        assert frame is not None, name
        loaded = io.load(folder, name, params)
        assert frame[columnar.WEIGHT].sum() == loaded.rows


def test_parquet_exports_give_identical_kpis(tmp_path: Path) -> None:
    from qmsnb import demo
    from tests.conftest import copy_project

    root = copy_project(tmp_path / "p")
    params = load_params(root / "params")
    spec = demo.DemoSpec(calls_per_month=2000, months=2, calls_format="parquet")
    demo.build(params, params.data_dir, spec)
    assert (params.data_dir / "2026-10" / "calls.parquet").is_file()
    values = both(params)
    hotline = values[(values["period"] == "2026-10") & (values["department"] == "hotline_ops")]
    assert hotline["denominator"].sum() > 0


MESSY_CALLS = (
    "呼叫记录导出,,,,,,,,,,\n"  # title rows above the header, as Excel pads them
    "导出时间,2026-11-02,,,,,,,,,\n"
    "呼叫流水号,呼入时间,部门,队列,是否账期,是否接通,等待时长(秒),通话时长(秒),首呼解决,IVR评分,备注\n"
    "C1,2026-10-01 08:00:00,热线运营部,普通,是,已接通,12,100,是,５,x\n"
    "C2,2026-10-01 09:00:00,一中心,normal,Y,Y,1.5,80,N,4,\n"
    "C3,2026-10-02 10:00:00,Hotline Operations,VIP,否,未接通,30,0,,,\n"
    ",,,,,,,,,,\n"  # an empty row the loader drops
    "C4,2026-10-09 23:30:00,客户服务事业部,夜间,否,TRUE,3,50,true,3,\n"
    "C5,2026-10-09 23:40:00, 客户服务事业部 ,night,N,1,4,60,1,5,\n"
)


def _messy_project(params: Params, text: str, encoding: str = "utf-8") -> Params:
    folder = params.data_dir / "2026-10"
    (folder / "calls.csv").unlink()
    (folder / "calls.csv").write_bytes(text.encode(encoding))
    return params


def test_spellings_aliases_title_rows_and_full_width_digits(params: Params) -> None:
    _messy_project(params, MESSY_CALLS)
    values = both(params)
    row = values[(values["period"] == "2026-10") & (values["kpi"] == "ivr_satisfaction")]
    by_dept = row.set_index("department")[["numerator", "denominator"]]
    # hotline: scores ５ (full width) and 4 rated, both satisfied; cs_division: 3 and 5
    assert by_dept.loc["hotline_ops"].tolist() == [2.0, 2.0]
    assert by_dept.loc["cs_division"].tolist() == [1.0, 2.0]


def test_gb18030_calls_are_transcoded(params: Params) -> None:
    _messy_project(params, MESSY_CALLS, encoding="gb18030")
    both(params)


def test_a_bad_value_gives_the_same_kpis_by_both_readers(params: Params) -> None:
    """Judging values is the gate's job; prepare reads on and both readers agree."""
    _messy_project(params, MESSY_CALLS.replace(",12,100,", ",twelve,100,"))
    both(params)
    table = io.load(params.data_dir / "2026-10", "calls", params)
    problem = next(p for p in table.problems if p.column == "wait_seconds")
    assert problem.reason == "not_a_number" and problem.rows == (4,)


def test_a_bad_kpi_value_in_an_earlier_month_counts_as_the_loader_counts_it(
    params: Params,
) -> None:
    folder = params.data_dir / "2026-09"
    text = (folder / "calls.csv").read_text(encoding="utf-8").splitlines()
    header, first = text[0], text[1].split(",")
    first[5] = "maybe"  # answered: neither yes nor no
    (folder / "calls.csv").write_text("\n".join([header, ",".join(first), *text[2:]]) + "\n")
    both(params)


def test_parquet_cache_is_keyed_by_content_and_leaves_the_input_alone(
    params: Params, tmp_path: Path
) -> None:
    source = params.data_dir / "2026-10" / "callbacks.csv"
    before = (source.read_bytes(), source.stat().st_mtime_ns)
    first = io.parquet_cache(source, "callbacks", tmp_path)
    assert first is not None and first.name == io.sha256_file(source) + ".parquet"
    stamp = first.stat().st_mtime_ns
    assert io.parquet_cache(source, "callbacks", tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # not converted again
    assert (source.read_bytes(), source.stat().st_mtime_ns) == before
    copy = pd.read_parquet(first)
    loaded = io.load(source.parent, "callbacks", params)
    assert len(copy) == loaded.rows
    assert list(copy.columns)[:2] == ["任务编号", "派发时间"]  # the file's own headers, BOM gone
    assert copy.dtypes.map(str).eq("str").all() or copy.dtypes.map(str).eq("object").all()
    # a corrected file is a new entry; the old one stays for the old content
    source.write_text(source.read_text(encoding="utf-8-sig") + "\n", encoding="utf-8-sig")
    second = io.parquet_cache(source, "callbacks", tmp_path)
    assert second != first and first.is_file()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no leftovers


def test_catalogue_columns_are_found_generically(params: Params) -> None:
    calls = DATASETS["calls"]
    assert columnar.kpi_columns(params.catalogue, calls) == [
        "department",
        "queue",
        "billing_period",
        "answered",
        "first_call_resolved",
        "ivr_score",
    ]
    complaints = DATASETS["complaints"]
    derived = {d.name: d for d in complaints.derived}
    assert columnar.derived_inputs(complaints, derived["closed_on_time"]) == {"closed_at", "due_at"}


@pytest.mark.parametrize("name", ["complaints", "callbacks", "calls"])
def test_whole_tables_are_typed_exactly_as_the_loader_types_them(
    params: Params, tmp_path: Path, name: str
) -> None:
    folder = params.data_dir / "2026-10"
    path = io.find_dataset_file(folder, DATASETS[name])
    frame = columnar.read_table(path, DATASETS[name], params, tmp_path)
    assert frame is not None
    pd.testing.assert_frame_equal(frame, io.load(folder, name, params).frame, check_exact=True)


def test_a_messy_whole_table_is_typed_exactly_or_left_to_the_loader(
    params: Params, tmp_path: Path
) -> None:
    _messy_project(params, MESSY_CALLS.replace("\n,,,,,,,,,,\n", "\n"))
    path = params.data_dir / "2026-10" / "calls.csv"
    frame = columnar.read_table(path, DATASETS["calls"], params, tmp_path)
    assert frame is not None
    loaded = io.load(path.parent, "calls", params).frame
    pd.testing.assert_frame_equal(frame, loaded, check_exact=True)
    assert frame[io.ROW].tolist() == [4, 5, 6, 7, 8]  # title rows and header counted
    # with the empty row the loader skips, the fast path declines
    _messy_project(params, MESSY_CALLS)
    assert columnar.read_table(path, DATASETS["calls"], params, tmp_path / "b") is None


@pytest.mark.parametrize("name", ["complaints", "callbacks"])
def test_many_distinct_free_text_is_typed_exactly_as_the_loader_types_it(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # a 12-million-call month has more distinct complaint texts than the limit:
    # those columns take the column-wise normalisation, not the lookup of values
    monkeypatch.setattr(columnar, "DISTINCT_LIMIT", 3)
    folder = params.data_dir / "2026-10"
    path = io.find_dataset_file(folder, DATASETS[name])
    frame = columnar.read_table(path, DATASETS[name], params, tmp_path)
    assert frame is not None
    pd.testing.assert_frame_equal(frame, io.load(folder, name, params).frame, check_exact=True)
