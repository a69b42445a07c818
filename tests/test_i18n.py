"""The catalogue: every entry complete in zh and en, with the same placeholders."""

from __future__ import annotations

import string

from qmsnb.i18n import catalogue, fmt_change, fmt_number, period_label, t


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_entry_has_both_languages_and_same_placeholders() -> None:
    entries = catalogue()
    assert len(entries) > 100
    for key, texts in entries.items():
        assert set(texts) == {"zh", "en"}, key
        assert texts["zh"].strip() and texts["en"].strip(), key
        assert _fields(texts["zh"]) == _fields(texts["en"]), key


def test_chinese_entries_are_chinese() -> None:
    """A zh entry that is plain ASCII text is almost always an untranslated copy."""
    allowed_ascii = {"report.subtitle", "portal.failed_line"}
    for key, texts in catalogue().items():
        zh = texts["zh"]
        letters = [c for c in zh if c.isalpha()]
        if key in allowed_ascii or not letters:
            continue
        assert any("\u4e00" <= c <= "\u9fff" for c in zh), (key, zh)


def test_formatting() -> None:
    assert (
        t(
            "objectives.narrative.counts",
            "en",
            total=14,
            period="Oct 2026",
            red=3,
            yellow=2,
            green=9,
        )
        == "3 of 14 indicators are red, 2 yellow and 9 green in Oct 2026."
    )
    assert period_label("2026-10", "zh") == "2026年10月"
    assert period_label("2026-01", "en") == "Jan 2026"
    assert fmt_number(85.333, "%") == "85.3%"
    assert fmt_number(1204, "count") == "1,204"
    assert fmt_number(float("nan"), "%") == "–"
    assert fmt_change(-1.26) == "-1.3 pp"
