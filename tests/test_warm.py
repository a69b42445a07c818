"""The warm engine: isolation between reports, crash and hang handling, papermill semantics.

Notebooks here are tiny and built by :func:`notebook` so each test shows what it
runs. Every test executes real kernels (forked from a real template).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest

from qmsnb.engines import Job, JobResult, PapermillEngine
from qmsnb.warm import WarmEngine

pytestmark = pytest.mark.slow

#: Observes the state a report could inherit, prints it as JSON; with role
#: "plant" it then changes every kind of state the engine must not carry over.
PROBE = """
import json, os, random, sys, warnings
import numpy as np
import pandas as pd
import plotly.io as pio
import qmsnb.i18n
observed = {
    "user_variable": "planted_variable" in globals(),
    "random": random.random(),
    "numpy": float(np.random.random()),
    "pandas_max_rows": pd.get_option("display.max_rows"),
    "pandas_options": {},
    "numpy_print": np.get_printoptions()["precision"],
    "plotly_template": pio.templates.default,
    "plotly_renderer": pio.renderers.default,
    "module_attribute": getattr(qmsnb.i18n, "PLANTED", None),
    "catalogue_entry": qmsnb.i18n.catalogue().get("__planted__"),
    "cwd": os.getcwd(),
    "sys_path0": sys.path[0],
    "argv0": os.path.basename(sys.argv[0]),
    "main": sys.modules["__main__"].__name__,
    "pid": os.getpid(),
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # deprecated options warn when read
    for key in sorted(pd._config.config._registered_options):
        observed["pandas_options"][key] = repr(pd.get_option(key))
print(json.dumps(observed))
"""
PLANT = """
if role == "plant":
    planted_variable = 1
    random.seed(123)
    np.random.seed(123)
    pd.set_option("display.max_rows", 7)
    np.set_printoptions(precision=2)
    pio.templates.default = "plotly_dark"
    qmsnb.i18n.PLANTED = "leak"
    qmsnb.i18n.catalogue()["__planted__"] = {"en": "leak"}
"""


def notebook(folder: Path, name: str, *cells: str, parameters: str = 'role = "probe"') -> str:
    """Write a notebook with a ``parameters`` cell and the given code cells."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return str(path)


def job(source: str, out: Path, name: str, timeout: int = 60, **parameters: object) -> Job:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    return Job(
        notebook=Path(source).stem,
        department=name,
        source=source,
        output=str(folder / "report.ipynb"),
        parameters=dict(parameters),
        timeout=timeout,
        cwd=str(folder),
    )


def stdout_json(result: JobResult) -> dict:
    """The JSON the probe cell printed, read back from the executed notebook."""
    nb = nbformat.read(result.job.output, as_version=4)
    cell = next(c for c in nb.cells if "observed = {" in c.source)
    text = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    return json.loads(text.strip().splitlines()[-1])


def run(engine: object, jobs: list[Job], workers: int = 1) -> list[JobResult]:
    return engine.run(jobs, workers, lambda result: None)  # type: ignore[attr-defined]


def test_no_state_reaches_the_next_report_of_the_same_worker(tmp_path: Path) -> None:
    source = notebook(tmp_path, "probe", PROBE, PLANT)
    jobs = [job(source, tmp_path, "first", role="plant"), job(source, tmp_path, "second")]
    first, second = run(WarmEngine(), jobs, workers=1)
    assert [first.status, second.status] == ["ok", "ok"], (first.error, second.error)
    # same worker, same template, but a different (forked) kernel
    assert first.extra["worker_pid"] == second.extra["worker_pid"]
    assert first.extra["template_pid"] == second.extra["template_pid"]
    assert first.extra["kernel_forked"] and second.extra["kernel_forked"]
    seen = stdout_json(second)
    assert seen["pid"] != stdout_json(first)["pid"]
    assert seen["user_variable"] is False
    assert seen["pandas_max_rows"] == 60
    assert seen["numpy_print"] == 8
    assert seen["plotly_template"] == "plotly"
    assert seen["module_attribute"] is None
    assert seen["catalogue_entry"] is None
    # the seeds planted first do not drive the second report's draws
    assert seen["random"] != random.Random(123).random()
    assert seen["numpy"] != np.random.RandomState(123).random_sample()


def test_the_probe_does_see_state_left_in_a_reused_kernel(tmp_path: Path) -> None:
    """Control: the same two reports run naively in one kernel do leak."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    printed: list[str] = []

    def hook(msg: dict) -> None:
        if msg["header"]["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            printed.append(msg["content"]["text"])

    try:
        for role in ("plant", "probe"):
            reply = kc.execute_interactive(
                f'role = "{role}"\n' + PROBE + PLANT, output_hook=hook, timeout=60
            )
            assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    seen = json.loads(printed[-1].strip().splitlines()[-1])
    assert seen["user_variable"] is True
    assert seen["pandas_max_rows"] == 7
    assert seen["plotly_template"] == "plotly_dark"
    assert seen["module_attribute"] == "leak"
    assert seen["catalogue_entry"] == {"en": "leak"}
    assert seen["random"] == random.Random(123).random()
    assert seen["numpy"] == np.random.RandomState(123).random_sample()


def test_a_forked_kernel_starts_like_a_spawned_one(tmp_path: Path) -> None:
    """Pre-importing in the template changes no setting a report can observe."""
    source = notebook(tmp_path, "probe", PROBE)
    (warm,) = run(WarmEngine(), [job(source, tmp_path / "warm", "probe")])
    (plain,) = run(PapermillEngine(), [job(source, tmp_path / "plain", "probe")])
    assert warm.ok and plain.ok, (warm.error, plain.error)
    a, b = stdout_json(warm), stdout_json(plain)
    for key in ("pid", "random", "numpy", "cwd", "sys_path0"):
        a.pop(key), b.pop(key)
    assert a == b
    assert stdout_json(warm)["sys_path0"] == str(tmp_path / "warm" / "probe")
    assert stdout_json(warm)["cwd"] == str(tmp_path / "warm" / "probe")


def test_unseeded_draws_differ_between_reports(tmp_path: Path) -> None:
    source = notebook(tmp_path, "probe", PROBE)
    jobs = [job(source, tmp_path, f"r{i}") for i in range(2)]
    first, second = run(WarmEngine(), jobs)
    assert stdout_json(first)["numpy"] != stdout_json(second)["numpy"]
    assert stdout_json(first)["random"] != stdout_json(second)["random"]


def test_a_crashed_kernel_fails_only_its_report(tmp_path: Path) -> None:
    ok = notebook(tmp_path, "ok", "x = 6 * 7\nprint(x)")
    crash = notebook(
        tmp_path, "crash", "print('before')", "import os\nos._exit(3)", "print('never')"
    )
    results = run(
        WarmEngine(), [job(ok, tmp_path, "a"), job(crash, tmp_path, "b"), job(ok, tmp_path, "c")]
    )
    assert [r.status for r in results] == ["ok", "crashed", "ok"]
    assert "DeadKernelError" in (results[1].error or "")
    assert not psutil.pid_exists(results[1].extra["kernel_pid"])
    # the executed notebook is kept, as far as it got
    kept = nbformat.read(results[1].job.output, as_version=4)
    assert kept.cells[1].outputs[0]["text"] == "before\n"
    assert results[2].extra["worker_pid"] == results[0].extra["worker_pid"]


def test_a_hung_cell_times_out_and_the_next_report_runs(tmp_path: Path) -> None:
    hang = notebook(tmp_path, "hang", "import time\ntime.sleep(600)")
    ok = notebook(tmp_path, "ok", "print(6 * 7)")
    results = run(WarmEngine(), [job(hang, tmp_path, "a", timeout=3), job(ok, tmp_path, "b")])
    assert [r.status for r in results] == ["timeout", "ok"]
    assert results[0].seconds < 30
    assert not psutil.pid_exists(results[0].extra["kernel_pid"])


def test_a_stuck_worker_is_killed_with_its_kernel(tmp_path: Path) -> None:
    """The hard limit (notebook timeout + grace) stops worker and kernel alike."""
    hang = notebook(tmp_path, "hang", "import time\ntime.sleep(600)")
    ok = notebook(tmp_path, "ok", "print(6 * 7)")
    engine = WarmEngine()
    engine.grace = -8  # hard limit 2 s, before nbclient's own 10 s cell timeout
    seen: list[int] = []
    original = engine._new_worker

    def spy(index: int):  # remember the workers' processes
        worker = original(index)
        seen.append(worker.proc.pid)
        return worker

    engine._new_worker = spy  # type: ignore[method-assign]
    results = run(
        engine, [job(hang, tmp_path, "a", timeout=10), job(ok, tmp_path, "b", timeout=30)]
    )
    assert [r.status for r in results] == ["timeout", "ok"]
    assert "worker stopped" in (results[0].error or "") or "stopped" in (results[0].error or "")
    assert len(seen) == 2 and not psutil.pid_exists(seen[0])
    assert results[1].extra["worker_pid"] == seen[1]


def test_workers_are_recycled_after_n_reports(tmp_path: Path) -> None:
    ok = notebook(tmp_path, "ok", "print(6 * 7)")
    engine = WarmEngine()
    engine.recycle_reports = 2
    results = run(engine, [job(ok, tmp_path, f"r{i}") for i in range(3)])
    assert all(r.ok for r in results)
    workers = [r.extra["worker_pid"] for r in results]
    assert workers[0] == workers[1] != workers[2]


def test_papermill_semantics_are_kept(tmp_path: Path) -> None:
    """Injected parameters and papermill's red error marker, as with plain papermill."""
    failing = notebook(
        tmp_path,
        "failing",
        "print(period, department)",
        "raise ValueError('bad ' + period)",
        parameters='period = "2000-01"\ndepartment = "x"',
    )
    (warm,) = run(
        WarmEngine(), [job(failing, tmp_path / "warm", "w", period="2026-10", department="qa")]
    )
    (plain,) = run(
        PapermillEngine(),
        [job(failing, tmp_path / "plain", "p", period="2026-10", department="qa")],
    )
    for result in (warm, plain):
        assert result.status == "failed"
        assert result.error == "ValueError: bad 2026-10"
    a, b = (nbformat.read(r.job.output, as_version=4) for r in (warm, plain))
    assert [c.source for c in a.cells] == [c.source for c in b.cells]
    assert [c.metadata.get("tags") for c in a.cells] == [c.metadata.get("tags") for c in b.cells]
    injected = [c for c in a.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'period = "2026-10"' in injected[0].source
    assert "papermill-error-cell" in a.cells[0].source  # the red marker
    outputs = [[o.get("text") or o.get("evalue") for o in c.get("outputs", [])] for c in a.cells]
    assert outputs == [
        [o.get("text") or o.get("evalue") for o in c.get("outputs", [])] for c in b.cells
    ]


def test_only_json_native_parameters_reach_a_notebook() -> None:
    with pytest.raises(TypeError):
        Job(
            notebook="n",
            department="d",
            source="s",
            output="o",
            parameters={"x": ("tuple", "runs code")},
            timeout=1,
        )


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MINUTE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")


def _normalised(text: str) -> str:
    """A report without what differs between any two runs (figure ids, clock times)."""
    return _MINUTE.sub("<time>", _UUID.sub("<uuid>", text))


def _cells(ipynb: Path) -> list[tuple[str, int | None, str]]:
    nb = nbformat.read(ipynb, as_version=4)
    return [
        (c.source, c.get("execution_count"), _normalised(json.dumps(c.get("outputs", []))))
        for c in nb.cells
    ]


def test_real_reports_are_identical_with_either_engine(cached_project: Path) -> None:
    """Every report of the plan, one department and the organisation: same content."""
    project = cached_project
    from qmsnb.batch import run_batch
    from qmsnb.config import load_params

    params = load_params(project / "params")
    folders = {}
    for engine in ("papermill", "warm"):
        result = run_batch(
            params, "2026-10", departments=["hotline_ops", "organisation"], engine=engine, lang="en"
        )
        assert result.manifest["engine"] == engine
        assert len(result.reports) >= 2
        assert all(r["status"] == "ok" for r in result.reports), result.reports
        # a copy: the next run archives this one
        folders[engine] = shutil.copytree(result.folder, project / f"copy-{engine}")
    pages = sorted(p.relative_to(folders["warm"]) for p in folders["warm"].glob("*/*.html"))
    # every report of the plan for the two scopes (the portal differs by run id and timings)
    assert len(pages) == len(result.reports)
    for page in pages:
        warm = _normalised((folders["warm"] / page).read_text(encoding="utf-8"))
        plain = _normalised((folders["papermill"] / page).read_text(encoding="utf-8"))
        assert warm == plain, page
    for ipynb in sorted(folders["warm"].rglob("*.ipynb")):
        twin = folders["papermill"] / ipynb.relative_to(folders["warm"])
        assert _cells(ipynb) == _cells(twin)


def test_a_kernel_above_the_memory_limit_fails_only_its_report(tmp_path: Path) -> None:
    hog = notebook(
        tmp_path,
        "hog",
        "import numpy as np\nx = np.ones(400 * 2**20 // 8)\nimport time\ntime.sleep(30)",
    )
    ok = notebook(tmp_path, "ok", "print(6 * 7)")
    engine = WarmEngine()
    engine.kernel_limit_mib = 300
    results = run(engine, [job(hog, tmp_path, "a"), job(ok, tmp_path, "b")])
    assert [r.status for r in results] == ["crashed", "ok"]
    assert "above the 300 MiB" in (results[0].error or "")
    assert results[0].seconds < 25


def test_a_forked_kernel_is_used_right_after_ready_and_stopped_at_once(tmp_path: Path) -> None:
    """The client that does not idle after ``kernel_info`` (and retries its
    connection every 5 ms) loses nothing: the first request right after ready
    gets its whole output; a stopped kernel is seen gone and reaped."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import zmq

    from qmsnb import zygote

    async def run(client: zygote.ZygoteClient) -> list[str]:
        km = zygote.kernel_manager(client, "python3", str(tmp_path))
        await km.start_kernel()
        kc = km.client()
        assert kc.context.getsockopt(zmq.RECONNECT_IVL) == zygote.RECONNECT_MS
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        texts: list[str] = []
        msg_id = kc.execute("print('first'); print('second')")
        while True:
            msg = await kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                texts.append(msg["content"]["text"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        kc.stop_channels()
        pid = km.provisioner.pid
        await km.shutdown_kernel(now=True)
        assert not await km.is_alive()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        return texts

    with zygote.running_template() as template:
        client = zygote.ZygoteClient(template.socket)
        try:
            # in a thread of its own: an earlier test may leave this thread's loop running
            with ThreadPoolExecutor(1) as pool:
                texts = [pool.submit(asyncio.run, run(client)).result() for _ in range(3)]
        finally:
            client.close()
    assert all("".join(t) == "first\nsecond\n" for t in texts), texts


def _printed(result: JobResult) -> str:
    """Everything the executed notebook's cells printed."""
    nb = nbformat.read(result.job.output, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def _prepared_folder(folder: Path, value: float) -> Path:
    """A minimal prepared folder: meta.json and a KPI table holding ``value``."""
    import pandas as pd

    from qmsnb import io

    folder.mkdir(parents=True, exist_ok=True)
    io.write_parquet(folder / "kpi.parquet", pd.DataFrame({"value": [value]}))
    io.write_json(folder / "meta.json", {"registers": [], "tables": []})
    return folder


def test_prepared_tables_are_read_once_and_again_when_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qmsnb import io, prepare

    folder = _prepared_folder(tmp_path / "_prepared", 1.0)
    monkeypatch.setattr(prepare, "_REMEMBERED", {})
    prepare.remember(folder)
    reads: list[Path] = []
    real_read = io.read_parquet
    monkeypatch.setattr(io, "read_parquet", lambda p: reads.append(p) or real_read(p))
    kpi, _, _ = prepare.read_prepared(folder)
    kpi.loc[0, "value"] = 99.0  # a report's change stays in its own frame
    again = prepare.read_prepared(tmp_path / "x" / ".." / "_prepared")[0]
    assert again["value"].tolist() == [1.0]
    assert reads == []
    _prepared_folder(folder, 2.0)  # the batch prepared again: the file changed
    assert prepare.read_prepared(folder)[0]["value"].tolist() == [2.0]
    assert reads == [folder / "kpi.parquet"]


def test_kernels_find_the_batch_prepared_tables_read_by_the_template(tmp_path: Path) -> None:
    folder = _prepared_folder(tmp_path / "_prepared", 3.0)
    source = notebook(
        tmp_path,
        "uses_prepared",
        "from pathlib import Path\n"
        "from qmsnb import io, prepare\n"
        "io.read_parquet = None  # reading a file now would fail\n"
        "kpi, _, _ = prepare.read_prepared(Path(prepared_dir))\n"
        "print(kpi['value'].tolist())",
        parameters='prepared_dir = ""',
    )
    out = tmp_path / "out"
    jobs = [job(source, out, f"d{i}", prepared_dir="../../_prepared") for i in range(2)]
    assert Path(jobs[0].cwd, "../../_prepared").resolve() == folder.resolve()
    engine = WarmEngine()
    results = run(engine, jobs)
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    assert all("[3.0]" in _printed(result) for result in results)


def test_params_are_parsed_once_and_again_when_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from qmsnb import config

    folder = tmp_path / "params"
    for part in ("params", "notebooks"):
        shutil.copytree(Path(__file__).resolve().parents[1] / part, tmp_path / part)
    monkeypatch.setattr(config, "_REMEMBERED", {})
    config.remember_params(folder)
    parses: list[Path] = []
    real_parse = config._parse
    monkeypatch.setattr(config, "_parse", lambda f, m: parses.append(f) or real_parse(f, m))
    first = config.load_params(tmp_path / "x" / ".." / "params")
    assert parses == [] and first is config.load_params(folder)
    plan = folder / "batch.yaml"
    plan.write_text(plan.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    changed = config.load_params(folder)
    assert changed is not first and folder / "batch.yaml" in parses
    assert config.load_params(folder, root=tmp_path) is not first  # another root: parsed


def test_kernels_find_the_params_read_by_the_template(tmp_path: Path) -> None:
    import shutil

    for part in ("params", "notebooks"):
        shutil.copytree(Path(__file__).resolve().parents[1] / part, tmp_path / part)
    source = notebook(
        tmp_path,
        "uses_params",
        "from qmsnb import config\n"
        "config._parse = None  # parsing a file now would fail\n"
        "params = config.load_params(params_dir)\n"
        "print(sorted(params.departments)[:2])",
        parameters='params_dir = ""',
    )
    out = tmp_path / "out"
    jobs = [job(source, out, f"d{i}", params_dir="../../params") for i in range(2)]
    assert Path(jobs[0].cwd, "../../params").resolve() == (tmp_path / "params").resolve()
    results = run(WarmEngine(), jobs)
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    assert all("['admin', 'complaints']" in _printed(result) for result in results)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_workers_started_ahead_are_used_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    ok = notebook(tmp_path, "ok", "print(6 * 7)")
    engine = WarmEngine()
    engine.start(workers=2)
    ahead = [w.proc.pid for w in engine._spare]
    assert len(ahead) == 2
    engine._spare[1].kill()  # dies before the batch reaches its reports
    results = run(engine, [job(ok, tmp_path, f"r{i}") for i in range(4)], workers=2)
    assert all(r.ok for r in results)
    used = {r.extra["worker_pid"] for r in results}
    assert ahead[0] in used and ahead[1] not in used and len(used) == 2
    assert all(_gone(pid) for pid in ahead)


def test_workers_started_ahead_of_a_batch_that_fails_early_are_stopped(tmp_path: Path) -> None:
    engine = WarmEngine()
    engine.start(workers=2)
    started = [w.proc.pid for w in engine._spare] + [engine._template.proc.pid]
    engine.close()  # what run_batch does when the gate or prepare raises
    assert all(_gone(pid) for pid in started)
