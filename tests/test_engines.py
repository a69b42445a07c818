"""The papermill engine: JSON-native parameters, timeouts and crashes isolated."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from qmsnb.engines import Job, PapermillEngine, check_json_native


def test_only_json_native_parameters_reach_a_notebook() -> None:
    check_json_native({"a": [1, 2.5, "x", None, True, {"b": []}]})
    for bad in [("tuple",), {1: "int key"}, {"s": {1, 2}}, Path("/x")]:
        with pytest.raises(TypeError):
            check_json_native({"p": bad})
    with pytest.raises(TypeError):
        Job("nb", "hotline_ops", "a.ipynb", "b.ipynb", {"period": ("2026", "10")}, 60)


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_hung_and_crashing_reports_fail_alone(tmp_path: Path) -> None:
    hung = _notebook(tmp_path / "hung.ipynb", "import time\ntime.sleep(120)")
    crash = _notebook(tmp_path / "crash.ipynb", "import os\nos._exit(3)")
    good = _notebook(tmp_path / "good.ipynb", "y = x + 1\nprint(y)")
    jobs = [
        Job("hung", "admin", str(hung), str(tmp_path / "out" / "hung.ipynb"), {"x": 2}, 5),
        Job("crash", "admin", str(crash), str(tmp_path / "out" / "crash.ipynb"), {"x": 2}, 60),
        Job("good", "admin", str(good), str(tmp_path / "out" / "good.ipynb"), {"x": 41}, 60),
    ]
    done = []
    results = PapermillEngine().run(jobs, 3, done.append)
    status = {r.job.notebook: r for r in results}
    assert status["hung"].status == "timeout"
    assert status["hung"].seconds < 60
    assert status["crash"].status in ("crashed", "failed")
    assert status["good"].status == "ok"
    out = nbformat.read(tmp_path / "out" / "good.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"].strip() == "42"  # injected x = 41 was used
    assert len(done) == 3
