"""Report bundles: one zip per department, holding its reports and nothing of any other.

A bundle is what ``qmsnb distribute`` sends (or links to). For a period and a
scope (a department id, or ``organisation`` for the organisation-wide reports)
it holds::

    index.html                      a small page listing the scope's reports
    assets/plotly.min.js            the shared assets, byte-identical to the packaged ones
    assets/report.css
    assets/notebook.css
    <scope>/<notebook>.html         the reports of the scope (and a previous good
    <scope>/<notebook>.previous.html  version where the latest failed)
    <scope>/<notebook>.ipynb        the executed notebooks, without the notebook's
                                    own default-parameter cell

The layout mirrors ``outputs/<period>/``, so every link in a report works inside
the unpacked bundle. Nothing else is ever added: not ``prepared/`` (which holds
every department's data), not the manifest, not another scope's folder.

Before a bundle is released, :func:`check_bundle` reads it back and checks every
member (the confidentiality check, a :class:`Screen`):

* its path is one the bundle may hold;
* a shared asset is byte-identical to the packaged asset;
* the text of every other member, decoded (HTML entities, ``\\uXXXX`` escapes in
  plotly's JSON, every string of a notebook's JSON), names no other department:
  not its id (as a token), not its Chinese or English name or an alias, and no
  key (``F-012``, ``CA-003``, ``QO-2026-04`` ...) of a register row that belongs to
  another department.

Text that is the same in every report is masked before the search, so it cannot
raise a false alarm: the message catalogue, KPI names and owners, notebook titles,
complaint categories, process names and the organisation's name. So is the text
of the department's own register rows (a finding of Hotline Operations may
mention the Complaint Centre). The organisation-wide bundle may name every
department; only its paths and assets are checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from qmsnb import io
from qmsnb.config import ORGANISATION, Params, check_department_id
from qmsnb.contract import DATASETS
from qmsnb.i18n import catalogue, period_label, t

#: Folder (inside ``outputs/<period>/``) the bundles are written to.
BUNDLES = "bundles"
#: Shared assets every bundle carries (name → where the packaged original is).
ASSET_NAMES = ("plotly.min.js", "report.css", "notebook.css")
#: Characters of context shown around a finding of the confidentiality check.
_CONTEXT = 60
#: Shortest catalogue fragment that is masked (shorter ones are punctuation).
_MIN_FRAGMENT = 3
#: Where the id of a department may not stand next to: it is a token of its own.
_TOKEN_EDGE = "A-Za-z0-9_"
#: Register keys as they appear in text (``F-012``, ``IA-2026-004``, ``QO-2026-11``).
_KEY_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*[A-Za-z0-9]")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_SLASH_ESCAPE = re.compile(r"\\/")


@dataclass(frozen=True)
class Leak:
    """Something in a bundle that must not be there.

    Attributes:
        scope: the bundle's department (or ``organisation``).
        member: the file inside the bundle.
        kind: ``path`` (a file the bundle may not hold), ``asset`` (a shared asset
            that differs from the packaged one), ``id``, ``name`` or ``row``
            (another department's id, name or register row).
        value: what was found (the id, name, key or path).
        other: the department it belongs to (None for path/asset).
        context: the text around it.
    """

    scope: str
    member: str
    kind: str
    value: str
    other: str | None = None
    context: str = ""

    def describe(self, lang: str) -> str:
        """One line for people: where, what, whose."""
        return t(
            f"bundle.leak.{self.kind}",
            lang,
            member=self.member,
            value=self.value,
            other=self.other or "",
            context=self.context,
        )


@dataclass
class Bundle:
    """One built bundle and what the check found in it."""

    scope: str
    period: str
    path: Path
    members: list[str]
    reports: list[dict[str, Any]]
    sha256: str
    size: int
    leaks: list[Leak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.leaks

    @property
    def file_name(self) -> str:
        return self.path.name


# ---------------------------------------------------------------------------
# Text normalisation
# ---------------------------------------------------------------------------
def decode_text(text: str) -> str:
    """Text as a reader would see it: HTML entities and JSON ``\\uXXXX`` escapes undone.

    plotly writes non-ASCII characters of its figures as ``\\u70ed`` escapes and
    HTML writes ``&lt;``; a name hidden that way is still found.
    """
    text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = _SLASH_ESCAPE.sub("/", text)
    return html.unescape(text)


def _strings(node: Any) -> Iterable[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)


def member_text(name: str, data: bytes) -> str | None:
    """The readable text of a bundle member (None for binary data)."""
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if name.endswith(".ipynb"):
        with contextlib.suppress(json.JSONDecodeError):
            raw = "\n".join(_strings(json.loads(raw)))
    return decode_text(raw)


def _alternation(terms: Iterable[str], flags: int = 0) -> re.Pattern[str] | None:
    unique = sorted({t for t in terms if t}, key=len, reverse=True)
    if not unique:
        return None
    return re.compile("|".join(re.escape(t) for t in unique), flags)


def _fragments(template: str) -> list[str]:
    """The literal parts of a catalogue text (placeholders removed)."""
    parts = re.split(r"\{[^{}]*\}", template)
    return [p.strip() for p in parts if len(p.strip()) >= _MIN_FRAGMENT]


# ---------------------------------------------------------------------------
# The confidentiality check
# ---------------------------------------------------------------------------
#: Register → function giving, per row, the departments that may see it
#: (default: the row's ``department``). Registers declared later plug in here.
ROW_VISIBILITY: dict[str, Any] = {}


def register_visibility(register: str):  # -> decorator
    """Declare who may see a register's rows (a function: frame → Series of sets)."""

    def deco(fn: Any) -> Any:
        ROW_VISIBILITY[register] = fn
        return fn

    return deco


def _split_ids(value: Any) -> set[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return set()
    return {p.strip() for p in re.split(r"[;；,，、\s]+", str(value)) if p.strip()}


def _default_visibility(frame: pd.DataFrame) -> pd.Series:
    return frame["department"].map(lambda d: {str(d)} if pd.notna(d) else set())


@register_visibility("objectives")
def _objectives_visibility(frame: pd.DataFrame) -> pd.Series:
    # an objective is shared by its lead and its supporting departments
    supporting = frame["supporting"] if "supporting" in frame else pd.Series("", index=frame.index)
    return pd.Series(
        [{str(d)} | _split_ids(s) for d, s in zip(frame["department"], supporting, strict=True)],
        index=frame.index,
    )


class Screen:
    """Finds, in a bundle member's text, anything of a department other than the bundle's.

    Args:
        params: the parameters (departments, names, aliases, the vocabulary).
        registers: the period's registers (prepared tables): their row keys, and
            which department each row belongs to.
    """

    def __init__(self, params: Params, registers: Mapping[str, pd.DataFrame]) -> None:
        self.params = params
        self.registers = {k: v for k, v in registers.items() if not v.empty}
        self._allowed: dict[str, list[str]] = {}
        self._containing: dict[tuple[str, bool], dict[str, list[tuple[str, int]]]] = {}

    # -- what is the same in every report ------------------------------------------
    @cached_property
    def vocabulary(self) -> set[str]:
        """Text that is the same in every report (masked before searching)."""
        params = self.params
        words: set[str] = set()
        for texts in catalogue().values():
            for template in texts.values():
                words.update(_fragments(str(template)))
        for kpi in params.catalogue.kpis:
            words.update((kpi.name.zh, kpi.name.en, *kpi.printed_names))
            if kpi.owner:
                words.add(kpi.owner)
        words.update((params.organisation.name.zh, params.organisation.name.en))
        for nb in params.batch.notebooks:
            words.update((nb.title.zh, nb.title.en))
        for cat in params.organisation.complaint_categories:
            words.update((cat.name.zh, cat.name.en))
            for names in cat.subcategories.values():
                words.update((names.zh, names.en))
        processes = self.registers.get("process_register")
        if processes is not None and "process_name" in processes:
            words.update(str(v) for v in processes["process_name"].dropna())
        # a department's own name is never masked by accident
        return {w for w in words if w and w not in self._all_names}

    @cached_property
    def _all_names(self) -> set[str]:
        return {n for names in self._names.values() for n in names}

    # -- departments ---------------------------------------------------------------
    @cached_property
    def _names(self) -> dict[str, set[str]]:
        return {
            dept.id: {n for n in (dept.name.zh, dept.name.en, *dept.aliases) if n.strip()}
            for dept in self.params.organisation.departments
        }

    def _name_pattern(self, scope: str) -> tuple[re.Pattern[str] | None, dict[str, str]]:
        owners: dict[str, str] = {}
        own = self._names.get(scope, set())
        for dept, names in self._names.items():
            if dept == scope:
                continue
            for name in names:
                # an alias shared with the bundle's own department is not a leak
                if name not in own:
                    owners[name.casefold()] = dept
        return _alternation(owners, re.IGNORECASE), owners

    def _id_pattern(self, scope: str) -> re.Pattern[str] | None:
        others = [d for d in self._names if d != scope]
        if not others:
            return None
        body = "|".join(re.escape(d) for d in sorted(others, key=len, reverse=True))
        return re.compile(f"(?<![{_TOKEN_EDGE}])({body})(?![{_TOKEN_EDGE}])")

    # -- register rows ----------------------------------------------------------------
    @cached_property
    def _row_owners(self) -> dict[str, set[str]]:
        """Key of a register row → the departments that may see it."""
        owners: dict[str, set[str]] = {}
        for name, frame in self.registers.items():
            dataset = DATASETS.get(name)
            if dataset is None or "department" not in frame or len(dataset.key) != 1:
                continue
            key = dataset.key[0]
            if key not in frame:
                continue
            visible = ROW_VISIBILITY.get(name, _default_visibility)(frame)
            for value, depts in zip(frame[key], visible, strict=True):
                if pd.notna(value):
                    owners.setdefault(str(value), set()).update(depts)
        return owners

    @cached_property
    def _own_texts(self) -> dict[str, set[str]]:
        """Per department: the text values of its own register rows."""
        texts: dict[str, set[str]] = {}
        for name, frame in self.registers.items():
            dataset = DATASETS.get(name)
            if dataset is None or "department" not in frame:
                continue
            columns = [
                c.name
                for c in dataset.columns
                if c.dtype == "str"
                and c.lookup is None
                and c.values is None
                and c.name not in dataset.key
                and c.name in frame
            ]
            visible = ROW_VISIBILITY.get(name, _default_visibility)(frame)
            for (_, row), depts in zip(frame[columns].iterrows(), visible, strict=True):
                values = {str(v) for v in row.dropna() if len(str(v)) >= _MIN_FRAGMENT}
                for dept in depts:
                    texts.setdefault(dept, set()).update(values)
        return texts

    def _allowed_terms(self, scope: str) -> list[str]:
        """Text masked for ``scope``: the vocabulary, its own names and its own rows' text."""
        if scope not in self._allowed:
            own_rows = {w for w in self._own_texts.get(scope, set()) if w not in self._all_names}
            terms = self.vocabulary | self._names.get(scope, set()) | own_rows
            self._allowed[scope] = sorted(terms, key=len, reverse=True)
        return self._allowed[scope]

    def _covered(self, scope: str, text: str, start: int, end: int, exact: bool) -> bool:
        """Whether ``text[start:end]`` lies inside an occurrence of an allowed term.

        Only the few terms that contain the hit are tried, at the offsets where
        they contain it, so masking costs nothing for text without hits. A term
        must be longer than the hit: the word "Complaints" of a message never
        masks the id ``complaints``. ``exact``: compare case-sensitively (ids);
        otherwise case-insensitively (names).
        """

        def norm(value: str) -> str:
            return value if exact else value.casefold()

        hit = norm(text[start:end])
        cache = self._containing.setdefault((scope, exact), {})
        if hit not in cache:
            cache[hit] = [
                (term, offset)
                for term in self._allowed_terms(scope)
                if len(term) > len(hit)
                for offset in _offsets(norm(term), hit)
            ]
        for term, offset in cache[hit]:
            begin = start - offset
            if begin >= 0 and norm(text[begin : begin + len(term)]) == norm(term):
                return True
        return False

    # -- the search ----------------------------------------------------------------------
    def scan(self, scope: str, member: str, text: str) -> list[Leak]:
        """Everything of another department in ``text`` (already decoded)."""
        if scope == ORGANISATION:
            return []
        leaks: list[Leak] = []
        seen: set[tuple[str, str]] = set()

        def add(kind: str, value: str, other: str, start: int, end: int) -> None:
            if (kind, value) in seen or self._covered(scope, text, start, end, kind != "name"):
                return
            seen.add((kind, value))
            context = text[max(0, start - _CONTEXT) : end + _CONTEXT].replace("\n", " ")
            leaks.append(Leak(scope, member, kind, value, other, context))

        names, owners = self._name_pattern(scope)
        if names is not None:
            for m in names.finditer(text):
                add("name", m.group(0), owners[m.group(0).casefold()], m.start(), m.end())
        ids = self._id_pattern(scope)
        if ids is not None:
            for m in ids.finditer(text):
                add("id", m.group(0), m.group(0), m.start(), m.end())
        foreign = {
            key
            for key in set(_KEY_TOKEN.findall(text))
            if key in self._row_owners and scope not in self._row_owners[key]
        }
        for key in sorted(foreign):
            token = f"(?<![{_TOKEN_EDGE}-]){re.escape(key)}(?![{_TOKEN_EDGE}-])"
            for m in re.finditer(token, text):
                add("row", key, ", ".join(sorted(self._row_owners[key])), m.start(), m.end())
        return leaks


def _offsets(term: str, part: str) -> list[int]:
    found, start = [], term.find(part)
    while start >= 0:
        found.append(start)
        start = term.find(part, start + 1)
    return found


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------
def packaged_assets() -> dict[str, bytes]:
    """The shared assets as the package ships them (what every bundle must carry)."""
    import tempfile

    from qmsnb import publish

    with tempfile.TemporaryDirectory(prefix="qmsnb-assets-") as tmp:
        publish.write_assets(Path(tmp))
        return {name: io.read_bytes(Path(tmp) / name) for name in ASSET_NAMES}


def redact_notebook(data: bytes) -> bytes:
    """An executed notebook without its own ``parameters`` cell.

    That cell holds the notebook's defaults (often some department's id); the
    values the report ran with are in papermill's ``injected-parameters`` cell,
    which stays.
    """
    nb = json.loads(data.decode("utf-8"))
    nb["cells"] = [
        c
        for c in nb.get("cells", [])
        if "parameters" not in (c.get("metadata", {}).get("tags") or [])
    ]
    return (json.dumps(nb, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def bundle_name(period: str, scope: str) -> str:
    """``qmsnb-2026-10-hotline_ops.zip``."""
    return f"qmsnb-{period}-{check_department_id(scope)}.zip"


def scopes_with_reports(manifest: Mapping[str, Any], params: Params) -> list[str]:
    """The scopes of the run that have at least one report file, organisation first."""
    found = {
        r["department"] for r in manifest.get("reports", []) if r.get("html") or r.get("previous")
    }
    return [s for s in (ORGANISATION, *params.departments) if s in found]


def _allowed_member(scope: str, name: str) -> bool:
    if name == "index.html" or name in {f"assets/{a}" for a in ASSET_NAMES}:
        return True
    parts = name.split("/")
    return len(parts) == 2 and parts[0] == scope and parts[1].endswith((".html", ".ipynb"))


def _index_page(
    params: Params, period: str, scope: str, reports: Sequence[dict[str, Any]], lang: str
) -> bytes:
    from qmsnb.publish import _jinja

    items = []
    for report in reports:
        spec = params.notebooks.get(report["notebook"])
        items.append(
            {
                "title": spec.title(lang) if spec else report["notebook"],
                "href": report.get("html") or report.get("previous"),
                "status": report["status"],
                "label": t(f"portal.status.{report['status']}", lang),
                "stale": not report.get("html"),
            }
        )
    page = (
        _jinja()
        .get_template("bundle.html.j2")
        .render(
            html_lang="zh-CN" if lang == "zh" else "en",
            title=t(
                "bundle.title",
                lang,
                scope=params.department_name(scope, lang),
                period=period_label(period, lang),
            ),
            subtitle=t("bundle.subtitle", lang, org=params.organisation.name(lang)),
            note=t(
                "bundle.note_org" if scope == ORGANISATION else "bundle.note",
                lang,
                scope=params.department_name(scope, lang),
            ),
            stale_label=t("portal.previous_good", lang),
            reports=items,
            css=io.read_text(Path(__file__).parent / "templates" / "portal.css"),
        )
    )
    return page.encode("utf-8")


def build_bundle(
    params: Params,
    period_dir: Path,
    manifest: Mapping[str, Any],
    scope: str,
    lang: str,
    assets: Mapping[str, bytes],
) -> Bundle:
    """Write one scope's bundle into ``<period_dir>/bundles/`` (not yet checked)."""
    check_department_id(scope)
    period = manifest["period"]
    reports = [r for r in manifest.get("reports", []) if r["department"] == scope]
    index = _index_page(params, period, scope, reports, lang)
    members: list[tuple[str, bytes]] = [("index.html", index)]
    members += [(f"assets/{name}", assets[name]) for name in ASSET_NAMES]
    for report in reports:
        for key in ("html", "previous", "ipynb"):
            relative = report.get(key)
            if not relative:
                continue
            source = period_dir / relative
            if not source.is_file():
                continue
            data = io.read_bytes(source)
            if relative.endswith(".ipynb"):
                data = redact_notebook(data)
            members.append((relative, data))
    path = io.write_zip(period_dir / BUNDLES / bundle_name(period, scope), members)
    digest = hashlib.sha256(io.read_bytes(path)).hexdigest()
    return Bundle(
        scope=scope,
        period=period,
        path=path,
        members=[n for n, _ in members],
        reports=reports,
        sha256=digest,
        size=path.stat().st_size,
    )


def check_bundle(bundle: Bundle, screen: Screen, assets: Mapping[str, bytes]) -> list[Leak]:
    """Read the bundle back and check every member (see the module docstring)."""
    leaks: list[Leak] = []
    for name, data in io.read_zip(bundle.path):
        if not _allowed_member(bundle.scope, name):
            leaks.append(Leak(bundle.scope, name, "path", name))
            continue
        if name.startswith("assets/"):
            if data != assets[name.split("/", 1)[1]]:
                leaks.append(Leak(bundle.scope, name, "asset", name))
            continue
        text = member_text(name, data)
        if text is None:
            leaks.append(Leak(bundle.scope, name, "path", name))
            continue
        leaks.extend(screen.scan(bundle.scope, name, text))
    return leaks


def build_bundles(
    params: Params,
    period_dir: Path,
    *,
    scopes: Sequence[str] | None = None,
    lang: str | None = None,
) -> list[Bundle]:
    """Build and check the bundle of every scope with reports in ``period_dir``.

    Returns every bundle with its check result; a bundle with leaks must not be
    sent (``distribute`` refuses to send anything then).

    Raises:
        UsageError: the period has no manifest (run the batch first).
    """
    from qmsnb import prepare
    from qmsnb.exceptions import UsageError

    manifest_file = period_dir / "manifest.json"
    if not manifest_file.is_file():
        raise UsageError("error.distribution.no_run", folder=str(period_dir))
    manifest = io.read_json(manifest_file)
    language = lang or manifest.get("lang") or params.organisation.report_language
    prepared = period_dir / "prepared"
    registers = prepare.read_prepared(prepared)[1] if (prepared / "meta.json").is_file() else {}
    screen = Screen(params, registers)
    assets = packaged_assets()
    wanted = scopes_with_reports(manifest, params)
    if scopes is not None:
        wanted = [s for s in wanted if s in scopes]
    bundles = []
    for scope in wanted:
        bundle = build_bundle(params, period_dir, manifest, scope, language, assets)
        bundle.leaks = check_bundle(bundle, screen, assets)
        bundles.append(bundle)
    return bundles
