"""Start-up costs: imports with and without the deferred IRI grammar, kernel start.

* ``import_*``: cumulative import time (``python -X importtime``, median of 3 fresh
  interpreters) of ``nbformat``, ``papermill`` and ``nbconvert`` on their own and
  after ``import qmsnb`` (which defers ``rfc3987_syntax``), and of ``qmsnb.batch``
  (the driver).
* ``kernel_ready_*``: seconds from asking for a kernel to its first
  ``kernel_info`` reply, spawned as papermill does (``python -m ipykernel_launcher``)
  and forked from the warm engine's template (median of 5).

    .venv/bin/python benchmarks/run.py startup
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

MODULES = ("nbformat", "papermill", "nbconvert")


def _import_seconds(code: str, module: str) -> float:
    """Cumulative import time of ``module`` when ``code`` runs in a fresh interpreter."""
    runs = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True,
            text=True,
            check=True,
        )
        total = 0
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() == module:
                total = int(parts[1])
        runs.append(total / 1e6)
    return round(statistics.median(runs), 2)


def _kernel_ready(forked: bool) -> float:
    from jupyter_client import AsyncKernelManager  # noqa: F401 - imported before timing
    from jupyter_client.connect import write_connection_file
    from jupyter_client.manager import start_new_kernel

    from qmsnb import zygote

    times = []
    if not forked:
        for _ in range(5):
            started = time.perf_counter()
            km, kc = start_new_kernel(kernel_name="python3")
            times.append(time.perf_counter() - started)
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        return round(statistics.median(times), 2)
    from jupyter_client import BlockingKernelClient

    with zygote.running_template() as template:
        client = zygote.ZygoteClient(template.socket)
        for _ in range(5):
            folder = tempfile.mkdtemp()
            connection, _ = write_connection_file(
                os.path.join(folder, "k.json"), transport="ipc", ip=os.path.join(folder, "s")
            )
            started = time.perf_counter()
            pid = client.fork(["-f", connection], os.getcwd(), dict(os.environ))
            kc = BlockingKernelClient(connection_file=connection)
            kc.load_connection_file()
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            times.append(time.perf_counter() - started)
            kc.stop_channels()
            os.killpg(pid, 9)
    return round(statistics.median(times), 2)


def main(args: list[str]) -> dict:
    figures: dict = {}
    for module in MODULES:
        figures[f"import_{module}_seconds"] = _import_seconds(f"import {module}", module)
        figures[f"import_{module}_after_qmsnb_seconds"] = _import_seconds(
            f"import qmsnb, {module}", module
        )
    figures["import_qmsnb_batch_seconds"] = _import_seconds("import qmsnb.batch", "qmsnb.batch")
    figures["kernel_ready_spawned_seconds"] = _kernel_ready(forked=False)
    figures["kernel_ready_forked_seconds"] = _kernel_ready(forked=True)
    return figures
