"""The ``warm`` execution engine: papermill on fresh kernels forked from a warm template.

Same contract and semantics as the ``papermill`` engine (one report, one fresh
kernel, papermill's parameters and error marker, per-cell timeout, hard
per-report timeout, crash isolation), at a fraction of the cost: instead of
spawning a kernel and importing pandas, plotly and qmsnb for every report, each
report's kernel is ``fork()``ed from a template process that imported them once
(:mod:`qmsnb.zygote`, which also explains why this isolates reports completely).

Processes of one run::

    driver (this engine, one thread per worker slot)
      ├─ template  python -m qmsnb.zygote   imports, warms caches, forks kernels
      │    └─ one kernel per report (forked; killed when its report is done)
      └─ N workers python -m qmsnb.warm     papermill + nbclient, one report at a time

Workers are long-lived papermill clients; each report's kernel lives exactly
as long as its report. A worker is replaced after :attr:`WarmEngine.recycle_reports`
reports or above :attr:`WarmEngine.recycle_mib` MiB; a kernel above
:attr:`WarmEngine.kernel_limit_mib` is stopped; a worker or kernel that
dies or hangs fails only its own report and is replaced; the template is
restarted if it dies. Worker protocol: JSON lines, a job on stdin;
``{"kernel": pid}`` then ``{"result": {...}}`` on the worker's original stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qmsnb.engines import Job, JobResult
from qmsnb.zygote import Template, _rss_mib

#: papermill engine name of the warm engine's client (registered in each worker).
PAPERMILL_ENGINE = "qmsnb_warm"
#: Least seconds between two saves of the output notebook while it executes.
#: papermill saves after every cell start and end and twice at the end (two dozen
#: full JSON encodings of a report with plotly figures, ~0.7 s of CPU); here the
#: finished notebook (with the error marker if a cell failed) is written once,
#: the state at a crash or timeout too, and progress at most every few seconds.
SAVE_EVERY = 5.0


# ---------------------------------------------------------------------------
# Worker process
# ---------------------------------------------------------------------------
def _register_papermill_engine() -> None:
    """papermill's nbclient engine, but closing its client and killing its kernel.

    papermill leaves a kernel it was *given* running (nbclient only cleans up
    kernels it started itself); a long-lived worker must not collect them.
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class WarmNBClientEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(  # type: ignore[override]
            cls,
            nb_man: Any,
            kernel_name: str,
            log_output: bool = False,
            stdout_file: Any = None,
            stderr_file: Any = None,
            start_timeout: int = 60,
            execution_timeout: int | None = None,
            **kwargs: Any,
        ) -> Any:
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(
                safe_kwargs,
                timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                shutdown_kernel="immediate",
            )
            save, last = nb_man.save, [time.monotonic()]

            def throttled_save(**kw: Any) -> None:
                if time.monotonic() - last[0] >= SAVE_EVERY:
                    save(**kw)
                    last[0] = time.monotonic()

            nb_man.save = throttled_save
            try:
                nb = PapermillNotebookClient(nb_man, **final_kwargs).execute(cleanup_kc=True)
            except BaseException:
                nb_man.save = save  # notebook_complete() writes the state at the crash
                raise
            # papermill writes the finished notebook right after (with the error
            # marker if a cell failed); notebook_complete() need not write it too
            nb_man.save = lambda **kw: None
            return nb

    papermill_engines.register(PAPERMILL_ENGINE, WarmNBClientEngine)


class _MemoryGuard:
    """Kills a report's kernel when its resident memory passes a limit.

    The kernel dies, nbclient reports a dead kernel, and only that report fails
    (with the reason in its error); the next report gets a fresh kernel anyway.
    """

    interval = 0.2

    def __init__(self, limit_mib: float) -> None:
        self.limit_mib = limit_mib
        self.pid: int | None = None
        self.tripped: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _MemoryGuard:
        if self.limit_mib > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            pid = self.pid
            if pid is None:
                continue
            rss = _rss_mib(pid)
            if rss > self.limit_mib:
                self.tripped = rss
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                return


#: What papermill imports at its top for handlers a worker never uses (HTTP
#: notebooks): imported on first use instead (see :mod:`qmsnb._startup`), as is
#: pyarrow, which papermill imports for HDFS (~0.4 s and ~40 MiB a worker).
_WORKER_UNUSED_AT_IMPORT = ("requests",)


def _worker_imports() -> None:
    """What a worker imports before its first job, papermill's unused parts deferred."""
    from qmsnb._startup import defer_callables, defer_modules, defer_slow_imports

    defer_slow_imports()
    defer_modules(_WORKER_UNUSED_AT_IMPORT)
    defer_callables("pyarrow.fs", ("FileSelector", "HadoopFileSystem"))
    _register_papermill_engine()


def worker_main(socket_path: str, kernel_limit_mib: float = 0.0) -> int:
    """A worker: run the jobs read from stdin, one at a time, in forked kernels."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything else printed goes to the log, never into the protocol
    _worker_imports()
    from qmsnb import engines, zygote

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    client: zygote.ZygoteClient | None = None
    send({"ready": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        job = Job(**json.loads(line))
        launched: dict[str, Any] = {}
        guard = _MemoryGuard(kernel_limit_mib)

        def on_launch(
            pid: int, forked: bool, launched: dict[str, Any] = launched, guard: _MemoryGuard = guard
        ) -> None:
            launched.update(pid=pid, forked=forked)
            guard.pid = pid
            send({"kernel": pid, "forked": forked})

        try:
            if client is None:
                client = zygote.ZygoteClient(socket_path)
            client.request({"op": "ping"})
        except OSError:  # the template was restarted: connect again
            if client is not None:
                client.close()
            client = zygote.ZygoteClient(socket_path)
        current = client
        with guard:
            result = engines.execute_one(
                job,
                kernel_manager=lambda folder, c=current, j=job, cb=on_launch: zygote.kernel_manager(
                    c, j.kernel_name, folder, cb
                ),
                engine_name=PAPERMILL_ENGINE,
            )
        if guard.tripped is not None and result.status != "ok":
            result.status = "crashed"
            result.error = (
                f"kernel stopped: {guard.tripped:.0f} MiB in memory, above the "
                f"{kernel_limit_mib:.0f} MiB a report may use ({result.error})"
            )
        result.extra.update({"kernel_" + k: v for k, v in launched.items()})
        result.extra["worker_pid"] = os.getpid()
        send({"result": result.to_json()})
    return 0


# ---------------------------------------------------------------------------
# Driver side
# ---------------------------------------------------------------------------
class _Lines:
    """Line reader on a pipe with a deadline (select + os.read, no hidden buffer)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next message; ``{}`` at end of file; None when the deadline passed."""
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if not ready:
                continue
            data = os.read(self.fd, 65536)
            if not data:
                return {}
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line) if line.strip() else self.read(deadline)


class _Worker:
    """The driver's handle on one worker process."""

    def __init__(self, socket_path: str, log: Path, kernel_limit_mib: float = 0.0) -> None:
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qmsnb.warm", socket_path, str(kernel_limit_mib)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                bufsize=0,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        self.lines = _Lines(self.proc.stdout.fileno())
        self.ready = False
        self.reports = 0
        self.kernel: int | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mib(self) -> float:
        return _rss_mib(self.proc.pid)

    def _tail(self) -> str:
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    def kill(self) -> None:
        for pid in (self.kernel, self.proc.pid):
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]

    def stop(self) -> None:
        """End a worker between jobs (closing stdin ends its loop)."""
        with contextlib.suppress(Exception):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(Exception):
            self.proc.stdout.close()  # type: ignore[union-attr]

    def run(self, job: Job, hard_limit: float) -> JobResult:
        started = time.monotonic()
        deadline = started + hard_limit
        if not self.ready:
            message = self.lines.read(started + 120)
            if not message or "ready" not in message:
                self.kill()
                return JobResult(
                    job,
                    "crashed",
                    time.monotonic() - started,
                    error=f"worker did not start: {self._tail()}",
                )
            self.ready = True
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(asdict(job)) + "\n").encode())
        self.proc.stdin.flush()
        self.reports += 1
        while True:
            message = self.lines.read(deadline)
            if message is None:
                self.kill()
                return JobResult(
                    job,
                    "timeout",
                    time.monotonic() - started,
                    error=f"no result after {job.timeout} s; kernel and worker stopped",
                )
            if not message:
                code = self.proc.wait()
                self.kill()
                return JobResult(
                    job,
                    "crashed",
                    time.monotonic() - started,
                    error=f"worker exited with {code}: {self._tail()}",
                )
            if "kernel" in message:
                self.kernel = message["kernel"]
            elif "result" in message:
                self.kernel = None
                data = message["result"]
                data.pop("job")
                return JobResult(job=job, **data)


class WarmEngine:
    """papermill on fresh kernels forked from a pre-imported template (see module doc)."""

    name = "warm"
    #: Seconds allowed beyond the notebook timeout before a worker is killed.
    grace = 30
    #: A worker (papermill client) is replaced after this many reports ...
    recycle_reports = 100
    #: ... or when its resident memory exceeds this many MiB.
    recycle_mib = 1024
    #: A report's kernel is stopped (and only that report fails) above this many MiB.
    kernel_limit_mib = 4096

    def __init__(self) -> None:
        self._template: Template | None = None
        self._prepared: str | None = None
        self._params: str | None = None
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        #: workers started ahead by :meth:`start`, not yet given a slot
        self._spare: list[_Worker] = []
        self._stopping = threading.Event()
        self.stats: dict[str, Any] = {"template_restarts": 0, "worker_restarts": 0}

    # the template ---------------------------------------------------------
    def start(self, workers: int = 0) -> None:
        """Start the template early (it imports for ~2 s) and up to ``workers``
        workers (each imports papermill for ~0.5 s) while the batch gates and
        prepares the period; :meth:`run` waits for them."""
        if self._template is None:
            self._template = Template().start()
            self._template_ready = False
        while len(self._spare) < workers:
            self._spare.append(self._new_worker(len(self._spare)))

    def _ensure_template(self) -> Template:
        with self._lock:
            self.start()
            assert self._template is not None
            if not self._template.alive():
                self.stats["template_restarts"] += 1
                self._template.stop()
                self._template.start()
                self._template_ready = False
            if not self._template_ready:
                self._template.wait_ready()
                self._template_ready = True
                if self._prepared or self._params:
                    self._remember(self._template)
            return self._template

    def _remember(self, template: Template) -> None:
        """Have the template read the batch's prepared tables once (every report
        reads them; a failure only means each kernel reads them itself)."""
        from qmsnb import zygote

        with contextlib.suppress(OSError, ConnectionError, ValueError):
            client = zygote.ZygoteClient(template.socket)
            try:
                client.request(
                    {
                        "op": "remember",
                        "prepared": self._prepared or "",
                        "params": self._params or "",
                    }
                )
            finally:
                client.sock.close()

    def close(self) -> None:
        for worker in list(self._workers):
            worker.kill()
        self._workers.clear()
        self._spare.clear()
        if self._template is not None:
            self._template.close()
            self._template = None

    # one worker slot -------------------------------------------------------
    def _new_worker(self, index: int) -> _Worker:
        assert self._template is not None
        worker = _Worker(
            self._template.socket,
            self._template.folder / f"worker-{index}.log",
            self.kernel_limit_mib,
        )
        with self._lock:
            self._workers.append(worker)
        return worker

    def _spare_worker(self) -> _Worker | None:
        with self._lock:
            while self._spare:
                worker = self._spare.pop(0)
                if worker.alive():
                    return worker
                if worker in self._workers:
                    self._workers.remove(worker)
        return None

    def _retire(self, worker: _Worker, graceful: bool) -> None:
        (worker.stop if graceful else worker.kill)()
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)

    def _slot(
        self,
        index: int,
        todo: queue.SimpleQueue[tuple[int, Job]],
        done: Callable[[int, JobResult], None],
    ) -> None:
        worker: _Worker | None = None
        try:
            while not self._stopping.is_set():
                try:
                    position, job = todo.get_nowait()
                except queue.Empty:
                    break
                template = self._ensure_template()
                if worker is not None and (
                    not worker.alive()
                    or worker.reports >= self.recycle_reports
                    or worker.rss_mib() > self.recycle_mib
                ):
                    self.stats["worker_restarts"] += 1
                    self._retire(worker, graceful=worker.alive())
                    worker = None
                if worker is None:
                    worker = self._spare_worker() or self._new_worker(index)
                result = worker.run(job, job.timeout + self.grace)
                result.extra.setdefault("template_pid", template.pid)
                if not worker.alive():
                    self._retire(worker, graceful=False)
                    worker = None
                done(position, result)
        finally:
            if worker is not None:
                self._retire(worker, graceful=True)

    def run(
        self, jobs: Sequence[Job], workers: int, on_done: Callable[[JobResult], None]
    ) -> list[JobResult]:
        results: dict[int, JobResult] = {}
        report_lock = threading.Lock()

        def done(position: int, result: JobResult) -> None:
            with report_lock:
                results[position] = result
                on_done(result)

        todo: queue.SimpleQueue[tuple[int, Job]] = queue.SimpleQueue()
        for item in enumerate(jobs):
            todo.put(item)
        self._prepared = _shared_folder(jobs, "prepared_dir")
        self._params = _shared_folder(jobs, "params_dir")
        self.start()
        slots = [
            threading.Thread(target=self._slot, args=(i, todo, done), daemon=True)
            for i in range(max(1, min(workers, len(jobs))))
        ]
        try:
            for slot in slots:
                slot.start()
            for slot in slots:
                while slot.is_alive():
                    slot.join(timeout=0.2)
        except BaseException:  # interrupted: stop every worker and kernel, then propagate
            self._stopping.set()
            self.close()
            raise
        self.close()
        missing = [i for i in range(len(jobs)) if i not in results]
        for i in missing:  # a slot died unexpectedly: say so rather than lose the report
            results[i] = JobResult(jobs[i], "crashed", 0.0, error="not run: engine slot failed")
        return [results[i] for i in range(len(jobs))]


def _shared_folder(jobs: Sequence[Job], parameter: str) -> str | None:
    """The folder every job names in ``parameter`` (relative to its cwd), if they share one."""
    folders = {
        str((Path(job.cwd or ".") / str(job.parameters[parameter])).resolve())
        for job in jobs
        if job.parameters.get(parameter)
    }
    return folders.pop() if len(folders) == 1 else None


if __name__ == "__main__":  # a worker process of WarmEngine
    sys.exit(worker_main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
