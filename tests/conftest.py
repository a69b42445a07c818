"""Shared fixtures: a small demo project in a temporary folder and a headless browser.

``demo_project`` builds the demo organisation once per session with few calls
(fast) and returns its root; ``project`` gives each test its own copy to change.

``cached_demo`` is the same project after its first batch's data-quality gate and
prepare step for :data:`PERIOD` (and an interactive prepare) have filled
``outputs/.cache`` (what every later monthly run of a real project finds). Tests
that run the batch or prepare a period copy it with :func:`copy_cached`
(``cached_project``), so only the first of them pays for validating and reading
twelve months of exports; whatever a test changes is validated and read anew,
since the caches are keyed by the files' content. Tests of the caches themselves
start from ``project``, which has none.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qmsnb.config import Params, load_params

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SMALL_CALLS = 3000
#: The demo's last month, the one the batch tests run.
PERIOD = "2026-10"


def copy_project(target: Path) -> Path:
    """A project root with this repository's params and notebooks."""
    shutil.copytree(REPO / "params", target / "params")
    shutil.copytree(REPO / "notebooks", target / "notebooks")
    shutil.copytree(REPO / "expectations", target / "expectations")
    return target


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """A folder that ``build`` fills once per test run.

    Under pytest-xdist the workers share it: the first one builds it (under a
    lock) and the others wait for it instead of building their own.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        root = tmp_path_factory.mktemp(name)
        build(root)
        return root
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of the run
    root, done = shared / name, shared / f"{name}.done"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            build(root)
            done.touch()
    return root


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the demo data built once (read-only for tests)."""

    def build(root: Path) -> None:
        from qmsnb import demo

        copy_project(root)
        params = load_params(root / "params")
        demo.build(params, params.data_dir, demo.DemoSpec(calls_per_month=SMALL_CALLS))

    return built_once(tmp_path_factory, "demo-project", build)


@pytest.fixture
def project(demo_project: Path, tmp_path: Path) -> Path:
    """A private copy of the demo project that a test may change."""
    root = tmp_path / "project"
    shutil.copytree(demo_project, root, ignore=shutil.ignore_patterns("outputs"))
    return root


def copy_cached(source: Path, target: Path, ignore: tuple[str, ...] = ()) -> Path:
    """Copy a project with its ``outputs/.cache`` and nothing else of its outputs.

    Cached gate results name the file they checked; the copy names its own files,
    as if it had filled the cache itself.
    """
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("outputs", *ignore))
    cache = source / "outputs" / ".cache"
    if cache.is_dir():
        shutil.copytree(cache, target / "outputs" / ".cache")
        for path in (target / "outputs" / ".cache").rglob("*.json"):
            text = path.read_text(encoding="utf-8")
            if str(source) in text:
                path.write_text(text.replace(str(source), str(target)), encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def cached_demo(demo_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project with the gate and prepare caches of its first batch (read-only)."""

    def build(folder: Path) -> None:
        from qmsnb import gate, prepare

        # not demo_project's own outputs: tests reading it may be filling them meanwhile
        root = folder / "project"
        shutil.copytree(demo_project, root, ignore=shutil.ignore_patterns("outputs"))
        params = load_params(root / "params")
        checked = gate.run_gate(params, PERIOD)  # as the batch runs it, so with the same keys
        prepared = root / "outputs" / "prepared"
        prepare.prepare(params, PERIOD, prepared, checked.left_out())
        prepare.prepare(params, PERIOD, prepared, {})  # as a notebook opened without a batch
        shutil.rmtree(prepared)

    return built_once(tmp_path_factory, "cached-demo", build) / "project"


@pytest.fixture
def cached_project(cached_demo: Path, tmp_path: Path) -> Path:
    """A private copy of the demo project whose batch caches are filled."""
    return copy_cached(cached_demo, tmp_path / "project")


@pytest.fixture
def params(project: Path) -> Params:
    return load_params(project / "params")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's chromium, headless, driven by Playwright (no browser download)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


#: Test files that take longest, longest first. pytest-xdist (``make test``) hands
#: out whole files in collection order, so these start first and no long file is
#: left running alone at the end; the order of tests within a file is kept.
LONGEST_FIRST = (
    "test_warm.py",
    "test_batch.py",
    "test_audit.py",
    "test_risk.py",
    "test_hardening.py",
    "test_review.py",
    "test_gate.py",
    "test_distribution.py",
    "test_records.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
