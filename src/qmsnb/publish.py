"""Publishing: executed notebooks → offline HTML reports, the portal and the manifest.

Reports are exported in-process with nbconvert's ``HTMLExporter`` and our template
(``templates/qmsnb_report``): code and papermill's injected cell hidden, stderr
dropped, every CDN reference of the lab template removed, one shared local copy
of plotly.js per period (``assets/``). After export every page is checked for
references to anything outside the output folder; one found is a PublishError.

The portal (``<period>/index.html``) and the list of periods (``index.html``) are
rendered with Jinja2 with autoescaping on: every string from data is escaped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache
from html import escape
from html.parser import HTMLParser
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from qmsnb import io
from qmsnb.config import ORGANISATION, Params, check_department_id
from qmsnb.exceptions import PublishError
from qmsnb.i18n import period_label, t

ASSETS = "assets"
#: Packages whose versions the manifest records.
VERSIONED = (
    "qmsnb",
    "pandas",
    "numpy",
    "pyarrow",
    "plotly",
    "papermill",
    "nbclient",
    "nbconvert",
    "nbformat",
    "ipykernel",
    "jupyter_client",
    "great_expectations",
    "pydantic",
    "openpyxl",
)
_EXTERNAL = re.compile(
    r"""<(?:script|link|img|iframe|embed|object|source)\b[^>]*?\b(?:src|href|data)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)""",
    re.IGNORECASE,
)
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\()?["']?((?:https?:)?//[^"')\s]+)""", re.IGNORECASE)


def _templates() -> Path:
    return Path(str(resources.files("qmsnb") / "templates"))


def versions() -> dict[str, str]:
    """Installed versions of the packages a report depends on."""
    import platform

    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_assets(folder: Path) -> None:
    """The shared local assets of a period: plotly.js and the report stylesheet."""
    import plotly

    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    io.copy_file(plotly_js, folder / "plotly.min.js")
    io.copy_file(_templates() / "report.css", folder / "report.css")
    io.write_text(folder / NOTEBOOK_CSS, notebook_css())


#: The notebook style sheet every report links (JupyterLab's, as nbconvert's lab
#: template would inline it: 250 KB in each page, parsed again by every check).
NOTEBOOK_CSS = "notebook.css"


@lru_cache(maxsize=1)
def notebook_css() -> str:
    """nbconvert's lab template style sheets (``index.css`` and the light theme)."""
    for folder in _exporter().template_paths:
        static = Path(folder) / "static"
        if (static / "index.css").is_file() and (static / "theme-light.css").is_file():
            return "\n".join(
                io.read_text(static / name) for name in ("index.css", "theme-light.css")
            )
    raise FileNotFoundError("nbconvert's lab template (static/index.css) is not installed")


@lru_cache(maxsize=1)
def _exporter() -> Any:
    return make_exporter(_report_exporter_class())


def make_exporter(cls: Any) -> Any:
    """An exporter of class ``cls`` (an ``HTMLExporter``) set up for our report pages."""
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = {"injected-parameters", "parameters"}
    config.HTMLExporter.exclude_input = True
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    # the notebook is validated once after the preprocessors, not after each of
    # the thirteen (they are nbconvert's own; 14 ms a report)
    config.HTMLExporter.optimistic_validation = True
    exporter = cls(
        config=config,
        template_name="qmsnb_report",
        extra_template_basedirs=[str(_templates())],
    )
    exporter.register_preprocessor("nbconvert.preprocessors.TagRemovePreprocessor", enabled=True)
    return exporter


def _report_exporter_class() -> Any:
    """nbconvert's ``HTMLExporter`` with its accessibility pass done by :func:`accessible`.

    After rendering, ``HTMLExporter`` parses the whole page into a BeautifulSoup
    tree to give images without ``alt`` a text and make cells focusable, then
    serialises the tree again: 55 % of a report's export. :func:`accessible`
    makes the same changes in one scan of the page (a test holds the two pages
    to the same document).
    """
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class ReportExporter(HTMLExporter):  # type: ignore[misc]
        def from_notebook_node(
            self, nb: Any, resources: dict[str, Any] | None = None, **kw: Any
        ) -> tuple[str, dict[str, Any]]:
            # HTMLExporter.from_notebook_node (nbconvert 7) up to its soup
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight_code = self.filters.get(
                "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)
            )
            resources = self._init_resources(resources)
            filter_data_type = WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources
            )
            self.register_filter("highlight_code", highlight_code)
            self.register_filter("filter_data_type", filter_data_type)
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            alt = resources.get("qmsnb", {}).get("image_alt") or t("report.image_alt", "en")
            return accessible(html, alt), resources

    return ReportExporter


class _A11yScan(HTMLParser):
    """Finds the start tags :func:`accessible` changes, as offsets into the page."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.line_starts = [0, *(m.end() for m in re.finditer("\n", markup))]
        self.inserts: list[tuple[int, str]] = []
        self.replaces: list[tuple[int, int, str]] = []
        self.alt = ""
        self.notebook: str | None = None  # the tag of the element with class jp-Notebook
        self.depth = 0  # how many of that tag are open since it

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        classes = set()
        for name, value in attrs:
            if name == "class" and value:
                classes.update(value.split())
        inside = self.depth > 0
        if self.notebook is None and "jp-Notebook" in classes:
            self.notebook, self.depth = tag, 1
        elif tag == self.notebook and inside:
            self.depth += 1
        if tag == "img" and "alt" not in names:
            self._set(attrs, "alt", self.alt)
        elif (
            tag == "div" and inside and classes & _FOCUSABLE and dict(attrs).get("tabindex") != "0"
        ):
            self._set(attrs, "tabindex", "0")

    def handle_endtag(self, tag: str) -> None:
        if tag == self.notebook and self.depth > 0:
            self.depth -= 1

    def _set(self, attrs: list[tuple[str, str | None]], name: str, value: str) -> None:
        """The attribute added after the others (as BeautifulSoup adds it), or its
        value replaced in place."""
        text = self.get_starttag_text() or ""
        start = self._offset()
        closing = 2 if text.endswith("/>") else 1
        if any(n == name for n, _ in attrs):
            rebuilt = "".join(
                f" {n}" if v is None else f' {n}="{escape(value if n == name else v)}"'
                for n, v in attrs
            )
            tag = text[1 : 1 + len(self.lasttag)]  # as written (the parser lowercases it)
            self.replaces.append((start, start + len(text), f"<{tag}{rebuilt}{text[-closing:]}"))
        else:
            self.inserts.append((start + len(text) - closing, f' {name}="{escape(value)}"'))


#: Elements nbconvert makes keyboard-focusable (inside the ``.jp-Notebook`` element).
_FOCUSABLE = {"jp-Cell-inputWrapper", "jp-OutputArea-output"}


def accessible(html: str, alt: str) -> str:
    """What nbconvert's ``HTMLExporter`` does to a rendered page, without a tree:
    every ``img`` without ``alt`` gets ``alt``; every ``div.jp-Cell-inputWrapper``
    and ``div.jp-OutputArea-output`` inside the ``.jp-Notebook`` element gets
    ``tabindex="0"``. Tags are found by the parser BeautifulSoup uses
    (``html.parser``), so text in scripts, comments and attribute values is never
    taken for a tag."""
    scan = _A11yScan(html)
    scan.alt = alt
    scan.feed(html)
    scan.close()
    edits = sorted(
        [(at, at, text) for at, text in scan.inserts] + scan.replaces, key=lambda e: e[0]
    )
    if not edits:
        return html
    parts, last = [], 0
    for start, end, text in edits:
        parts.append(html[last:start])
        parts.append(text)
        last = end
    parts.append(html[last:])
    return "".join(parts)


def external_references(markup: str) -> list[str]:
    """URLs outside the output folder that a page would load (scripts, styles, images)."""
    return _EXTERNAL.findall(markup) + _CSS_IMPORT.findall(markup)


#: plotly's own output representation (a figure as JSON).
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def export_report(
    ipynb: Path,
    html: Path,
    *,
    title: str,
    lang: str,
    portal_href: str = "../index.html",
    assets_href: str = f"../{ASSETS}",
    footer: str = "",
) -> Path:
    """Export one executed notebook to an offline HTML report.

    Raises:
        PublishError: the page would load something from outside the output folder.
    """
    import nbformat

    nb = nbformat.reads(io.read_text(ipynb), as_version=4)
    nb.metadata["title"] = title
    # plotly's JSON is for JupyterLab; the page draws each figure from the HTML
    # representation beside it. Without it nbconvert copies and validates a third
    # less (the page is the same: tested).
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(PLOTLY_MIME, None)
    body, _ = _exporter().from_notebook_node(
        nb,
        resources={
            "language_code": "zh-CN" if lang == "zh" else "en",
            "qmsnb": {
                "assets": assets_href,
                "portal": portal_href,
                "back_label": t("report.back_to_portal", lang),
                "image_alt": t("report.image_alt", lang),
                "title": title,
                "footer": footer,
            },
        },
    )
    raise_for_page(body, str(html))
    return io.write_text(html, body)


def _jinja() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_templates())),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _status_label(status: str, lang: str) -> str:
    return t(f"portal.status.{status}", lang)


def render_portal(folder: Path, manifest: dict[str, Any], params: Params, lang: str) -> Path:
    """``<period>/index.html``: scopes × reports with status and links."""
    period = manifest["period"]
    reports = {(r["department"], r["notebook"]): r for r in manifest["reports"]}
    notebooks = [
        {"id": nb.id, "title": nb.title(lang)}
        for nb in params.batch.notebooks
        if any(key[1] == nb.id for key in reports)
    ]
    scopes = [ORGANISATION, *params.departments]
    rows = []
    for scope in scopes:
        cells = []
        for nb in notebooks:
            report = reports.get((scope, nb["id"]))
            if report is None:
                cells.append(None)
                continue
            status = report["status"]
            cells.append(
                {
                    "status": status,
                    "label": _status_label(status, lang),
                    "html": report.get("html"),
                    "notebook": report.get("ipynb") if status != "ok" else None,
                    "previous": report.get("previous"),
                    "error": report.get("error") or report.get("reason"),
                    "seconds": None
                    if report.get("seconds") is None
                    else f"{report['seconds']:.1f}",
                }
            )
        if any(cells):
            kpis = manifest.get("kpi_summary", {}).get(scope)
            chips = []
            if kpis:
                for status in ("red", "yellow", "green"):
                    if kpis[status]:
                        chips.append(
                            {
                                "status": status,
                                "label": f"{t(f'status.{status}', lang)} {kpis[status]}",
                            }
                        )
                if kpis["alerts"]:
                    chips.append(
                        {"status": "red", "label": t("portal.alerts", lang, count=kpis["alerts"])}
                    )
            rows.append(
                {
                    "name": params.department_name(scope, lang),
                    "is_org": scope == ORGANISATION,
                    "cells": cells,
                    "chips": chips,
                }
            )
    banners = list(manifest.get("banners", []))
    failed = [r for r in manifest["reports"] if r["status"] in ("failed", "timeout", "crashed")]
    if failed:
        banners.insert(
            0,
            {
                "kind": "red",
                "title": t("portal.failed_banner", lang, count=len(failed)),
                "lines": [
                    t(
                        "portal.failed_line",
                        lang,
                        scope=params.department_name(r["department"], lang),
                        report=params.notebooks[r["notebook"]].title(lang),
                        error=r.get("error") or "",
                    )
                    for r in failed
                ]
                + (
                    [t("portal.stale_note", lang)] if any(r.get("previous") for r in failed) else []
                ),
            },
        )
    for report in manifest["reports"]:
        review = (report.get("facts") or {}).get("review")
        if review and not review.get("complete", True):
            inputs = review.get("inputs", {})
            banners.append(
                {
                    "kind": "red",
                    "title": t(
                        "portal.review_incomplete", lang, count=len(review.get("missing", []))
                    ),
                    "lines": [
                        inputs.get(key, {}).get("clause", key) for key in review.get("missing", [])
                    ],
                }
            )
    org = params.organisation.name(lang)
    html = (
        _jinja()
        .get_template("portal.html.j2")
        .render(
            html_lang="zh-CN" if lang == "zh" else "en",
            t=lambda key, **kw: t(key, lang, **kw),
            title=t("portal.title", lang, period=period_label(period, lang)),
            subtitle=t(
                "portal.subtitle",
                lang,
                org=org,
                run=manifest["run_id"],
                time=manifest["finished"].replace("T", " ")[:16],
            ),
            banners=banners,
            notebooks=notebooks,
            rows=rows,
            data_quality=(folder / "data_quality.html").is_file(),
            css=io.read_text(_templates() / "portal.css"),
            footer=t("portal.footer", lang, version=manifest["versions"].get("qmsnb", "")),
        )
    )
    return io.write_text(folder / "index.html", html)


def render_periods_index(output_dir: Path, params: Params, lang: str) -> Path:
    """``outputs/index.html``: every period that has a portal, newest first."""
    periods = []
    for folder in sorted((p for p in output_dir.iterdir() if p.is_dir()), reverse=True):
        manifest_file = folder / "manifest.json"
        if folder.name.startswith(".") or not manifest_file.is_file():
            continue
        manifest = io.read_json(manifest_file)
        counts: dict[str, int] = {}
        for report in manifest.get("reports", []):
            key = (
                "ok"
                if report["status"] == "ok"
                else ("blocked" if report["status"] == "blocked" else "failed")
            )
            counts[key] = counts.get(key, 0) + 1
        periods.append(
            {
                "href": f"{folder.name}/index.html",
                "label": period_label(folder.name, lang),
                "finished": manifest.get("finished", "").replace("T", " ")[:16],
                "summary": [
                    {"status": s, "label": t(f"portal.summary.{s}", lang, count=n)}
                    for s, n in counts.items()
                ],
            }
        )
    org = params.organisation.name(lang)
    html = (
        _jinja()
        .get_template("periods.html.j2")
        .render(
            html_lang="zh-CN" if lang == "zh" else "en",
            title=t("portal.periods_title", lang, org=org),
            subtitle=t("portal.periods_subtitle", lang),
            periods=periods,
            css=io.read_text(_templates() / "portal.css"),
            footer=t("portal.footer", lang, version=versions().get("qmsnb", "")),
        )
    )
    return io.write_text(output_dir / "index.html", html)


def check_offline(folder: Path) -> list[tuple[str, list[str]]]:
    """Every HTML page under ``folder`` that references something outside it."""
    from qmsnb import safety

    bad = []
    for page in sorted(folder.rglob("*.html")):
        markup = io.read_text(page)
        found = list(dict.fromkeys(external_references(markup) + safety.external_urls(markup)))
        if found:
            bad.append((str(page), found))
    return bad


#: sha256 of every page markup that passed :func:`raise_for_page` in this process.
_PASSED: set[str] = set()


def raise_for_page(markup: str, page: str) -> None:
    """Raise PublishError if a page could load from outside or run a script not ours.

    See :mod:`qmsnb.safety` for what is checked.
    """
    from qmsnb import safety

    digest = hashlib.sha256(markup.encode("utf-8", "surrogatepass")).hexdigest()
    if digest in _PASSED:  # this very markup passed already (at export, then in the run's folder)
        return
    external = external_references(markup)
    if external:
        raise PublishError("error.publish.external", file=page, urls=", ".join(external[:5]))
    problems = safety.check_page(markup, page)
    if problems:
        first = problems[0]
        key = "error.publish.external" if first.reason == "external" else "error.publish.unsafe"
        raise PublishError(
            key,
            file=page,
            urls=first.detail,
            reason=first.reason,
            detail=first.detail,
            count=len(problems),
        )
    if len(_PASSED) > 10_000:
        _PASSED.clear()
    _PASSED.add(digest)


def check_pages(folder: Path) -> None:
    """The post-export check over every HTML page of a run (reports, portal, ...).

    Raises:
        PublishError: a page loads something from outside the output folder, or
            could run a script that is not plotly's (see :mod:`qmsnb.safety`).
    """
    for page in sorted(folder.rglob("*.html")):
        raise_for_page(io.read_text(page), str(page))


def report_facts(ipynb: Path) -> dict[str, Any]:
    """The facts an executed notebook handed over (:class:`qmsnb.display.Facts`)."""
    from qmsnb.display import FACTS_MIME

    found: dict[str, Any] = {}
    try:
        nb = io.read_json(ipynb)
    except (OSError, ValueError):
        return found
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data", {}) if isinstance(output, dict) else {}
            if isinstance(data.get(FACTS_MIME), dict):
                found.update(data[FACTS_MIME])
    return found


def relative(path: Path, start: Path) -> str:
    return path.relative_to(start).as_posix()


def report_paths(folder: Path, department: str, notebook: str) -> tuple[Path, Path]:
    """Where a report's executed notebook and HTML live inside a period folder.

    Raises:
        UsageError: ``department`` is not a department-id slug (e.g. ``../x``).
    """
    check_department_id(department)
    return folder / department / f"{notebook}.ipynb", folder / department / f"{notebook}.html"


def scopes_sorted(values: Sequence[str], params: Params) -> list[str]:
    order = {d: i for i, d in enumerate([ORGANISATION, *params.departments])}
    return sorted(values, key=lambda d: order.get(d, len(order)))
