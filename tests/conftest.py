"""Shared fixtures: a small demo project in a temporary folder and a headless browser.

``demo_project`` builds the demo organisation once per session with few calls
(fast) and returns its root; ``project`` gives each test its own copy to change.

``cached_demo`` is the same project after its first batch's data-quality gate and
prepare step for :data:`PERIOD` have filled ``outputs/.cache`` (what every later
monthly run of a real project finds). Tests that run the batch copy it with
:func:`copy_cached` (``cached_project``), so only the first of them pays for
validating twelve months of exports; whatever a test changes is validated anew,
since the caches are keyed by the files' content.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the demo data built once (read-only for tests)."""
    from qmsnb import demo

    root = copy_project(tmp_path_factory.mktemp("demo-project"))
    params = load_params(root / "params")
    demo.build(params, params.data_dir, demo.DemoSpec(calls_per_month=SMALL_CALLS))
    return root


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
    from qmsnb import gate, prepare

    root = copy_cached(demo_project, tmp_path_factory.mktemp("cached-demo") / "project")
    params = load_params(root / "params")
    checked = gate.run_gate(params, PERIOD)  # as the batch runs it, so with the same keys
    prepare.prepare(params, PERIOD, root / "outputs" / "prepared", checked.left_out())
    shutil.rmtree(root / "outputs" / "prepared")
    return root


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
