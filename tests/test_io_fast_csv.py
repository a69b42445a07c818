"""pyarrow's fast CSV reader gives exactly the general reader's table, or declines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qmsnb import io
from qmsnb.config import load_params
from qmsnb.contract import DATASETS


def _read(path: Path, name: str, params, monkeypatch, fast: bool) -> io.LoadedTable:
    monkeypatch.setattr(io, "FAST_CSV_BYTES", 0 if fast else 1 << 60)
    calls = []
    real = io._read_csv_fast

    def spy(*args, **kwargs):
        took = real(*args, **kwargs)
        calls.append(took)
        return took

    monkeypatch.setattr(io, "_read_csv_fast", spy)
    table = io.read_dataset(path, DATASETS[name], params)
    assert calls == ([True] if fast else [])  # the reader under test really read it
    return table


def _values(frame: pd.DataFrame) -> pd.DataFrame:
    plain = frame.reset_index(drop=True).astype(object)
    return plain.where(plain.notna(), None)


@pytest.mark.parametrize("name", ["calls", "complaints", "callbacks"])
def test_fast_reader_equals_the_general_reader(
    demo_project: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = load_params(demo_project / "params")
    path = io.find_dataset_file(params.data_dir / "2026-10", DATASETS[name])
    general = _read(path, name, params, monkeypatch, fast=False)
    fast = _read(path, name, params, monkeypatch, fast=True)
    assert len(general.frame) > 100
    # the same values row by row (dtypes may differ: categorical vs string, NaN vs NA)
    pd.testing.assert_frame_equal(_values(fast.frame), _values(general.frame))
    assert (fast.encoding, fast.header_row) == (general.encoding, general.header_row)
    assert fast.problems == general.problems
    assert fast.present_columns == general.present_columns


def test_fast_reader_declines_a_file_with_a_totals_row(
    demo_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = load_params(demo_project / "params")
    source = io.find_dataset_file(params.data_dir / "2026-10", DATASETS["callbacks"])
    copy = tmp_path / "callbacks.csv"
    copy.write_bytes(source.read_bytes() + "合计,,,,,,\n".encode())
    monkeypatch.setattr(io, "FAST_CSV_BYTES", 0)
    table = io.read_dataset(copy, DATASETS["callbacks"], params)
    assert any(key == "note.totals_row" for key, _ in table.notes)
