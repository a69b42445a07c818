"""The root-cause forms, driven headless: pick a hotspot, add a fishbone cause,
build a five-whys chain, continue it, and see refusals and conflicts in words."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from qmsnb.analysis import rca
from qmsnb.config import load_params
from qmsnb.context import PeriodContext
from qmsnb.records import open_store
from qmsnb.widgets import RootCauseWorkbench

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ctx(tmp_path: Path) -> PeriodContext:
    """October with a batch of 30 broadband outages on the 14th (and a thin background),
    in a project of its own (no register files to adopt)."""
    shutil.copytree(REPO / "params", tmp_path / "params")
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    rows = [
        (pd.Timestamp("2026-10-14 08:00") + pd.Timedelta(minutes=20 * i), "broadband_down")
        for i in range(30)
    ]
    rows += [
        (pd.Timestamp("2026-10-01 09:00") + pd.Timedelta(days=i), "over_charge") for i in range(25)
    ]
    tickets = pd.DataFrame(rows, columns=["created_at", "subcategory"])
    tickets["category"] = tickets["subcategory"].map(
        {"broadband_down": "network", "over_charge": "billing"}
    )
    tickets["ticket_id"] = [f"T{i}" for i in range(len(tickets))]
    tickets["department"] = "complaints"
    tickets["customer_id"] = [f"1390000{i:04d}" for i in range(len(tickets))]
    tickets["text"] = "x"
    tickets["channel"] = "hotline"
    tickets["escalated"] = False
    counts = (
        tickets.groupby(["department", "category", "subcategory"])
        .size()
        .rename("tickets")
        .reset_index()
    )
    counts.insert(0, "period", "2026-10")
    counts["escalated"] = 0
    return PeriodContext(
        params=load_params(tmp_path / "params"),
        period="2026-10",
        department="complaints",
        lang="zh",
        kpi=pd.DataFrame(),
        meta={"complaint_months": ["2026-10"]},
        tables={"complaint_counts": counts, "complaint_tickets": tickets},
    )


@pytest.fixture
def store(ctx: PeriodContext, tmp_path: Path):
    with open_store(ctx.params, url=f"sqlite:///{tmp_path / 'records.sqlite'}") as opened:
        yield opened


def test_hotspots_offered_to_the_forms(ctx: PeriodContext) -> None:
    options = rca.hotspot_options(ctx)
    kinds = [(o["kind"], o["subcategory"]) for o in options]
    assert kinds[0] == ("batch", "broadband_down")
    assert options[0]["tickets"] == 30 and options[0]["department"] == "complaints"
    assert ("vital_few", "broadband_down") in kinds and ("vital_few", "over_charge") in kinds


def test_fishbone_cause_from_a_hotspot_is_saved_with_history(ctx, store) -> None:
    bench = RootCauseWorkbench(ctx, store=store, who="赵敏")
    bench.hotspot.value = 0  # the batch
    form = bench.fishbone
    assert form.fields.category.value == "network"
    assert form.fields.subcategory.value == "broadband_down"
    assert form.fields.hotspot.value == "batch"
    assert form.evidence_count.value == 30
    assert "批量投诉" in form.fields.problem.value
    form.bone.value = "machine"
    form.cause.value = "金水花园OLT设备老化"
    form.save.click()
    assert "已保存 FB-001" in form.message.value
    saved = store.frame("fishbone_causes")
    assert saved[
        ["bone", "cause", "evidence_count", "complaint_subcategory", "department"]
    ].values.tolist() == [["machine", "金水花园OLT设备老化", 30, "broadband_down", "complaints"]]
    history = store.history("fishbone_causes")
    assert history[["record_id", "action", "who"]].values.tolist() == [["FB-001", "insert", "赵敏"]]
    assert form.cause.value == ""  # ready for the next cause
    # a refused save says why in the report language and saves nothing
    form.cause.value = "备件不足"
    form.fields.problem.value = ""
    form.save.click()
    assert "✖" in form.message.value and "问题" in form.message.value
    assert len(store.frame("fishbone_causes")) == 1
    assert form.cause.value == "备件不足"  # what was typed is kept


def test_five_whys_chain_is_checked_saved_and_continued(ctx, store) -> None:
    bench = RootCauseWorkbench(ctx, store=store, who="钱伟")
    bench.hotspot.value = 0
    form = bench.five_whys
    form.whys[0].value = "小区宽带中断36小时"
    form.whys[2].value = "设备超龄未更换"
    form.root_cause.value = "员工粗心"
    # checked while typing: the gap and the person-blaming root cause, in words
    assert "第 2 个“为什么”是空的" in form.check.value
    assert "归结到个人" in form.check.value
    form.save.click()  # a draft with a gap may be saved (the report names the gap)
    assert "已保存 5W-001" in form.message.value
    assert form.chain.value == "5W-001" and form.version == 1
    # continue it: fill the gap, a root cause the organisation can act on, the action
    form.whys[1].value = "OLT板卡故障,无备件"
    form.root_cause.value = "接入设备没有预防性维护计划"
    form.bone.value = "method"
    form.action.value = "制定接入设备巡检及更换计划"
    assert form.check.value == ""
    form.save.click()
    assert "已保存 5W-001" in form.message.value
    record = store.get("five_whys", "5W-001")
    assert record.version == 2
    assert (record["why_2"], record["root_cause"], record["bone"]) == (
        "OLT板卡故障,无备件",
        "接入设备没有预防性维护计划",
        "method",
    )
    history = store.history("five_whys", "5W-001")
    assert history["action"].tolist() == ["insert", "update"]
    assert set(history.iloc[1]["changed"]) == {"why_2", "root_cause", "bone", "action"}
    # a colleague changes the root cause meanwhile: our stale change is refused, named
    store.update("five_whys", "5W-001", {"root_cause": "缺少设备全生命周期管理"}, who="赵敏")
    form.root_cause.value = "另一个说法"
    form.save.click()
    assert "✖" in form.message.value and "赵敏" in form.message.value
    assert store.get("five_whys", "5W-001")["root_cause"] == "缺少设备全生命周期管理"
    # picking the chain again loads the current version
    form.chain.value = None
    form.chain.value = "5W-001"
    assert form.root_cause.value == "缺少设备全生命周期管理" and form.version == 3
