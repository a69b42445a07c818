"""Open a local HTML file in headless chromium with the network cut off."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PageVisit:
    """What happened when a page was opened."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def open_offline(browser: Any, path: Path, screenshot: Path | None = None) -> PageVisit:
    """Open ``path`` (file://) with every non-file request aborted.

    Console errors, uncaught page errors, blocked requests and any dialog
    (``alert`` from an injected script) are recorded.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    visit = PageVisit(page=page)

    def route(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            visit.blocked_requests.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda m: visit.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: visit.page_errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        visit.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(Path(path).resolve().as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    return visit
