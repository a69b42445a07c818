"""Execution engines: how the batch runs its notebooks.

The runner hands an engine a list of :class:`Job` and gets one :class:`JobResult`
per job back; everything else (planning, publishing, swapping outputs) is the
runner's. Engines live in a registry (:data:`ENGINES`, :func:`register_engine`).

``papermill`` (the default) runs every report in its own worker process with a
fresh kernel: papermill's semantics (``parameters`` cell, injected parameters,
the executed ``.ipynb`` kept with papermill's error marker on failure), a hard
per-report timeout (the worker's process group is killed), and crash isolation
(a dying kernel or worker fails only its own report). Kernels talk over IPC
sockets with a unique path each, because parallel kernels on TCP can collide on
ports (papermill #511).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

#: JSON-native parameter values: the only kind that may reach a notebook
#: (papermill escapes strings, but a tuple parameter was seen to execute code).
JsonValue = str | int | float | bool | None | list[Any] | dict[str, Any]


def check_json_native(value: Any, path: str = "parameters") -> None:
    """Raise TypeError unless ``value`` is built only of JSON-native types.

    The types must match exactly: a subclass (``numpy.float64``, an ``IntEnum``, a
    ``str`` subclass with its own ``repr``) is refused, because papermill writes a
    parameter into the notebook as source code through its type; so are NaN and
    infinity, which JSON cannot hold.
    """
    if value is None or type(value) in (bool, int, str):
        return
    if type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"{path}: {value!r} is not a JSON number")
        return
    if type(value) is list:
        for i, item in enumerate(value):
            check_json_native(item, f"{path}[{i}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: key {key!r} is not a string")
            check_json_native(item, f"{path}.{key}")
        return
    raise TypeError(f"{path}: {type(value).__name__} is not a JSON-native value")


@dataclass(frozen=True)
class Job:
    """One report to execute: a notebook for a department (or the organisation)."""

    notebook: str
    department: str
    source: str
    output: str
    parameters: dict[str, Any]
    timeout: int
    kernel_name: str = "python3"
    cwd: str | None = None

    def __post_init__(self) -> None:
        check_json_native(self.parameters)


@dataclass
class JobResult:
    """What became of one job."""

    job: Job
    status: str  # ok, failed, timeout, crashed
    seconds: float
    error: str | None = None
    cell: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["job"] = asdict(self.job)
        return data


class Engine(Protocol):
    """Runs jobs; calls ``on_done`` as each finishes; returns results in job order."""

    name: str

    def run(
        self, jobs: Sequence[Job], workers: int, on_done: Callable[[JobResult], None]
    ) -> list[JobResult]: ...


ENGINES: dict[str, Callable[[], Engine]] = {}


def register_engine(name: str) -> Callable[[Callable[[], Engine]], Callable[[], Engine]]:
    def deco(factory: Callable[[], Engine]) -> Callable[[], Engine]:
        ENGINES[name] = factory
        return factory

    return deco


def get_engine(name: str) -> Engine:
    from qmsnb.exceptions import UsageError

    if name not in ENGINES:
        raise UsageError("error.unknown_engine", value=name, known=", ".join(sorted(ENGINES)))
    return ENGINES[name]()


# ---------------------------------------------------------------------------
# papermill, one worker process per report
# ---------------------------------------------------------------------------
def execute_one(
    job: Job,
    kernel_manager: Callable[[str], Any] | None = None,
    engine_name: str | None = None,
) -> JobResult:
    """Execute one job in this process with papermill.

    Both engines run a report through this one call, so they share papermill's
    semantics: the ``parameters`` cell and the injected-parameters cell, the
    executed ``.ipynb`` written as cells complete, papermill's red error marker
    on a failing cell, the per-cell timeout.

    Args:
        kernel_manager: makes the kernel manager, given a fresh folder for its IPC
            sockets; by default a spawned kernel over IPC with a unique socket path.
        engine_name: papermill engine (the warm engine's cleans its kernel up).
    """
    from qmsnb._startup import defer_slow_imports

    defer_slow_imports()
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    started = time.monotonic()
    Path(job.output).parent.mkdir(parents=True, exist_ok=True)
    socket_dir = tempfile.mkdtemp(prefix="qmsnb-kernel-")
    if kernel_manager is None:
        from jupyter_client.manager import AsyncKernelManager

        # nbclient notices a dead kernel only through an async manager (a blocking one
        # with IPC transport left a crashed report hanging until the hard timeout).
        km = AsyncKernelManager(
            kernel_name=job.kernel_name, transport="ipc", ip=os.path.join(socket_dir, "k")
        )
    else:
        km = kernel_manager(socket_dir)
    try:
        pm.execute_notebook(
            job.source,
            job.output,
            parameters=job.parameters,
            kernel_name=job.kernel_name,
            language="python",
            km=km,
            cwd=job.cwd,
            execution_timeout=job.timeout,
            progress_bar=False,
            log_output=False,
            report_mode=False,
            engine_name=engine_name,
        )
        return JobResult(job, "ok", time.monotonic() - started)
    except PapermillExecutionError as exc:
        return JobResult(
            job,
            "failed",
            time.monotonic() - started,
            error=f"{exc.ename}: {exc.evalue}",
            cell=exc.exec_count,
        )
    except Exception as exc:  # dead kernel, timeout inside nbclient, bad notebook
        status = "timeout" if "Timeout" in type(exc).__name__ else "crashed"
        return JobResult(
            job, status, time.monotonic() - started, error=f"{type(exc).__name__}: {exc}"
        )
    finally:
        import shutil

        shutil.rmtree(socket_dir, ignore_errors=True)


def _worker_main(job_file: str, result_file: str) -> int:
    job = Job(**json.loads(Path(job_file).read_text(encoding="utf-8")))
    result = execute_one(job)
    Path(result_file).write_text(json.dumps(result.to_json()), encoding="utf-8")
    return 0


class PapermillEngine:
    """Plain papermill, each report in a fresh worker process and kernel."""

    name = "papermill"
    #: Seconds allowed beyond the notebook timeout before the worker is killed.
    grace = 30

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()

    def _stop_all(self) -> None:
        for proc in list(self._running):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _run_job(self, job: Job) -> JobResult:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="qmsnb-job-") as tmp:
            job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
            job_file.write_text(json.dumps(asdict(job)), encoding="utf-8")
            proc = subprocess.Popen(
                [sys.executable, "-m", "qmsnb.engines", str(job_file), str(result_file)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            self._running.add(proc)
            try:
                _, stderr = proc.communicate(timeout=job.timeout + self.grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                return JobResult(
                    job,
                    "timeout",
                    time.monotonic() - started,
                    error=f"no result after {job.timeout} s; worker stopped",
                )
            finally:
                self._running.discard(proc)
            if result_file.is_file():
                data = json.loads(result_file.read_text(encoding="utf-8"))
                data.pop("job")
                return JobResult(job=job, **data)
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            return JobResult(
                job,
                "crashed",
                time.monotonic() - started,
                error=f"worker exited with {proc.returncode}: {' | '.join(tail)}",
            )

    def run(
        self, jobs: Sequence[Job], workers: int, on_done: Callable[[JobResult], None]
    ) -> list[JobResult]:
        results: dict[int, JobResult] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            futures = {pool.submit(self._run_job, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                result = future.result()
                results[futures[future]] = result
                on_done(result)
        except BaseException:  # interrupted: stop every worker, then let it propagate
            pool.shutdown(wait=False, cancel_futures=True)
            self._stop_all()
            raise
        pool.shutdown(wait=True)
        return [results[i] for i in range(len(jobs))]


register_engine("papermill")(PapermillEngine)


@register_engine("warm")
def _warm_engine() -> Engine:
    if not hasattr(os, "fork"):  # Windows: no fork, so every kernel is spawned
        return PapermillEngine()
    from qmsnb.warm import WarmEngine

    return WarmEngine()


if __name__ == "__main__":  # the worker process of PapermillEngine
    sys.exit(_worker_main(sys.argv[1], sys.argv[2]))
