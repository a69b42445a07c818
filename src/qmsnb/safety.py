"""What a published page may contain: nothing from the internet, and no script but ours.

Reports escape every data value where it is written (:mod:`qmsnb.display`); this
module is the check after export that proves it for every HTML page of a run
(reports, portal, data-quality report, bundle pages). A page passes only if:

* it loads nothing from outside the output folder (``src``, ``href`` of a
  ``<link>``, ``srcset``, ``poster``, CSS ``url()`` and ``@import``, ...);
* its only scripts are the shared plotly.js include (``…assets/plotly.min.js``)
  and plotly's own ``Plotly.newPlot(…)`` calls whose arguments are pure JSON
  (data, layout, config: nothing that can run);
* no element has an event-handler attribute (``onerror=``, ``onload=``, …);
* no URL is ``javascript:``, ``vbscript:`` or an HTML/script ``data:`` URL;
* there is no ``<iframe>``, ``<object>``, ``<embed>``, ``<base>``, ``<form>``,
  ``<meta http-equiv="refresh">`` and no mermaid diagram source (mermaid renders
  its text as HTML and passes nbconvert's sanitiser).

The page is parsed with the standard library's HTML parser; a regular-expression
pass over the raw markup backs it up, so a construct the parser reads differently
from a browser is still caught. Findings are data (:class:`PageProblem`, with a
stable ``reason`` code), never a silent fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from qmsnb import io

#: Tags a report never needs and that can run or load something.
FORBIDDEN_TAGS = frozenset(
    {
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "base",
        "form",
        "portal",
        "isindex",
        "xml",
        "import",
    }
)
#: Attributes whose value is a URL (or a list of URLs) the browser may follow or load.
URL_ATTRIBUTES = frozenset(
    {
        "href",
        "src",
        "action",
        "formaction",
        "data",
        "poster",
        "background",
        "xlink:href",
        "srcset",
        "imagesrcset",
        "ping",
        "manifest",
        "codebase",
        "cite",
        "longdesc",
        "usemap",
        "icon",
        "lowsrc",
        "dynsrc",
        "archive",
        "profile",
        "values",
        "to",
        "from",
        "by",
    }
)
#: URL attributes that are followed only when a person clicks (a link loads nothing).
_CLICK_ONLY = {("a", "href"), ("area", "href")}
# data: images are fine (an SVG shown as an image or CSS background runs no script);
# any other data: URL (text/html, application/...) could.
_SCRIPT_SCHEMES = re.compile(r"^(?:javascript|vbscript|livescript|mocha):|^data:(?!image/)", re.I)
_EXTERNAL_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//|^(?:https?|ftp|wss?):", re.I)
_CSS_URL = re.compile(r"""url\(\s*['"]?\s*([^'")\s]+)""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*['"]?\s*([^'")\s;]+)""", re.I)
_CSS_EXPRESSION = re.compile(r"expression\s*\(|behavior\s*:|-moz-binding", re.I)
_PLOTLY_INCLUDE = re.compile(r"^(?:\./)?(?:\.\./)*assets/plotly\.min\.js$")
_PLOTLY_CALL = re.compile(
    r"""^\s*window\.PLOTLYENV\s*=\s*window\.PLOTLYENV\s*\|\|\s*\{\};\s*
        if\s*\(document\.getElementById\("(?P<id>[0-9a-f-]{36})"\)\)\s*\{\s*
        Plotly\.newPlot\(\s*"(?P=id)",\s*(?P<args>.*)\)\s*\};?\s*$""",
    re.S | re.X,
)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")
# backstop over the raw markup (our markup never has a raw "<" or ">" inside a value)
_RAW_SCRIPT = re.compile(r"<\s*script\b", re.I)
_RAW_TAG = re.compile(r"<[a-z][^<>]*>", re.I)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_RAW_HANDLER = re.compile(r"[\s/\"']on[a-z]+\s*=", re.I)
_RAW_JS_URL = re.compile(r"=\s*(?:javascript|vbscript)\s*:", re.I)
#: Characters of a problem's context kept.
_SNIPPET = 120


@dataclass(frozen=True)
class PageProblem:
    """Something in a page that could run script or load from outside.

    Attributes:
        page: the file.
        reason: ``external`` (loads from outside), ``script`` (a script that is not
            ours), ``handler`` (an ``on*=`` attribute), ``script_url``
            (``javascript:`` and the like), ``tag`` (a forbidden element),
            ``refresh``, ``css`` (a CSS expression or binding), ``mermaid``.
        detail: what was found (tag, attribute, URL, snippet).
    """

    page: str
    reason: str
    detail: str


def _clean_url(value: str) -> str:
    return _CONTROL.sub("", value or "")


class _PageParser(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.problems: list[PageProblem] = []
        self.scripts = 0
        self._script: dict[str, str | None] | None = None
        self._script_text: list[str] = []
        self._in_style = False
        self._style_text: list[str] = []

    def _add(self, reason: str, detail: str) -> None:
        self.problems.append(PageProblem(self.page, reason, detail[:_SNIPPET]))

    # -- elements ------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        values = {name.lower(): value for name, value in attrs}
        if tag in FORBIDDEN_TAGS:
            self._add("tag", f"<{tag}>")
        if tag == "meta" and (values.get("http-equiv") or "").strip().lower() == "refresh":
            self._add("refresh", f"<meta http-equiv=refresh content={values.get('content')!r}>")
        classes = (values.get("class") or "").lower()
        if "mermaid" in classes.split() or "jp-mermaid" in classes.split():
            self._add("mermaid", f"<{tag} class={values.get('class')!r}>")
        for name, value in attrs:
            self._attribute(tag, name.lower(), value or "")
        if tag == "script":
            self.scripts += 1
            self._script = values
            self._script_text = []
        elif tag == "style":
            self._in_style = True
            self._style_text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag.lower() in ("script", "style"):
            self.handle_endtag(tag)

    def _attribute(self, tag: str, name: str, value: str) -> None:
        if name.startswith("on"):
            self._add("handler", f"<{tag} {name}={value!r}>")
            return
        if name == "style":
            self._css(value, f"<{tag} style>")
            return
        if name == "srcdoc":
            self._add("tag", f"<{tag} srcdoc>")
            return
        if name not in URL_ATTRIBUTES:
            return
        urls = [u.strip().split(" ")[0] for u in value.split(",")] if "srcset" in name else [value]
        for url in urls:
            url = _clean_url(url)
            if _SCRIPT_SCHEMES.match(url):
                self._add("script_url", f"<{tag} {name}={url!r}>")
            elif _EXTERNAL_URL.match(url) and (tag, name) not in _CLICK_ONLY:
                self._add("external", url)

    def _css(self, text: str, where: str) -> None:
        for reason, detail in _css_findings(text):
            self._add(reason, f"{where}: {detail}" if reason != "external" else detail)

    # -- script and style content ----------------------------------------------------
    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_text.append(data)
        elif self._in_style:
            self._style_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag == "script" and self._script is not None:
            self._check_script(self._script, "".join(self._script_text))
            self._script = None
        elif tag == "style" and self._in_style:
            self._css("".join(self._style_text), "<style>")
            self._in_style = False

    def _check_script(self, attrs: dict[str, str | None], body: str) -> None:
        src = _clean_url(attrs.get("src") or "")
        kind = (attrs.get("type") or "text/javascript").strip().lower()
        if kind not in ("text/javascript", "application/javascript"):
            self._add("script", f"<script type={kind!r}>")
            return
        if src:
            if not _PLOTLY_INCLUDE.match(src) or body.strip():
                self._add("script", f"<script src={src!r}>")
            return
        match = _PLOTLY_CALL.match(body)
        if match is None:
            self._add("script", body.strip() or "<script></script>")
            return
        try:
            args = json.loads(f"[{match.group('args')}]")
        except json.JSONDecodeError:
            self._add("script", "Plotly.newPlot with arguments that are not pure JSON")
            return
        if len(args) not in (2, 3) or "javascript:" in json.dumps(args).lower():
            self._add("script", "Plotly.newPlot with unexpected arguments")


#: Findings of style sheets already read, by their text: every report carries the
#: same ~300 KB of notebook CSS, and reading it once per run is enough.
_CSS_SEEN: dict[str, tuple[tuple[str, str], ...]] = {}
_CSS_MEMO_FROM = 4096


def _css_findings(text: str) -> tuple[tuple[str, str], ...]:
    """(reason, detail) for each forbidden thing in a piece of CSS."""
    if len(text) >= _CSS_MEMO_FROM and text in _CSS_SEEN:
        return _CSS_SEEN[text]
    found: list[tuple[str, str]] = []
    for pattern in (_CSS_URL, _CSS_IMPORT):
        for match in pattern.finditer(text):
            url = _clean_url(match.group(1))
            if _SCRIPT_SCHEMES.match(url):
                found.append(("script_url", url))
            elif _EXTERNAL_URL.match(url):
                found.append(("external", url))
    if _CSS_EXPRESSION.search(text):
        found.append(("css", text))
    result = tuple(found)
    if len(text) >= _CSS_MEMO_FROM:
        if len(_CSS_SEEN) > 64:
            _CSS_SEEN.clear()
        _CSS_SEEN[text] = result
    return result


def check_page(markup: str, page: str = "") -> list[PageProblem]:
    """Every problem of one page (an empty list: the page is safe to publish)."""
    parser = _PageParser(page)
    parser.feed(markup)
    parser.close()
    if parser._script is not None:  # an unclosed script runs to the end of the page
        parser._check_script(parser._script, "".join(parser._script_text))
    problems = parser.problems
    raw_scripts = len(_RAW_SCRIPT.findall(markup))
    if raw_scripts != parser.scripts:
        problems.append(
            PageProblem(
                page, "script", f"{raw_scripts} <script> in the markup, {parser.scripts} parsed"
            )
        )
    outside_scripts = re.sub(r"(?is)<script\b[^>]*>.*?</script\s*>", "", markup)
    for tag in _RAW_TAG.finditer(outside_scripts):
        # attribute names and unquoted values only: quoted text cannot start a handler
        bare = _QUOTED.sub('""', tag.group(0))
        for pattern, reason in ((_RAW_HANDLER, "handler"), (_RAW_JS_URL, "script_url")):
            if pattern.search(bare) and not any(p.reason == reason for p in problems):
                problems.append(PageProblem(page, reason, tag.group(0)[:_SNIPPET]))
    return problems


def external_urls(markup: str) -> list[str]:
    """The URLs outside the output folder that a page would load."""
    return [p.detail for p in check_page(markup) if p.reason == "external"]


def check_folder(folder: Path) -> list[PageProblem]:
    """Every problem of every HTML page under ``folder``."""
    problems: list[PageProblem] = []
    for page in sorted(Path(folder).rglob("*.html")):
        problems.extend(check_page(io.read_text(page), str(page)))
    return problems
