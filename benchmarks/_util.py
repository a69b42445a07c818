"""Measuring helpers for benchmarks: wall time and peak memory of a process tree."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass
class Measurement:
    """Wall time (s) and peak resident memory (MiB) of a command and its children.

    ``peak_mib`` sums each process's resident set (pages shared by forked
    processes count once per process: an upper bound); ``peak_pss_mib`` sums the
    proportional set size (shared pages split between their sharers: what the
    tree really occupies), when ``pss=True``.
    """

    seconds: float
    peak_mib: float
    returncode: int
    stdout: str = ""
    stderr: str = ""
    peak_pss_mib: float = 0.0


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(
    cmd: Sequence[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    interval: float = 0.05,
    pss: bool = False,
) -> Measurement:
    """Run ``cmd`` and sample the summed RSS of its whole process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = peak_pss = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_pss
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                peak = max(peak, total)
                if pss:
                    peak_pss = max(peak_pss, sum(_pss(p.pid) for p in procs))
            except psutil.Error:
                pass
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    return Measurement(
        time.perf_counter() - started, peak / 2**20, proc.returncode, out, err, peak_pss / 2**20
    )


def timed(
    cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> Measurement:
    """Run ``cmd`` unobserved: wall time only (``peak_mib`` 0).

    Sampling the memory of a process tree costs CPU in this process while the
    command runs: every 50 ms it lists the tree and reads each process's
    ``smaps_rollup``. With the warm engine's half a dozen processes on 2 cores
    that took 1.5-3.7 s from a 14-16 s batch (measured 2026-11-22), so times and
    peaks come from separate runs.
    """
    started = time.perf_counter()
    done = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    return Measurement(
        time.perf_counter() - started, 0.0, done.returncode, done.stdout, done.stderr
    )


def in_process_peak() -> float:
    """Peak RSS of this process so far (MiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
