"""Parameters: typed, strict, cross-checked, and built on the reference targets."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pydantic
import pytest

from qmsnb.config import ORGANISATION, load_params
from qmsnb.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def params_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "params", tmp_path / "params")
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    return tmp_path / "params"


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_repo_params_load_into_typed_objects() -> None:
    params = load_params(REPO / "params")
    assert list(params.departments) == [
        "hotline_ops",
        "cs_division",
        "complaints",
        "service_supervision",
        "quality",
        "general_affairs",
        "admin",
        "outsourcing",
    ]
    assert params.departments["complaints"].name.zh == "投诉中心"
    assert params.kpis["answer_rate_vip_billing"].target == 80
    assert params.kpis["staff_turnover"].direction == "<="
    assert params.organisation.report_language == "zh"
    assert params.department_aliases["客服部、一中心"] == "hotline_ops"


def test_catalogue_holds_every_target_of_the_process_register() -> None:
    """Each row of kpi_targets.csv is a catalogue indicator with the same target."""
    params = load_params(REPO / "params")
    rows = list(
        csv.DictReader((REPO / "src/qmsnb/resources/kpi_targets.csv").open(encoding="utf-8"))
    )
    assert len(rows) == 31
    for row in rows:
        condition = row["condition"] or None
        matches = [
            k
            for k in params.catalogue.kpis
            if (row["kpi_name_zh"] in k.printed_names or row["kpi_name_zh"] == k.name.zh)
            and k.condition == condition
        ]
        assert len(matches) == 1, row
        kpi = matches[0]
        assert kpi.target == float(row["target"]), row
        assert kpi.direction == row["comparator"], row
        assert row["process_id"] in kpi.processes, row


def test_unknown_key_names_file_and_key(params_copy: Path) -> None:
    _edit(params_copy, "organisation.yaml", "report_language: zh", "report_languge: zh")
    with pytest.raises(ConfigError) as info:
        load_params(params_copy)
    en, zh = info.value.message("en"), info.value.message("zh")
    assert "organisation.yaml" in en and "report_languge" in en and "unknown key" in en
    assert "report_languge" in zh and "无法识别" in zh


def test_bad_value_names_the_key(params_copy: Path) -> None:
    _edit(params_copy, "kpis.yaml", "target: 80\n", "target: high\n")
    with pytest.raises(ConfigError) as info:
        load_params(params_copy)
    message = info.value.message("en")
    assert "kpis.yaml" in message
    assert "kpis[2] (id: answer_rate_vip_billing).target" in message
    assert "'high'" in message


def test_path_like_department_id_is_refused(params_copy: Path) -> None:
    _edit(params_copy, "organisation.yaml", "- id: outsourcing", "- id: ../x")
    with pytest.raises(ConfigError) as info:
        load_params(params_copy)
    assert info.value.key == "error.config.department_id"
    assert "../x" in info.value.message("en")


def test_organisation_is_a_reserved_id(params_copy: Path) -> None:
    _edit(params_copy, "organisation.yaml", "- id: outsourcing", f"- id: {ORGANISATION}")
    with pytest.raises(ConfigError) as info:
        load_params(params_copy)
    assert info.value.key == "error.config.department_id"


def test_unknown_department_in_batch_plan(params_copy: Path) -> None:
    _edit(
        params_copy,
        "batch.yaml",
        "scope: [department, organisation]",
        "scope: [department, organisation]\n    departments: [hotline_ops, sales]",
    )
    with pytest.raises(ConfigError) as info:
        load_params(params_copy)
    message = info.value.message("en")
    assert "batch.yaml" in message and "sales" in message and "quality_objectives" in message


def test_unknown_column_in_kpi_filter(params_copy: Path) -> None:
    _edit(
        params_copy,
        "kpis.yaml",
        "where: {queue: vip, billing_period: true}",
        "where: {queue: vip, billing_days: true}",
    )
    with pytest.raises(ConfigError) as info:
        load_params(params_copy)
    assert info.value.key == "error.config.unknown_column"
    assert "billing_days" in info.value.message("en")


def test_malformed_yaml_gives_the_line(params_copy: Path) -> None:
    path = params_copy / "batch.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[6] = "jobs: [2"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_params(params_copy)
    assert info.value.key == "error.config.yaml"
    assert info.value.facts["line"] in (7, 8, 9)


def test_missing_params_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_params(tmp_path / "nowhere")
    assert "nowhere" in info.value.message("zh")


def test_params_are_frozen() -> None:
    params = load_params(REPO / "params")
    with pytest.raises(pydantic.ValidationError):  # frozen model
        params.kpis["staff_turnover"].target = 5  # type: ignore[misc]


def test_fast_yaml_loader_reads_the_params_as_the_pure_python_one() -> None:
    import yaml

    from qmsnb import config

    for file in sorted((REPO / "params").glob("*.yaml")):
        text = file.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=config._SAFE_LOADER) == yaml.safe_load(text), file.name
