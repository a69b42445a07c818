"""Risks and opportunities: scoring methods against hand-computed bands, the save
rules (nothing saved on bad input), seeding from the process register, the
effectiveness check on synthetic series, movement from the history, the scoring
widget headless, and the report notebook through the batch runner."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmsnb import io, scoring
from qmsnb.analysis import risk as ra
from qmsnb.cli import main
from qmsnb.config import EffectivenessRules, Params, load_params
from qmsnb.exceptions import ConfigError, ExitCode, RecordsError
from qmsnb.prepare import complaint_counts
from qmsnb.records import RecordsStore, open_store
from qmsnb.risks import (
    pair_consequences,
    previous_frame,
    seed_frame,
    seed_store,
    split_numbered,
    state_as_of,
)
from qmsnb.stats import shift_test

RESOURCE = Path(__file__).resolve().parents[1] / "src" / "qmsnb" / "resources"


def _register() -> pd.DataFrame:
    return pd.read_csv(RESOURCE / "process_register.csv", dtype=str, keep_default_na=False)


# ---------------------------------------------------------------------------
# Scoring methods against hand-computed bands
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("likelihood", "severity", "score", "band"),
    [
        (1, 1, 1, "low"),
        (2, 2, 4, "low"),
        (1, 5, 5, "medium"),  # 5 is where medium starts
        (3, 3, 9, "medium"),
        (2, 5, 10, "high"),
        (4, 4, 16, "high"),
        (4, 5, 20, "extreme"),
        (5, 5, 25, "extreme"),
    ],
)
def test_matrix_scores_and_default_bands(likelihood, severity, score, band) -> None:
    values = {"likelihood": likelihood, "severity": severity}
    assert scoring.MATRIX.score(values) == score
    assert scoring.MATRIX.band(values) == band


@pytest.mark.parametrize(
    ("s", "o", "d", "rpn", "ap"),
    [
        (9, 2, 1, 18, "L"),  # S 9-10, O 2-3, D 1: low despite the severity
        (9, 4, 1, 36, "M"),  # S 9-10, O 4-5, D 1
        (10, 4, 2, 80, "H"),  # S 9-10, O 4-5, D 2-4
        (10, 1, 10, 100, "L"),  # S 9-10, O 1: low whatever the detection
        (8, 5, 6, 240, "M"),  # S 7-8, O 4-5, D 5-6
        (7, 4, 7, 196, "H"),  # S 7-8, O 4-5, D 7-10
        (7, 3, 3, 63, "L"),  # S 7-8, O 2-3, D 2-4
        (5, 8, 3, 120, "M"),  # S 4-6, O 8-10, D 2-4
        (5, 5, 7, 175, "M"),  # S 4-6, O 4-5, D 7-10
        (5, 5, 5, 125, "L"),  # S 4-6, O 4-5, D 5-6
        (3, 9, 8, 216, "M"),  # S 2-3, O 8-10, D 7-10: RPN 216, still only medium
        (3, 9, 2, 54, "L"),
        (1, 10, 10, 100, "L"),  # S 1: always low
    ],
)
def test_fmea_rpn_and_action_priority(s, o, d, rpn, ap) -> None:
    values = {"severity": s, "likelihood": o, "detection": d}
    assert scoring.FMEA.score(values) == rpn
    assert scoring.action_priority(s, o, d) == ap
    assert scoring.FMEA.band(values) == scoring.PRIORITY_BANDS[ap]


@pytest.mark.parametrize(
    ("s", "o", "d", "band"),
    [(7, 7, 2, "low"), (10, 10, 1, "medium"), (7, 7, 4, "medium"), (10, 10, 2, "high")],
)
def test_fmea_banded_by_rpn(s, o, d, band) -> None:
    # RPN 98 low, 100 medium (from 100), 196 medium, 200 high (from 200)
    values = {"severity": s, "likelihood": o, "detection": d}
    assert scoring.FMEA.band(values, scoring.FMEA.default_bands, "score") == band


@pytest.mark.parametrize(
    ("l_", "e", "c", "d", "band"),
    [
        (1, 1, 15, 15, "low"),
        (3, 2, 3, 18, "low"),
        (0.5, 3, 15, 22.5, "moderate"),
        (1, 2, 15, 30, "moderate"),
        (1, 10, 7, 70, "significant"),  # 70 is where "significant" starts
        (3, 6, 7, 126, "significant"),
        (6, 6, 7, 252, "high"),
        (10, 6, 15, 900, "extreme"),
    ],
)
def test_lec_scores_and_bands(l_, e, c, d, band) -> None:
    values = {"likelihood": l_, "exposure": e, "severity": c}
    assert scoring.LEC.score(values) == pytest.approx(d)
    assert scoring.LEC.band(values) == band


def test_scales_are_checked() -> None:
    assert scoring.MATRIX.problem({"likelihood": 6, "severity": 3}) == ("likelihood", 6.0)
    assert scoring.LEC.problem({"likelihood": 4, "exposure": 1, "severity": 1}) == (
        "likelihood",
        4.0,
    )
    assert scoring.FMEA.problem({"severity": 5, "likelihood": 5}) == ("detection", None)
    with pytest.raises(ValueError):
        scoring.MATRIX.score({"likelihood": 0, "severity": 3})
    assert scoring.LEC.factor("likelihood").scale_text() == "0.1, 0.2, 0.5, 1, 3, 6, 10"
    assert scoring.MATRIX.factor("severity").scale_text() == "1–5"


# ---------------------------------------------------------------------------
# params/risk.yaml
# ---------------------------------------------------------------------------
def _write_risk_yaml(params: Params, text: str) -> Path:
    path = params.folder / "risk.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_configured_bands_and_colours_are_used(params: Params) -> None:
    _write_risk_yaml(
        params,
        """
        method: lec
        methods:
          matrix:
            bands:
              - {id: low, min: 1, colour: "#00ff00"}
              - {id: high, min: 12, colour: "#ff0000", name: {zh: 不可接受, en: Unacceptable}}
        """,
    )
    loaded = load_params(params.folder)
    assert loaded.risk.method == "lec"
    bands = loaded.risk.bands("matrix")
    assert [b.id for b in bands] == ["low", "high"]
    values = {"likelihood": 3, "severity": 3}  # 9: high by default, low here
    assert scoring.MATRIX.band(values, bands) == "low"
    assert scoring.MATRIX.band({"likelihood": 3, "severity": 4}, bands) == "high"
    assert ra.band_label("en", bands[1]) == "Unacceptable"
    assert ra.band_label("zh", bands[0]) == "低"  # from the catalogue
    assert loaded.risk.bands("lec") == scoring.LEC.default_bands  # not configured


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("method: delphi\n", "method"),
        (
            "methods:\n  matrix:\n    bands:\n"
            "      - {id: low, min: 5, colour: '#00ff00'}\n"
            "      - {id: high, min: 2, colour: '#ff0000'}\n",
            "methods",
        ),
        (
            "methods:\n  fmea:\n    bands:\n      - {id: low, min: 1, colour: '#00ff00'}\n",
            "methods",
        ),
        (
            "methods:\n  matrix:\n    band_by: action_priority\n",
            "methods",
        ),
        ("effectiveness: {alpha: 0.7}\n", "effectiveness.alpha"),
        ("methods:\n  matrix:\n    bands:\n      - {id: low, min: 1, colour: red}\n", "colour"),
        ("unknown: 1\n", "unknown"),
    ],
)
def test_bad_risk_yaml_names_file_and_key(params: Params, text: str, key: str) -> None:
    path = _write_risk_yaml(params, text)
    with pytest.raises(ConfigError) as info:
        load_params(params.folder)
    message = info.value.message("en")
    assert str(path) in message and key in message


# ---------------------------------------------------------------------------
# Seeding from the process register
# ---------------------------------------------------------------------------
def test_split_numbered_cells() -> None:
    assert split_numbered("1、信息搜集不及时2、信息搜集不准确3、信息搜集不完整") == [
        (1, "信息搜集不及时"),
        (2, "信息搜集不准确"),
        (3, "信息搜集不完整"),
    ]
    assert split_numbered("1、设施的配置未能满足客户的需求;2、设备设施的维护保养不到位") == [
        (1, "设施的配置未能满足客户的需求"),
        (2, "设备设施的维护保养不到位"),
    ]
    # unnumbered: one item, even with 、 or , inside
    assert split_numbered("记录内容不完整、不准确") == [(None, "记录内容不完整、不准确")]
    assert split_numbered("无标识,无法追溯") == [(None, "无标识,无法追溯")]
    assert split_numbered("") == [] and split_numbered(None) == []
    # numbering skipping a number (C4's consequences: 1 and 3)
    assert [n for n, _ in split_numbered("1、公司整体经营业绩受损;3、导致不满")] == [1, 3]


def test_consequences_pair_by_position_or_all() -> None:
    modes = split_numbered("1、a2、b")
    assert pair_consequences(modes, split_numbered("1、x2、y")) == ["x", "y"]
    assert pair_consequences(modes, split_numbered("1、x")) == ["x", "x"]
    assert pair_consequences(split_numbered("m"), split_numbered("1、x;2、y")) == ["x;y"]


#: Failure modes per process, counted by hand from process_register.csv: a
#: numbered cell ("1、…2、…") is one risk per number; an unnumbered cell is one
#: risk (S7 "记录内容不完整、不准确", S10 "无标识,无法追溯" and S11
#: "资产人为受损、账实不符" stay whole); M5's cell is empty.
EXPECTED_MODES = {
    "C1": 3, "C2": 2, "C3": 1, "C4": 1, "C5": 2,
    "S1": 3, "S2": 2, "S3": 1, "S4": 1, "S5": 1, "S6": 2, "S7": 1, "S8": 1, "S9": 3,
    "S10": 1, "S11": 1, "S12": 1,
    "M1": 3, "M2": 1, "M3": 3, "M4": 3, "M5": 0,
}  # fmt: skip


def test_seeding_22_processes_gives_37_risks(params: Params) -> None:
    processes = _register()
    assert len(processes) == 22
    frame = seed_frame(processes, params, date(2026, 11, 2))
    assert sum(EXPECTED_MODES.values()) == 37
    assert len(frame) == 37
    assert frame.groupby("process_id").size().to_dict() == {
        p: n for p, n in EXPECTED_MODES.items() if n
    }
    c1 = frame[frame["process_id"] == "C1"]
    assert c1["description"].tolist() == ["信息搜集不及时", "信息搜集不准确", "信息搜集不完整"]
    assert c1["consequence"].tolist() == [
        "错过有效投标时间",
        "错误信息影响成本分析",
        "错误信息影响决策",
    ]
    assert c1["origin"].tolist() == ["C1/1", "C1/2", "C1/3"]
    # owners map to departments: 客服部、一中心 → hotline_ops, 客户服务事业部/服监中心 → cs_division
    by_process = frame.drop_duplicates("process_id").set_index("process_id")["department"]
    assert by_process["C3"] == "hotline_ops" and by_process["M3"] == "cs_division"
    assert by_process["S9"] == "admin" and by_process["M1"] == "outsourcing"
    assert set(frame["status"]) == {"open"} and set(frame["source"]) == {"failure_mode"}
    assert set(frame["review_date"]) == {"2026-12-02"}  # first_review_days = 30


def test_seeding_refuses_an_owner_that_is_no_department(params: Params) -> None:
    processes = _register()
    processes.loc[processes["process_id"] == "S5", "owner_department"] = "销售部"
    with pytest.raises(RecordsError) as info:
        seed_frame(processes, params, date(2026, 11, 2))
    assert "S5" in info.value.message("en") and "销售部" in info.value.message("zh")


@pytest.fixture
def store(params: Params) -> Iterator[RecordsStore]:
    """A store holding the demo's process register (risks refer to it) and no risk
    register anywhere (the demo's file is removed)."""
    risks_file = io.find_dataset_file(params.registers_dir, io.DATASETS["risks"])
    assert risks_file is not None
    risks_file.unlink()
    store = open_store(params)
    path = io.find_dataset_file(params.registers_dir, io.DATASETS["process_register"])
    store.import_table("process_register", path, "importer")
    yield store
    store.close()


def test_seeding_the_store_never_duplicates(store: RecordsStore) -> None:
    processes = store.frame("process_register")
    first = seed_store(store, processes, "quality office", today=date(2026, 11, 2))
    assert len(first.added) == 37 and first.skipped == []
    assert first.added[0] == "R-001" and first.added[-1] == "R-037"
    again = seed_store(store, processes, "quality office")
    assert again.added == [] and len(again.skipped) == 37
    # a seeded risk the office retired is not seeded again either
    store.retire("risks", "R-005", "quality office", "not relevant")
    assert seed_store(store, processes, "quality office").added == []
    assert len(store.frame("risks")) == 36
    history = store.history("risks")
    assert set(history["who"]) == {"quality office"}


def test_seeding_takes_over_a_register_kept_in_its_file(params: Params) -> None:
    """The demo's risks.xlsx already holds the 37 failure modes (and 10 more):
    seeding adopts the file and adds nothing; no risk of the file is hidden."""
    with open_store(params) as store:
        path = io.find_dataset_file(params.registers_dir, io.DATASETS["process_register"])
        store.import_table("process_register", path, "importer")
        result = seed_store(store, store.frame("process_register"), "quality office")
        assert result.added == [] and len(result.skipped) == 37
        assert len(store.frame("risks")) == 47
        first = store.history("risks").iloc[0]
        assert (first["action"], first["who"]) == ("import", "quality office")


def test_cli_seeds_and_says_so(project: Path, params: Params, capsys) -> None:
    risks_file = io.find_dataset_file(params.registers_dir, io.DATASETS["risks"])
    assert risks_file is not None
    risks_file.unlink()  # a project without a risk register yet
    args = ["--params", str(project / "params"), "--lang", "en", "risks", "seed", "--who", "qa"]
    assert main(args) == ExitCode.OK
    out = capsys.readouterr().out
    assert "Seeded 37 risks" in out and "22 processes" in out and "R-001" in out
    assert main(args) == ExitCode.OK
    assert "Seeded 0 risks" in capsys.readouterr().out
    with sqlite3.connect(project / "records" / "qmsnb.sqlite") as conn:
        count = conn.execute("select count(*) from records where register='risks'").fetchone()[0]
    assert count == 37


# ---------------------------------------------------------------------------
# Bad input: a clear message naming the field; nothing saved
# ---------------------------------------------------------------------------
def _risk(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "type": "risk",
        "process_id": "C3",
        "department": "热线运营部",
        "source": "weakness",
        "description": "账期高峰排班不足",
        "owner": "王磊",
        "method": "matrix",
        "inherent_likelihood": 4,
        "inherent_severity": 4,
        "review_date": "2026-12-01",
        "status": "open",
    }
    record.update(changes)
    return record


def _rows(store: RecordsStore) -> tuple[int, int]:
    path = Path(store.url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("select count(*) from records").fetchone()[0],
            conn.execute("select count(*) from history").fetchone()[0],
        )


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"inherent_likelihood": 6}, "inherent_likelihood", "1–5"),
        (
            {
                "method": "lec",
                "inherent_likelihood": 4,
                "inherent_exposure": 3,
                "inherent_severity": 7,
            },
            "inherent_likelihood",
            "0.1, 0.2, 0.5, 1, 3, 6, 10",
        ),
        ({"inherent_detection": 3}, "inherent_detection", "not a factor"),
        ({"method": None}, "method", "matrix, fmea, lec"),
        ({"method": "fmea"}, "inherent_detection", "needs"),
        ({"residual_likelihood": 3}, "residual_severity", "needs"),
        ({"residual_likelihood": 5, "residual_severity": 4}, "residual_reason", "20"),
        ({"process_id": "X9"}, "process_id", "X9"),
        ({"department": "销售部"}, "department", "销售部"),
        (
            {"indicator": "answer_rate_vip_billing", "complaint_category": "network"},
            "complaint_category",
            "not both",
        ),
        ({"source": "failure_mode", "process_id": None}, "process_id", "Process ID"),
        ({"treatment": "pursue"}, "treatment", "opportunity"),
        ({"indicator": "vip_rate"}, "indicator", "vip_rate"),
        ({"type": "threat"}, "type", "threat"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    store: RecordsStore, changes: dict[str, object], field: str, says: str
) -> None:
    before = _rows(store)
    with pytest.raises(RecordsError) as info:
        store.insert("risks", _risk(**changes), "赵敏")
    assert info.value.facts["field"] == field
    assert says in info.value.message("en")
    assert info.value.message("zh") != info.value.message("en")
    assert _rows(store) == before


def test_good_records_are_saved_with_ids_for_names(store: RecordsStore) -> None:
    rid = store.insert(
        "risks",
        _risk(
            residual_likelihood=5,
            residual_severity=4,
            residual_reason="新排班系统上线初期",
            indicator="VIP用户日接通率(账期)",  # a KPI's name → its id
        ),
        "赵敏",
    )
    record = store.get("risks", rid)
    assert record["indicator"] == "answer_rate_vip_billing"
    assert record["department"] == "hotline_ops"
    frame = store.frame("risks")
    assert frame.loc[frame["risk_id"] == rid, "inherent_score"].iloc[0] == 16
    assert frame.loc[frame["risk_id"] == rid, "residual_score"].iloc[0] == 20
    other = store.insert(
        "risks",
        _risk(
            complaint_category="网络质量",
            type="opportunity",
            treatment="pursue",
            source="technology",
        ),
        "赵敏",
    )
    assert store.get("risks", other)["complaint_category"] == "network"
    # an update off the scale is refused and leaves the record as it was
    with pytest.raises(RecordsError) as info:
        store.update("risks", rid, {"inherent_severity": 7}, "钱伟")
    assert info.value.facts["field"] == "inherent_severity"
    assert store.get("risks", rid).version == 1


# ---------------------------------------------------------------------------
# Did the actions work? Synthetic series
# ---------------------------------------------------------------------------
def _rates(rng: np.random.Generator, ps: list[float], n: int = 2500, tau: float = 0.006):
    den = rng.integers(int(n * 0.9), int(n * 1.1), len(ps))
    p = np.clip(np.array(ps) + rng.normal(0, tau, len(ps)), 0, 1)
    return rng.binomial(den, p).astype(float), den.astype(float)


def test_a_real_shift_is_detected_and_noise_is_not() -> None:
    rng = np.random.default_rng(20261101)
    num, den = _rates(rng, [0.80] * 6 + [0.86] * 5)
    shifted = shift_test("rate", (num[:6], den[:6]), (num[6:], den[6:]), "up")
    assert shifted.p_value < 0.001 and shifted.after - shifted.before == pytest.approx(6, abs=1.5)
    num, den = _rates(rng, [0.80] * 11)
    noise = shift_test("rate", (num[:6], den[:6]), (num[6:], den[6:]), "up")
    assert noise.p_value > 0.05
    # the same shift read the other way (a KPI where lower is better) is no improvement
    num, den = _rates(rng, [0.80] * 6 + [0.86] * 5)
    assert shift_test("rate", (num[:6], den[:6]), (num[6:], den[6:]), "down").p_value > 0.99


@pytest.mark.parametrize(
    ("model", "make_before", "make_after", "better"),
    [
        ("rate", lambda r: _rates(r, [0.80] * 6), lambda r: _rates(r, [0.80] * 5), "up"),
        (
            "count",
            lambda r: r.poisson(r.gamma(10, 4, 6)),
            lambda r: r.poisson(r.gamma(10, 4, 5)),
            "down",
        ),
        ("value", lambda r: r.normal(10, 1, 6), lambda r: r.normal(10, 1, 5), "up"),
    ],
)
def test_noise_rarely_passes_for_effective(model, make_before, make_after, better) -> None:
    """Over 1000 seeded noise series the false 'effective' rate stays near α = 0.05
    (0.07 is three standard errors above it)."""
    rng = np.random.default_rng(7)
    hits = [
        shift_test(model, make_before(rng), make_after(rng), better).p_value < 0.05
        for _ in range(1000)
    ]
    assert np.mean(hits) <= 0.07


@pytest.mark.parametrize(
    ("model", "make_before", "make_after", "better"),
    [
        ("rate", lambda r: _rates(r, [0.80] * 6), lambda r: _rates(r, [0.85] * 5), "up"),
        ("count", lambda r: r.poisson(40, 6), lambda r: r.poisson(20, 5), "down"),
        ("value", lambda r: r.normal(10, 1, 6), lambda r: r.normal(13, 1, 5), "up"),
    ],
)
def test_real_shifts_are_found(model, make_before, make_after, better) -> None:
    rng = np.random.default_rng(11)
    hits = [
        shift_test(model, make_before(rng), make_after(rng), better).p_value < 0.05
        for _ in range(200)
    ]
    assert np.mean(hits) >= 0.9


def _series(values: dict[str, tuple[float, float]]) -> ra.Series:
    frame = pd.DataFrame(
        [
            {"period": p, "numerator": n, "denominator": d, "value": 100 * n / d}
            for p, (n, d) in values.items()
        ]
    )
    return ra.Series(model="rate", better="up", scope="hotline_ops", frame=frame)


MONTHS = [f"2026-{m:02d}" for m in range(1, 11)]


@pytest.mark.parametrize(
    ("done_on", "period", "verdict", "reason", "before", "after"),
    [
        (date(2026, 4, 15), "2026-10", "effective", "shift", 3, 6),  # exactly 3 before: enough
        (date(2026, 3, 10), "2026-10", "not_enough_data", "few_before", 2, 7),
        (date(2026, 8, 5), "2026-10", "not_enough_data", "few_after", 6, 2),
        (date(2026, 7, 31), "2026-10", "effective", "shift", 6, 3),  # baseline capped at 6
    ],
)
def test_enough_data_and_windows(done_on, period, verdict, reason, before, after) -> None:
    rng = np.random.default_rng(3)
    level = {m: (0.80 if m < f"{done_on:%Y-%m}" else 0.88) for m in MONTHS}
    values = {}
    for month, p in level.items():
        num, den = _rates(rng, [p])
        values[month] = (num[0], den[0])
    effect = ra.check_effect("R-1", _series(values), done_on, period, EffectivenessRules())
    assert (effect.verdict, effect.reason) == (verdict, reason)
    assert (len(effect.before_months), len(effect.after_months)) == (before, after)
    action = f"{done_on:%Y-%m}"
    assert action not in effect.before_months and action not in effect.after_months


def test_worse_and_flat_are_not_effective() -> None:
    rng = np.random.default_rng(5)
    down = {
        m: (lambda r: (r[0][0], r[1][0]))(_rates(rng, [0.85 if m < "2026-06" else 0.78]))
        for m in MONTHS
    }
    effect = ra.check_effect(
        "R-1", _series(down), date(2026, 5, 20), "2026-10", EffectivenessRules()
    )
    assert (effect.verdict, effect.reason) == ("not_effective", "worse")
    flat = {m: (lambda r: (r[0][0], r[1][0]))(_rates(rng, [0.85])) for m in MONTHS}
    effect = ra.check_effect(
        "R-1", _series(flat), date(2026, 5, 20), "2026-10", EffectivenessRules()
    )
    assert (effect.verdict, effect.reason) == ("not_effective", "noise")


def test_indicator_series_base_and_scope(params: Params) -> None:
    kpi = pd.DataFrame(
        [
            {
                "period": "2026-01",
                "department": "complaints",
                "kpi": "complaint_satisfaction",
                "numerator": 40.0,
                "denominator": 50.0,
                "value": 80.0,
            },
            {
                "period": "2026-02",
                "department": "complaints",
                "kpi": "complaint_satisfaction",
                "numerator": 8.0,
                "denominator": 10.0,
                "value": 80.0,
            },  # base 10 < min_base 30
            {
                "period": "2026-01",
                "department": "organisation",
                "kpi": "staff_turnover",
                "numerator": 3.0,
                "denominator": 100.0,
                "value": 3.0,
            },
        ]
    )
    series = ra.indicator_series(kpi, params, "complaint_satisfaction", "complaints")
    assert series is not None and series.model == "rate" and series.better == "up"
    assert series.frame["period"].tolist() == ["2026-01"]
    turnover = ra.indicator_series(kpi, params, "staff_turnover", "hotline_ops")
    assert turnover is not None and turnover.scope == "organisation" and turnover.better == "down"


def test_complaint_series_counts_missing_months_as_zero() -> None:
    tickets = pd.DataFrame(
        {
            "ticket_id": ["T1", "T2", "T3", "T4", "T5"],
            "department": ["complaints", "complaints", "hotline_ops", "complaints", "complaints"],
            "category": ["network", "network", "network", "billing", None],
            "subcategory": ["no_signal", None, "slow_data", "over_charge", None],
            "escalated": pd.array([True, False, False, None, False], dtype="boolean"),
        }
    )
    counts = complaint_counts(tickets, "2026-09")
    assert counts[["department", "category", "subcategory", "tickets", "escalated"]].to_dict(
        "records"
    ) == [
        {
            "department": "complaints",
            "category": "billing",
            "subcategory": "over_charge",
            "tickets": 1,
            "escalated": 0,
        },
        {
            "department": "complaints",
            "category": "network",
            "subcategory": "",
            "tickets": 1,
            "escalated": 0,
        },
        {
            "department": "complaints",
            "category": "network",
            "subcategory": "no_signal",
            "tickets": 1,
            "escalated": 1,
        },
        {
            "department": "hotline_ops",
            "category": "network",
            "subcategory": "slow_data",
            "tickets": 1,
            "escalated": 0,
        },
    ]
    series = ra.complaint_series(counts, ["2026-08", "2026-09"], "network", "complaints")
    assert series.frame["count"].tolist() == [0.0, 2.0] and series.scope == "complaints"
    org = ra.complaint_series(counts, ["2026-09"], "network", "quality")  # none of its own
    assert org.scope == "organisation" and org.frame["count"].tolist() == [3.0]


# ---------------------------------------------------------------------------
# Heat map, top risks, movement, reviews
# ---------------------------------------------------------------------------
def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    base = {
        "type": "risk",
        "department": "hotline_ops",
        "status": "open",
        "method": "matrix",
        "description": "x",
        "review_date": pd.Timestamp("2027-01-01"),
    }
    frame = pd.DataFrame([{**base, **r} for r in rows])
    for name in scoring.FACTOR_FIELDS:
        for stage in ("inherent", "residual"):
            if f"{stage}_{name}" not in frame:
                frame[f"{stage}_{name}"] = np.nan
    return frame


def test_heat_cells_count_per_cell_with_the_worst_band(params: Params) -> None:
    frame = _frame(
        [
            {"risk_id": "R-2", "inherent_likelihood": 4, "inherent_severity": 4},
            {"risk_id": "R-1", "inherent_likelihood": 4, "inherent_severity": 4},
            {
                "risk_id": "R-3",
                "inherent_likelihood": 1,
                "inherent_severity": 5,
                "residual_likelihood": 1,
                "residual_severity": 2,
            },
            {
                "risk_id": "R-4",
                "method": "fmea",
                "inherent_likelihood": 4,
                "inherent_severity": 4,
                "inherent_detection": 4,
            },
            {"risk_id": "R-5"},  # unscored
        ]
    )
    assessed = ra.assess(frame, params)
    # FMEA S4 O4 D4 is action priority low (S 4-6, O 4-5, D 2-4)
    assert assessed["current_band"].tolist()[:4] == ["high", "high", "low", "low"]
    assert not assessed["scored"].iloc[4]
    grid = ra.heat_cells(assessed, params, scoring.MATRIX, "inherent")
    assert grid.rows == (5, 4, 3, 2, 1) and grid.columns == (1, 2, 3, 4, 5)
    cells = grid.cells.set_index(["row", "column"])
    assert cells.loc[(4.0, 4.0), "count"] == 2 and cells.loc[(4.0, 4.0), "risk_ids"] == [
        "R-1",
        "R-2",
    ]
    assert cells.loc[(5.0, 1.0), "band"] == "medium" and len(cells) == 2  # R-4 is FMEA
    now = ra.heat_cells(assessed, params, scoring.MATRIX, "current").cells.set_index(
        ["row", "column"]
    )
    assert (2.0, 1.0) in now.index and (5.0, 1.0) not in now.index  # R-3 moved down
    top = ra.top_risks(assessed, 2)
    assert top["risk_id"].tolist() == ["R-1", "R-2"]


def test_movement_since_the_baseline(params: Params) -> None:
    before = ra.assess(
        _frame(
            [
                {"risk_id": "R-1", "inherent_likelihood": 4, "inherent_severity": 4},
                {"risk_id": "R-2", "inherent_likelihood": 3, "inherent_severity": 3},
                {"risk_id": "R-3", "inherent_likelihood": 2, "inherent_severity": 2},
                {"risk_id": "R-5", "inherent_likelihood": 2, "inherent_severity": 2},
                {"risk_id": "R-6", "inherent_likelihood": 2, "inherent_severity": 2},
            ]
        ),
        params,
    )
    now = ra.assess(
        _frame(
            [
                {
                    "risk_id": "R-1",
                    "inherent_likelihood": 4,
                    "inherent_severity": 4,
                    "residual_likelihood": 2,
                    "residual_severity": 4,
                },  # 16 high → 8 medium
                {"risk_id": "R-2", "inherent_likelihood": 4, "inherent_severity": 3},  # 9 → 12
                {
                    "risk_id": "R-3",
                    "inherent_likelihood": 2,
                    "inherent_severity": 2,
                    "status": "closed",
                },
                {"risk_id": "R-4", "inherent_likelihood": 2, "inherent_severity": 2},
                {"risk_id": "R-5", "inherent_likelihood": 2, "inherent_severity": 2},
            ]
        ),
        params,
    )
    moves = ra.movement(now, before).set_index("risk_id")["move"].to_dict()
    assert moves == {
        "R-1": "down",
        "R-2": "up",
        "R-3": "closed",
        "R-4": "new",
        "R-5": "same",
        "R-6": "closed",
    }


def test_reviews_overdue_and_due_soon() -> None:
    frame = pd.DataFrame(
        {
            "risk_id": ["R-1", "R-2", "R-3", "R-4"],
            "review_date": pd.to_datetime(["2026-10-15", "2026-11-20", "2027-01-10", "2026-09-01"]),
            "status": ["open", "treating", "open", "closed"],
        }
    )
    states = ra.review_state(frame, date(2026, 11, 1), 30)
    assert states["review_state"].tolist() == ["overdue", "due_soon", "ok", "closed"]
    assert states["days_overdue"].tolist() == [17, 0, 0, 0]


def test_state_as_of_replays_the_history() -> None:
    at = pd.Timestamp("2026-09-15", tz="UTC")
    history = pd.DataFrame(
        [
            {"seq": 1, "record_id": "R-1", "when": at, "after": {"risk_id": "R-1", "v": 1}},
            {"seq": 2, "record_id": "R-2", "when": at, "after": {"risk_id": "R-2", "v": 1}},
            {
                "seq": 3,
                "record_id": "R-1",
                "when": at + pd.Timedelta(days=10),
                "after": {"risk_id": "R-1", "v": 2},
            },
            {"seq": 4, "record_id": "R-2", "when": at + pd.Timedelta(days=11), "after": None},
            {
                "seq": 5,
                "record_id": "R-1",
                "when": at + pd.Timedelta(days=30),
                "after": {"risk_id": "R-1", "v": 3},
            },
            {
                "seq": 6,
                "record_id": "R-3",
                "when": at + pd.Timedelta(days=30),
                "after": {"risk_id": "R-3", "v": 1},
            },
        ]
    )
    end_of_september = pd.Timestamp("2026-10-01", tz="UTC")
    state = state_as_of(history, end_of_september)
    assert state.to_dict("records") == [{"risk_id": "R-1", "v": 2}]  # R-2 retired, R-3 later


def test_previous_state_from_a_real_store(store: RecordsStore, params: Params) -> None:
    from qmsnb.periods import Period

    rid = store.insert("risks", _risk(), "赵敏")
    store.update(
        "risks", rid, {"residual_likelihood": 2, "residual_severity": 4}, "钱伟", reason="季度评审"
    )
    history = store.history("risks")
    this_month = Period(date.today().year, date.today().month)
    # a period starting after every change: the state at its start is the current one
    later = previous_frame(history, str(this_month.shift(1)), params)
    later = later.set_index("risk_id")
    assert later.loc[rid, "baseline"] == "period_end"
    assert later.loc[rid, "residual_score"] == 8
    # the store's history starts after the previous period ended: first recorded scores
    first = previous_frame(history, str(this_month), params)
    first = first.set_index("risk_id")
    assert first.loc[rid, "baseline"] == "first_recorded"
    assert pd.isna(first.loc[rid, "residual_score"]) and first.loc[rid, "inherent_score"] == 16


# ---------------------------------------------------------------------------
# The scoring widget, headless
# ---------------------------------------------------------------------------
def _ctx(params: Params, department: str = "hotline_ops"):
    from qmsnb.context import PeriodContext

    return PeriodContext(
        params=params, period="2026-10", department=department, lang="en", kpi=pd.DataFrame()
    )


def test_widget_scores_saves_with_history_and_refuses_bad_input(
    store: RecordsStore, params: Params
) -> None:
    from qmsnb.widgets import RiskScorer

    seed_store(store, store.frame("process_register"), "quality office")
    scorer = RiskScorer(_ctx(params), store=store, who="赵敏")
    ids = [value for _, value in scorer.risk.options]
    mine = store.frame("risks")
    assert ids == mine.loc[mine["department"] == "hotline_ops", "risk_id"].tolist()
    target = mine.loc[mine["origin"] == "C3/1", "risk_id"].iloc[0]
    scorer.risk.value = target
    assert "未能达标" in scorer.info.value
    scorer.sliders["likelihood"].value = 4.0
    scorer.sliders["severity"].value = 5.0
    assert (
        scorer.band == "extreme"
        and "Extreme" in scorer.result.value
        and "20" in scorer.result.value
    )
    scorer.sliders["severity"].value = 3.0  # the band follows the slider at once
    assert scorer.band == "high" and "High" in scorer.result.value and "= 12" in scorer.result.value
    scorer.note.value = "季度评审"
    scorer.save.click()
    record = store.get("risks", target)
    assert (record["method"], record["inherent_likelihood"], record["inherent_severity"]) == (
        "matrix",
        4.0,
        3.0,
    )
    assert record.version == 2 and "saved" in scorer.message.value
    last = store.history("risks", target).iloc[-1]
    assert (last["who"], last["reason"]) == ("赵敏", "季度评审")
    assert "季度评审" in scorer.history_view.value

    # residual above inherent without a reason: refused, nothing saved
    scorer.stage.value = "residual"
    scorer.sliders["likelihood"].value = 5.0
    assert "say why" in scorer.result.value
    scorer.save.click()
    assert "Why residual exceeds inherent" in scorer.message.value
    assert store.get("risks", target).version == 2
    scorer.reason.value = "新系统上线"
    scorer.save.click()
    record = store.get("risks", target)
    assert (record["residual_likelihood"], record["residual_reason"], record.version) == (
        5.0,
        "新系统上线",
        3,
    )

    # someone else re-scores meanwhile: the form's save is refused, theirs is kept
    store.update("risks", target, {"residual_likelihood": 2}, "钱伟")
    scorer.sliders["likelihood"].value = 4.0
    scorer.save.click()
    assert "钱伟" in scorer.message.value
    assert store.get("risks", target)["residual_likelihood"] == 2.0


def test_widget_switches_method_and_clears_the_old_residual(
    store: RecordsStore, params: Params
) -> None:
    from qmsnb.widgets import RiskScorer

    rid = store.insert("risks", _risk(residual_likelihood=3, residual_severity=4), "赵敏")
    _write_risk_yaml(params, "method: fmea\n")
    fmea = load_params(params.folder)
    scorer = RiskScorer(_ctx(fmea), store=store, who="钱伟")
    scorer.risk.value = rid
    assert "Scored with" in scorer.info.value
    scorer.stage.value = "residual"
    scorer.save.click()  # residual first with another method: refused
    assert "inherent risk with" in scorer.message.value
    assert store.get("risks", rid).version == 1
    scorer.stage.value = "inherent"
    for name, value in (("severity", 7.0), ("likelihood", 4.0), ("detection", 7.0)):
        scorer.sliders[name].value = value
    assert "Action priority (AP): H" in scorer.result.value and "= 196" in scorer.result.value
    scorer.save.click()
    record = store.get("risks", rid)
    assert record["method"] == "fmea" and record["inherent_detection"] == 7.0
    assert record["residual_likelihood"] is None and "cleared" in scorer.message.value


# ---------------------------------------------------------------------------
# The report through the batch runner (slow: real kernels, real browser)
# ---------------------------------------------------------------------------
def _row(html: str, risk_id: str, section: str) -> str:
    """The table row of ``risk_id`` after the heading ``section``."""
    import re

    start = html.index(section)
    match = re.search(rf"<tr><td[^>]*>{risk_id}</td>.*?</tr>", html[start:], re.S)
    assert match, f"{risk_id} not under {section}"
    return match.group(0)


@pytest.fixture(scope="module")
def reports(cached_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo (store seeded as `qmsnb demo` does) run for hotline_ops and the
    organisation in zh, and for the organisation in en."""
    import shutil

    from qmsnb import demo
    from qmsnb.batch import run_batch
    from tests.conftest import copy_cached

    base = tmp_path_factory.mktemp("risk-report")
    root = base / "project"
    copy_cached(cached_demo, root, ignore=("records",))
    params = load_params(root / "params")
    demo.seed_store(params, params.registers_dir)
    out: dict[str, Path] = {}
    for lang, departments in (("zh", ["hotline_ops", "organisation"]), ("en", ["organisation"])):
        result = run_batch(
            params, "2026-10", notebooks=["risk_opportunity"], departments=departments, lang=lang
        )
        assert {(r["department"], r["status"]) for r in result.reports} == {
            (d, "ok") for d in departments
        }, result.reports
        # the next run replaces outputs/2026-10: keep this language's copy
        out[lang] = Path(shutil.copytree(root / "outputs" / "2026-10", base / lang))
    return out


@pytest.mark.slow
def test_report_tells_the_demo_stories_in_zh_and_en(reports: dict[str, Path]) -> None:
    zh = (reports["zh"] / "organisation" / "risk_opportunity.html").read_text(encoding="utf-8")
    assert "风险热力图" in zh and "前 10 项风险" in zh and "机遇及其状态" in zh
    # 37 failure modes + 6 context risks; 4 opportunities
    assert "登记风险 43 项、机遇 4 项" in zh
    # effectiveness: the evening callbacks worked, the VIP scheduling did not,
    # the broadband warning is too recent, the closed opportunity has no indicator
    assert "有效" in _row(zh, "R-044", "措施有效性验证")
    assert "未见成效" in _row(zh, "R-006", "措施有效性验证")
    assert "数据尚不足" in _row(zh, "R-041", "措施有效性验证")
    assert "R-047" in zh[zh.index("未关联指标（指标或投诉类别）") :]
    # movement against the first recorded scores (the store was seeded after September)
    assert "与首次登记" in zh
    assert "上升" in _row(zh, "R-006", "较上期变化") and "下降" in _row(zh, "R-035", "较上期变化")
    assert "关闭" in _row(zh, "R-001", "较上期变化")
    dept = (reports["zh"] / "hotline_ops" / "risk_opportunity.html").read_text(encoding="utf-8")
    assert "R-006" in dept and "R-044" not in dept  # only Hotline Operations' risks
    en = (reports["en"] / "organisation" / "risk_opportunity.html").read_text(encoding="utf-8")
    assert "Did the actions work?" in en and "Heat map" in en
    assert "Effective" in _row(en, "R-044", "Did the actions work?")
    assert "Not enough data yet" in _row(en, "R-041", "Did the actions work?")


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_offline(reports: dict[str, Path], browser, tmp_path: Path) -> None:
    from tests.browser import open_offline

    for lang in ("zh", "en"):
        visit = open_offline(
            browser,
            reports[lang] / "organisation" / "risk_opportunity.html",
            screenshot=tmp_path / f"{lang}.png",
        )
        assert visit.console_errors == [] and visit.page_errors == []
        assert visit.blocked_requests == []
        assert visit.page.locator(".js-plotly-plot").count() == 2  # heat map, before/after
        assert visit.page.locator(".js-plotly-plot .heatmaplayer").count() >= 1
        assert visit.page.locator("table.qm-table").count() >= 6


@pytest.mark.parametrize(
    ("method", "factors", "rows", "columns"),
    [
        ("fmea", {"severity": 7, "likelihood": 4, "detection": 7}, 10, 10),
        ("lec", {"likelihood": 3, "exposure": 6, "severity": 7}, 6, 7),
    ],
)
def test_sections_render_for_every_method(
    store: RecordsStore, params: Params, method: str, factors: dict[str, int], rows, columns
) -> None:
    """Every section of the report builds for the active method from a hand-built
    context: the heat map has the method's grid, FMEA shows its action priority band."""
    from qmsnb.context import PeriodContext

    _write_risk_yaml(params, f"method: {method}\n")
    loaded = load_params(params.folder)
    inherent = {f"inherent_{k}": v for k, v in factors.items()}
    for dept in ("热线运营部", "投诉中心"):
        # the method's factors replace the matrix's L and S of the base record
        store.insert("risks", {**_risk(method=method, department=dept), **inherent}, "赵敏")
    store.insert("risks", _risk(), "赵敏")  # scored with the matrix: listed, not mapped
    ctx = PeriodContext(
        params=loaded,
        period="2026-10",
        department="organisation",
        lang="en",
        kpi=pd.DataFrame(
            columns=["period", "department", "kpi", "numerator", "denominator", "value"]
        ),
        registers={
            "risks": store.frame("risks"),
            "process_register": store.frame("process_register"),
        },
    )
    heat = ra.heat_map(ctx)
    (figure,) = heat.figures
    maps = [t for t in figure.data if t.type == "heatmap"]
    assert len(maps) == 2 and np.asarray(maps[0].z).shape == (rows, columns)
    assert "R-003 (matrix)" in heat.text  # the matrix risk, off this method's map
    band = "High" if method == "fmea" else "Significant"  # AP H; D = 126
    assert band in heat.text
    for section in (
        ra.summary,
        ra.top_section,
        ra.movement_section,
        ra.reviews_section,
        ra.opportunities_section,
        ra.effectiveness_section,
    ):
        assert section(ctx).title
