"""Shared fixtures: a small demo project in a temporary folder and a headless browser.

``demo_project`` builds the demo organisation once per session with few calls
(fast) and returns its root; ``project`` gives each test its own copy to change.
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
