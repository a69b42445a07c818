"""Distribution: every recipient gets their department's bundle (or a link) by e-mail.

``qmsnb distribute --period 2026-10`` does, for the period's latest run:

1. build every scope's bundle and run the confidentiality check on it
   (:mod:`qmsnb.bundles`); if any bundle holds anything of another department,
   nothing at all is sent (:class:`~qmsnb.exceptions.ConfidentialityError`);
2. pair each bundle with the recipients ``params/distribution.yaml`` names for
   its scope: a department's addresses get that department's bundle, the
   ``organisation`` addresses the organisation-wide bundle, nobody anything else;
3. send one message per recipient through the SMTP server of the params
   (STARTTLS, SSL or plain; the password from the environment variable the params
   name), or, with ``--outbox``, write each message as an ``.eml`` file to
   ``outputs/<period>/outbox/`` for review instead.

Every send is recorded in the period's send ledger ``outputs/<period>/distribution.json``
(written atomically after each message). A failed send is reported per recipient
and the same command retries it; whoever already got this run's bundle is skipped,
so nobody receives it twice. A new run of the period starts a new ledger (its
reports are new). Only one ``distribute`` works on a period at a time (a lock).
The guarantee is at-least-once: a message the server accepted just before the
process was killed (ledger not yet written) is sent again on retry.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from qmsnb import io
from qmsnb.bundles import Bundle, build_bundles
from qmsnb.config import ORGANISATION, Distribution, Params
from qmsnb.exceptions import ConfidentialityError, DistributionError, ExitCode
from qmsnb.i18n import period_label, t
from qmsnb.periods import Period

LEDGER = "distribution.json"
OUTBOX = "outbox"
_LOCK = ".distribution.lock"


@dataclass
class Delivery:
    """One message: a bundle for one recipient, and what became of it.

    ``status``: ``sent``, ``already_sent`` (an earlier attempt of this run got it
    through), ``failed``, ``written`` (to the outbox) or ``too_large``.
    """

    scope: str
    address: str
    bundle: Bundle
    status: str = "pending"
    error: str | None = None
    message_id: str | None = None
    path: Path | None = None

    @property
    def key(self) -> str:
        return ledger_key(self.scope, self.address)


@dataclass
class DistributionResult:
    """What ``distribute`` did for one period."""

    period: str
    run_id: str
    bundles: list[Bundle]
    deliveries: list[Delivery] = field(default_factory=list)
    unaddressed: list[str] = field(default_factory=list)
    outbox: Path | None = None
    ledger: Path | None = None

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status in ("failed", "too_large")]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.SEND_FAILED if self.failed else ExitCode.OK


def ledger_key(scope: str, address: str) -> str:
    """``hotline_ops:wang.lei@example.com`` (the address part, lower-cased)."""
    return f"{scope}:{parseaddr(address)[1].lower()}"


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------
def _header_text(text: str) -> str:
    return re.sub(r"[\r\n\t]+", " ", text).strip()


def bundle_link(dist: Distribution, bundle: Bundle) -> str | None:
    """Where the bundle is served when ``delivery: link`` (``<link_base>/<period>/bundles/…``)."""
    if dist.delivery != "link" or not dist.link_base:
        return None
    return f"{dist.link_base.rstrip('/')}/{bundle.period}/bundles/{bundle.file_name}"


def build_message(
    params: Params, dist: Distribution, bundle: Bundle, address: str, run_id: str, lang: str
) -> EmailMessage:
    """The message for one recipient: text body, the bundle attached (or linked)."""
    scope_name = params.department_name(bundle.scope, lang)
    period = period_label(bundle.period, lang)
    titles = []
    for report in bundle.reports:
        spec = params.notebooks.get(report["notebook"])
        title = spec.title(lang) if spec else report["notebook"]
        status = t(f"portal.status.{report['status']}", lang)
        titles.append(f"- {title} ({status})")
    link = bundle_link(dist, bundle)
    body = t(
        "mail.body_org" if bundle.scope == ORGANISATION else "mail.body",
        lang,
        scope=scope_name,
        period=period,
        org=params.organisation.name(lang),
        reports="\n".join(titles),
        how=t("mail.how_link", lang, link=link)
        if link
        else t("mail.how_attachment", lang, file=bundle.file_name),
        run=run_id,
    )
    message = EmailMessage()
    message["Subject"] = _header_text(
        t("mail.subject", lang, scope=scope_name, period=period, org=params.organisation.name(lang))
    )
    message["From"] = dist.smtp.sender
    message["To"] = address
    message["Date"] = format_datetime(datetime.now().astimezone())
    domain = parseaddr(dist.smtp.sender)[1].rpartition("@")[2] or None
    message["Message-ID"] = make_msgid("qmsnb", domain=domain)
    message["X-Qmsnb-Run"] = run_id
    message["X-Qmsnb-Bundle"] = f"{bundle.file_name} sha256={bundle.sha256}"
    message.set_content(body)
    if link is None:
        message.add_attachment(
            io.read_bytes(bundle.path),
            maintype="application",
            subtype="zip",
            filename=bundle.file_name,
        )
    return message


# ---------------------------------------------------------------------------
# SMTP
# ---------------------------------------------------------------------------
def smtp_password(dist: Distribution) -> str | None:
    """The SMTP password from the environment (None when no login is configured).

    Raises:
        DistributionError: a username is set but the environment variable is not.
    """
    if not dist.smtp.username:
        return None
    password = os.environ.get(dist.smtp.password_env)
    if not password:
        raise DistributionError(
            "error.distribution.no_password", env=dist.smtp.password_env, user=dist.smtp.username
        )
    return password


class SmtpSender:
    """One SMTP connection, reopened after a connection-level failure."""

    def __init__(self, dist: Distribution, password: str | None) -> None:
        self.smtp_params = dist.smtp
        self.password = password
        self._client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        cfg = self.smtp_params
        context = ssl.create_default_context()
        if cfg.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=cfg.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
            if cfg.security == "starttls":
                client.starttls(context=context)
        if cfg.username:
            client.login(cfg.username, self.password or "")
        return client

    def send(self, message: EmailMessage) -> None:
        """Send one message; raises the SMTP or socket error on failure."""
        if self._client is None:
            self._client = self._connect()
        try:
            self._client.send_message(message)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
            raise  # the server answered: the connection is still good
        except OSError:  # disconnected or a socket error (SMTPException is an OSError)
            self.close()
            raise

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._client.quit()
            self._client = None

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [
            f"{code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg}"
            for code, msg in exc.recipients.values()
        ]
        return "; ".join(codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        msg = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"{exc.smtp_code} {msg}"
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------
# The ledger
# ---------------------------------------------------------------------------
def read_ledger(period_dir: Path, run_id: str) -> dict[str, Any]:
    """The period's send ledger for ``run_id`` (a fresh one if none, or another run's)."""
    path = period_dir / LEDGER
    if path.is_file():
        ledger = io.read_json(path)
        if ledger.get("run_id") == run_id:
            return ledger
    return {"period": period_dir.name, "run_id": run_id, "deliveries": {}}


def _record(ledger: dict[str, Any], delivery: Delivery, when: str) -> None:
    entry = ledger["deliveries"].setdefault(
        delivery.key, {"scope": delivery.scope, "address": delivery.address, "attempts": 0}
    )
    entry["attempts"] += 1
    entry["last_attempt"] = when
    entry["status"] = "sent" if delivery.status == "sent" else "failed"
    entry["bundle"] = delivery.bundle.file_name
    entry["bundle_sha256"] = delivery.bundle.sha256
    entry["error"] = delivery.error
    if delivery.status == "sent":
        entry["sent_at"] = when
        entry["message_id"] = delivery.message_id


# ---------------------------------------------------------------------------
# The whole step
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def _period_lock(period_dir: Path) -> Iterator[None]:
    with io.exclusive_lock(period_dir / _LOCK) as taken:
        if not taken:
            raise DistributionError("error.distribution.locked", folder=str(period_dir))
        yield


def plan_deliveries(
    dist: Distribution, bundles: Sequence[Bundle]
) -> tuple[list[Delivery], list[str]]:
    """Each bundle paired with its scope's recipients; scopes with nobody to receive them."""
    deliveries, unaddressed = [], []
    for bundle in bundles:
        addresses = dist.recipients.get(bundle.scope, ())
        if not addresses:
            unaddressed.append(bundle.scope)
        seen: set[str] = set()
        for address in addresses:
            delivery = Delivery(bundle.scope, address, bundle)
            if delivery.key not in seen:
                seen.add(delivery.key)
                deliveries.append(delivery)
    return deliveries, unaddressed


def distribute(
    params: Params,
    period: str,
    *,
    outbox: bool = False,
    scopes: Sequence[str] | None = None,
    lang: str | None = None,
) -> DistributionResult:
    """Send (or write to the outbox) every recipient's bundle for ``period``.

    Args:
        outbox: write ``.eml`` files to ``outputs/<period>/outbox/`` instead of sending.
        scopes: only these departments (and/or ``organisation``).
        lang: language of the messages (distribution params, else the run's language).

    Raises:
        DistributionError: no ``params/distribution.yaml``, no run for the period,
            another ``distribute`` at work on it, or the SMTP password is missing.
        ConfidentialityError: a bundle holds something of another department;
            nothing was sent or written.
    """
    period = str(Period.parse(period))
    dist = params.distribution
    if dist is None:
        raise DistributionError("error.distribution.no_params", folder=str(params.folder))
    for scope in scopes or ():
        if scope != ORGANISATION:
            params.department(scope)
    period_dir = params.output_dir / period
    if not (period_dir / "manifest.json").is_file():
        raise DistributionError("error.distribution.no_run", folder=str(period_dir))
    with _period_lock(period_dir):
        manifest = io.read_json(period_dir / "manifest.json")
        language = (
            lang or dist.language or manifest.get("lang") or params.organisation.report_language
        )
        bundles = build_bundles(params, period_dir, scopes=scopes, lang=language)
        leaks = [leak for b in bundles for leak in b.leaks]
        if leaks:
            raise ConfidentialityError(
                "error.distribution.leaks",
                leaks=leaks,
                count=len(leaks),
                bundles=", ".join(sorted({leak.scope for leak in leaks})),
                first=leaks[0].describe(language),
            )
        deliveries, unaddressed = plan_deliveries(dist, bundles)
        result = DistributionResult(period, manifest["run_id"], bundles, deliveries, unaddressed)
        limit = dist.max_attachment_mb * 1024 * 1024
        if outbox:
            result.outbox = period_dir / OUTBOX
            for delivery in deliveries:
                message = build_message(
                    params, dist, delivery.bundle, delivery.address, result.run_id, language
                )
                name = re.sub(r"[^A-Za-z0-9_.@-]+", "_", delivery.key.replace(":", "--"))
                delivery.path = io.write_message(result.outbox / f"{name}.eml", message)
                delivery.message_id = message["Message-ID"]
                delivery.status = "written"
            return result
        password = smtp_password(dist) if deliveries else None
        ledger = read_ledger(period_dir, result.run_id)
        result.ledger = period_dir / LEDGER
        with SmtpSender(dist, password) as sender:
            for delivery in deliveries:
                done = ledger["deliveries"].get(delivery.key, {})
                if done.get("status") == "sent":
                    delivery.status = "already_sent"
                    delivery.message_id = done.get("message_id")
                    continue
                if dist.delivery == "attachment" and delivery.bundle.size > limit:
                    delivery.status, delivery.error = (
                        "too_large",
                        t(
                            "mail.too_large",
                            language,
                            size=f"{delivery.bundle.size / 1048576:.1f}",
                            limit=dist.max_attachment_mb,
                        ),
                    )
                else:
                    message = build_message(
                        params, dist, delivery.bundle, delivery.address, result.run_id, language
                    )
                    try:
                        sender.send(message)
                    except (smtplib.SMTPException, OSError) as exc:
                        delivery.status, delivery.error = "failed", _error_text(exc)
                    else:
                        delivery.status = "sent"
                        delivery.message_id = message["Message-ID"]
                _record(ledger, delivery, datetime.now().isoformat(timespec="seconds"))
                io.write_json(result.ledger, ledger)
        return result


# ---------------------------------------------------------------------------
# Checking only, and what the command prints
# ---------------------------------------------------------------------------
def check_bundles(
    params: Params, period: str, *, scopes: Sequence[str] | None = None
) -> list[Bundle]:
    """Build and check the period's bundles without sending anything."""
    period = str(Period.parse(period))
    for scope in scopes or ():
        if scope != ORGANISATION:
            params.department(scope)
    period_dir = params.output_dir / period
    with _period_lock(period_dir):
        return build_bundles(params, period_dir, scopes=scopes)


def bundle_lines(bundles: Sequence[Bundle], lang: str) -> list[str]:
    """One line per bundle, and every finding of the confidentiality check."""
    lines = []
    for bundle in bundles:
        lines.append(
            t(
                "distribute.bundle_line",
                lang,
                scope=bundle.scope,
                file=bundle.path,
                size=f"{bundle.size / 1024:,.0f}",
                count=len(bundle.members),
                verdict=t("distribute.passed" if bundle.ok else "distribute.failed", lang),
            )
        )
        lines += [f"  - {leak.describe(lang)}" for leak in bundle.leaks]
    return lines


def result_lines(result: DistributionResult, lang: str) -> list[str]:
    """One line per recipient, the scopes nobody receives, and a summary."""
    lines = []
    for d in result.deliveries:
        error = f" ({d.error})" if d.error else ""
        lines.append(
            t(
                "distribute.line",
                lang,
                scope=d.scope,
                address=d.address,
                status=t(f"distribute.status.{d.status}", lang),
                error=error,
            )
        )
    if result.unaddressed:
        lines.append(t("distribute.unaddressed", lang, scopes=", ".join(result.unaddressed)))
    if result.outbox is not None:
        lines.append(
            t("distribute.outbox", lang, count=len(result.deliveries), folder=result.outbox)
        )
        return lines
    counts = {s: sum(d.status == s for d in result.deliveries) for s in ("sent", "already_sent")}
    lines.append(
        t(
            "distribute.summary",
            lang,
            period=result.period,
            total=len(result.deliveries),
            sent=counts["sent"],
            skipped=counts["already_sent"],
            failed=len(result.failed),
        )
    )
    if result.failed:
        lines.append(t("distribute.retry", lang))
    return lines
