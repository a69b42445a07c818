"""The error hierarchy of qmsnb.

Every error a user can cause (a bad parameter file, a missing export, a malformed
column) is a :class:`QmsnbError`. It carries a stable reason code, the structured
facts (file, key, column, row, expected) and an i18n message key, so the CLI can
say what went wrong in the user's language without a traceback. Foreign errors are
wrapped once, with context, ``from exc``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Exit codes of the ``qmsnb`` command (documented in the README)."""

    OK = 0
    REPORTS_FAILED = 1
    USER_ERROR = 2
    GATE_FAILED = 3
    SEND_FAILED = 4
    CONFIDENTIALITY = 5
    INTERRUPTED = 130
    PROGRAM_ERROR = 70


class QmsnbError(Exception):
    """Root of every error qmsnb raises on purpose.

    Args:
        key: i18n catalogue key of the message (e.g. ``"error.config.unknown_key"``).
        **facts: values the message template uses (file, key, column, row, ...).
    """

    exit_code: ExitCode = ExitCode.USER_ERROR

    def __init__(self, key: str, /, **facts: Any) -> None:
        self.key = key
        self.facts = facts
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        """The message in ``lang`` (zh or en), facts filled in."""
        from qmsnb.i18n import t

        return t(self.key, lang, **self.facts)


class ConfigError(QmsnbError):
    """A parameter file in ``params/`` is missing, malformed or inconsistent."""


class DataError(QmsnbError):
    """An export or register cannot be read or does not fit the data contract."""


class UsageError(QmsnbError):
    """The command was asked for something that does not exist (department, notebook)."""


class GateFailed(QmsnbError):
    """The data-quality gate found a critical problem; reports that need it are not built."""

    exit_code = ExitCode.GATE_FAILED


class RecordsError(QmsnbError):
    """A record could not be saved to the records store (validation or conflict).

    ``facts["field"]`` names the field at fault (when there is one). A fact may be
    bilingual (``{"zh": "等级", "en": "Grade"}``): the message picks its language.
    """

    def message(self, lang: str) -> str:
        from qmsnb.i18n import pick, t

        facts = {
            k: pick(v, lang) if isinstance(v, dict) and {"zh", "en"} <= set(v) else v
            for k, v in self.facts.items()
        }
        return t(self.key, lang, **facts)


class RecordsConflict(RecordsError):
    """Someone else changed the same field of the same record since it was read."""


class RecordsImportError(RecordsError):
    """A row of an imported table was refused; wraps the row's own error.

    The message is the row's place (file, row) followed by the row's error, in
    the same language.
    """

    def __init__(self, inner: RecordsError, file: str, row: int) -> None:
        self.inner = inner
        super().__init__("error.records.import_row", **{**inner.facts, "file": file, "row": row})

    def message(self, lang: str) -> str:
        from qmsnb.i18n import t

        where = t(self.key, lang, file=self.facts["file"], row=self.facts["row"])
        return f"{where}{self.inner.message(lang)}"


class PublishError(QmsnbError):
    """Publishing a report or the portal failed a safety check."""

    exit_code = ExitCode.PROGRAM_ERROR


class DistributionError(QmsnbError):
    """Reports cannot be distributed as asked (no distribution params, no run, a lock)."""


class ConfidentialityError(QmsnbError):
    """A department bundle holds something of another department; nothing was sent.

    ``leaks`` lists every finding of the confidentiality check
    (:class:`qmsnb.bundles.Leak`).
    """

    exit_code = ExitCode.CONFIDENTIALITY

    #: How many findings the message lists (all are in ``leaks``).
    shown = 20

    def __init__(self, key: str, /, leaks: list[Any] | None = None, **facts: Any) -> None:
        self.leaks = list(leaks or [])
        super().__init__(key, **facts)

    def message(self, lang: str) -> str:
        lines = [super().message(lang)]
        lines += [f"  - {leak.describe(lang)}" for leak in self.leaks[: self.shown]]
        if len(self.leaks) > self.shown:
            lines.append(f"  … (+{len(self.leaks) - self.shown})")
        return "\n".join(lines)
