"""The command: plain messages in the user's language, exit codes, no tracebacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qmsnb.cli import main
from qmsnb.exceptions import ExitCode


def _run(root: Path, *args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qmsnb.cli", "--lang", lang, *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_data_folder(project: Path) -> None:
    shutil.move(project / "data", project / "elsewhere")
    proc = _run(project, "run", "--period", "2026-10")
    assert proc.returncode == ExitCode.USER_ERROR
    assert "Data folder" in proc.stderr and "qmsnb demo" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / "outputs" / "2026-10").exists()


def test_period_without_exports_lists_available_periods(project: Path, capsys) -> None:
    code = main(["--params", str(project / "params"), "--lang", "zh", "run", "--period", "2025-01"])
    err = capsys.readouterr().err
    assert code == ExitCode.USER_ERROR
    assert "2025-01" in err and "2026-10" in err and "没有导出文件" in err


def test_unknown_department_and_notebook(project: Path, capsys) -> None:
    code = main(
        [
            "--params",
            str(project / "params"),
            "--lang",
            "en",
            "run",
            "--period",
            "2026-10",
            "--department",
            "sales",
        ]
    )
    err = capsys.readouterr().err
    assert code == ExitCode.USER_ERROR and "sales" in err and "hotline_ops" in err
    code = main(
        [
            "--params",
            str(project / "params"),
            "--lang",
            "en",
            "run",
            "--period",
            "2026-10",
            "--notebook",
            "audit_pack",
        ]
    )
    err = capsys.readouterr().err
    assert code == ExitCode.USER_ERROR and "audit_pack" in err and "quality_objectives" in err


def test_bad_period_format(project: Path, capsys) -> None:
    code = main(["--params", str(project / "params"), "--lang", "en", "run", "--period", "10/2026"])
    assert code == ExitCode.USER_ERROR
    assert "10/2026" in capsys.readouterr().err


def test_a_run_refused_early_leaves_no_engine_process(project: Path, capsys) -> None:
    # the warm engine's template starts before the batch checks its arguments
    import psutil

    code = main(["--params", str(project / "params"), "--lang", "en", "run", "--period", "10/2026"])
    assert code == ExitCode.USER_ERROR

    def engine_process(p: psutil.Process) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE and "qmsnb.zygote" in " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            return False

    assert not [p for p in psutil.Process().children(recursive=True) if engine_process(p)]


def _engine_processes() -> list[object]:
    import psutil

    def engine_process(p: psutil.Process) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE and "qmsnb.zygote" in " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            return False

    return [p for p in psutil.Process().children(recursive=True) if engine_process(p)]


def test_the_template_started_before_the_params_are_read_is_closed_when_they_choose_papermill(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``qmsnb run`` starts the warm engine's template before reading the params;
    params that choose papermill get papermill, and the template is gone."""
    from qmsnb import batch
    from qmsnb.exceptions import UsageError

    plan = project / "params" / "batch.yaml"
    plan.write_text(
        plan.read_text(encoding="utf-8").replace("engine: warm", "engine: papermill", 1),
        encoding="utf-8",
    )
    seen: dict[str, object] = {}

    def stop_at_the_batch(params, period, **kw):  # the engine choice is what is tested here
        seen["runner"] = kw["runner"]
        seen["templates"] = len(_engine_processes())
        raise UsageError("error.period.format", value=period)

    monkeypatch.setattr(batch, "run_batch", stop_at_the_batch)
    code = main(["--params", str(project / "params"), "--lang", "en", "run", "--period", "2026-10"])
    assert code == ExitCode.USER_ERROR
    assert type(seen["runner"]).__name__ == "PapermillEngine"
    assert seen["templates"] == 0 and _engine_processes() == []


def test_unreadable_params_leave_no_engine_process(project: Path) -> None:
    (project / "params" / "organisation.yaml").write_text("name: {zh: x\n", encoding="utf-8")
    code = main(["--params", str(project / "params"), "--lang", "en", "run", "--period", "2026-10"])
    assert code == ExitCode.USER_ERROR
    assert _engine_processes() == []


def test_malformed_yaml_message_and_verbose_traceback(project: Path) -> None:
    (project / "params" / "organisation.yaml").write_text("name: {zh: x\n", encoding="utf-8")
    quiet = _run(project, "run", "--period", "2026-10")
    assert quiet.returncode == ExitCode.USER_ERROR
    assert "organisation.yaml" in quiet.stderr and "line" in quiet.stderr
    assert "Traceback" not in quiet.stderr
    loud = _run(project, "--verbose", "run", "--period", "2026-10")
    assert "Traceback" in loud.stderr


def test_demo_refuses_a_folder_with_real_data(tmp_path: Path, project: Path, capsys) -> None:
    real = tmp_path / "exports"
    real.mkdir()
    (real / "calls.csv").write_text("mine", encoding="utf-8")
    code = main(["--params", str(project / "params"), "--lang", "en", "demo", "--out", str(real)])
    assert code == ExitCode.USER_ERROR
    assert "will not overwrite" in capsys.readouterr().err
    assert (real / "calls.csv").read_text(encoding="utf-8") == "mine"


@pytest.mark.slow
def test_run_prints_the_portal_path_last(cached_project: Path) -> None:
    proc = _run(
        cached_project,
        "run",
        "--period",
        "2026-10",
        "--department",
        "outsourcing",
        "--notebook",
        "quality_objectives",
    )
    assert proc.returncode == ExitCode.OK, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.endswith("outputs/2026-10/index.html") and Path(last).is_file()


@pytest.mark.parametrize("after", [True, False])
def test_language_and_params_may_follow_the_command(project: Path, capsys, after: bool) -> None:
    common = ["--params", str(project / "params"), "--lang", "en"]
    command = ["run", "--period", "2025-01"]
    code = main([*command, *common] if after else [*common, *command])
    err = capsys.readouterr().err
    assert code == ExitCode.USER_ERROR
    assert "2025-01" in err and "没有导出文件" not in err


def test_a_template_that_cannot_start_is_reported_without_a_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from qmsnb import zygote

    def cannot_start(self):
        raise OSError("cannot fork: resource temporarily unavailable")

    monkeypatch.setattr(zygote.Template, "start", cannot_start)
    code = main(["--params", str(project / "params"), "--lang", "en", "run", "--period", "2026-10"])
    err = capsys.readouterr().err
    assert code == ExitCode.PROGRAM_ERROR
    assert "cannot fork" in err and "Traceback" not in err
    assert _engine_processes() == []
