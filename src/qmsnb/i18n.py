"""Every string a user sees, in zh-CN and en.

The catalogue lives in ``qmsnb/locale/*.yaml``, one file per area (errors, portal,
objectives, ...), each entry ``key: {zh: ..., en: ...}`` with ``str.format``
placeholders. Names that belong to the organisation (departments, KPIs) come from
``params/`` instead and are picked with :func:`pick`.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """All catalogue entries, merged from every locale file (keys must be unique)."""
    merged: dict[str, dict[str, str]] = {}
    folder = resources.files("qmsnb") / "locale"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        for key, texts in data.items():
            if key in merged:
                raise RuntimeError(f"i18n key {key!r} defined twice (second in {entry.name})")
            merged[key] = texts
    return merged


class _Facts(dict[str, Any]):
    def __missing__(self, key: str) -> str:  # a missing fact shows as {key}, never crashes
        return "{" + key + "}"


def check_lang(lang: str) -> Lang:
    """Return ``lang`` if it is a supported language, else raise ValueError."""
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r}; use one of {', '.join(LANGS)}")
    return lang  # type: ignore[return-value]


def t(key: str, lang: str, /, **facts: Any) -> str:
    """The catalogue text for ``key`` in ``lang`` with ``facts`` filled in.

    Raises:
        KeyError: the key is not in the catalogue (a programming error).
    """
    texts = catalogue()[key]
    template = texts.get(lang) or texts["en"]
    return string.Formatter().vformat(template, (), _Facts(facts))


def pick(names: Mapping[str, str], lang: str) -> str:
    """Choose the ``lang`` entry of a ``{zh:, en:}`` mapping from params."""
    return names.get(lang) or names.get("en") or next(iter(names.values()), "")


def period_label(period: str, lang: str) -> str:
    """``2026-10`` as ``2026年10月`` or ``Oct 2026``."""
    year, month = period.split("-")
    if lang == "zh":
        return f"{int(year)}年{int(month)}月"
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return f"{months[int(month) - 1]} {year}"


def period_short(period: str, lang: str) -> str:
    """``2026-10`` as ``26年10月`` / ``Oct 26`` for axis ticks."""
    year, month = period.split("-")
    if lang == "zh":
        return f"{year[2:]}年{int(month)}月"
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return f"{months[int(month) - 1]} {year[2:]}"


def fmt_number(value: float | None, unit: str = "", digits: int = 1) -> str:
    """A number for a report: ``85.3%``, ``1,204``; a dash for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "%":
        return f"{value:.{digits}f}%"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}{unit}"


def fmt_change(value: float | None, unit: str = "%") -> str:
    """A signed change: ``+1.2 pp`` (percentage points) or ``-3``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    suffix = " pp" if unit == "%" else ""
    return f"{value:+.1f}{suffix}"
