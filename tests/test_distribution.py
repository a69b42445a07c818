"""Department bundles, the confidentiality check, and distribution by a real SMTP exchange.

One batch run on the small demo (quality objectives for the organisation and three
departments, chosen so that shared objectives cross department lines) is built
once per session; each test works on its own copy of the project.
"""

from __future__ import annotations

import email
import html
import json
import re
import shutil
import socket
import zipfile
from dataclasses import replace
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from qmsnb import bundles, distribute, io, prepare, safety
from qmsnb.config import ORGANISATION, Distribution, load_params
from qmsnb.exceptions import ConfidentialityError, DistributionError, ExitCode
from tests.conftest import copy_cached

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PERIOD = "2026-10"
#: Departments of the run: quality supports objectives led by hotline_ops and
#: cs_division; hotline_ops supports objectives led by complaints, admin, cs_division.
SCOPES = ["organisation", "hotline_ops", "complaints", "quality"]


@pytest.fixture(scope="session")
def built_project(cached_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project with one batch run of 2026-10 (read-only for tests)."""
    from qmsnb.batch import run_batch

    root = tmp_path_factory.mktemp("built") / "project"
    copy_cached(cached_demo, root)
    params = load_params(root / "params")
    result = run_batch(params, PERIOD, notebooks=["quality_objectives"], departments=SCOPES)
    assert {r["status"] for r in result.reports} == {"ok"}
    return root


@pytest.fixture
def built(built_project: Path, tmp_path: Path) -> Path:
    """A private copy of the built project (a test may send, write and tamper)."""
    root = tmp_path / "project"
    shutil.copytree(built_project, root)
    return root


# ---------------------------------------------------------------------------
# A real SMTP server
# ---------------------------------------------------------------------------
class Mailbox:
    """aiosmtpd handler: keeps every accepted message; refuses listed recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def received_by(self, address: str) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(content, policy=policy.default)
            for rcpts, content in self.messages
            if address in rcpts
        ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Login:
    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == b"quality@example.com" and auth_data.password == b"s3cret"
        )
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server():
    """A local SMTP server that requires a login (plain connection)."""
    box = Mailbox()
    port = _free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        auth_required=True,
        auth_require_tls=False,
        authenticator=_Login(),
    )
    controller.start()
    box.port = port  # type: ignore[attr-defined]
    try:
        yield box
    finally:
        controller.stop()


RECIPIENTS = {
    "organisation": ["总经理 <gm@example.com>"],
    "hotline_ops": ["王磊 <wang.lei@example.com>", "ops.deputy@example.com"],
    "complaints": ["chen.chen@example.com"],
    "quality": ["zhao.min@example.com"],
}


def _with_distribution(root: Path, port: int, **extra) -> object:
    params = load_params(root / "params")
    dist = Distribution.model_validate(
        {
            "smtp": {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "sender": "质量管理办公室 <quality@example.com>",
                "username": "quality@example.com",
                "timeout_seconds": 10,
            },
            "recipients": RECIPIENTS,
            **extra,
        }
    )
    return replace(params, optional={**params.optional, "distribution.yaml": dist})


# ---------------------------------------------------------------------------
# Bundles and the confidentiality check
# ---------------------------------------------------------------------------
def _other_terms(params, scope: str) -> dict[str, str]:
    """Every id, name and alias of the departments other than ``scope``."""
    terms = {}
    own = set()
    if scope != ORGANISATION:
        d = params.departments[scope]
        own = {d.name.zh, d.name.en, *d.aliases}
    for dept in params.organisation.departments:
        if dept.id == scope:
            continue
        for name in (dept.name.zh, dept.name.en, *dept.aliases):
            if name not in own:
                terms[name] = dept.id
    return terms


def _readable(name: str, data: bytes) -> str:
    text = data.decode("utf-8")
    if name.endswith(".ipynb"):
        nb = json.loads(text)
        text = json.dumps(nb, ensure_ascii=False)
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return html.unescape(text)


@pytest.mark.slow
def test_each_bundle_holds_its_own_reports_and_nothing_of_any_other_department(built: Path):
    params = load_params(built / "params")
    assert safety.check_folder(built / "outputs" / PERIOD) == []  # real reports pass the page check
    result = bundles.build_bundles(params, built / "outputs" / PERIOD)
    assert [b.scope for b in result] == SCOPES
    kpi_names = sorted(
        {n for k in params.catalogue.kpis for n in (k.name.zh, k.name.en, *k.printed_names)},
        key=len,
        reverse=True,
    )
    registers = prepare.read_prepared(built / "outputs" / PERIOD / "prepared")[1]

    def own_texts(scope: str) -> list[str]:
        texts = set()
        for frame in registers.values():
            if "department" in frame:
                rows = frame[frame["department"] == scope].select_dtypes(
                    include=["string", "object"]
                )
                texts.update(str(v) for v in rows.stack() if isinstance(v, str) and len(v) > 3)
        return sorted(texts, key=len, reverse=True)

    for bundle in result:
        assert bundle.ok, [leak.describe("en") for leak in bundle.leaks]
        with zipfile.ZipFile(bundle.path) as archive:
            names = archive.namelist()
            assert sorted(names) == sorted(
                [
                    "index.html",
                    "assets/plotly.min.js",
                    "assets/report.css",
                    "assets/notebook.css",
                    f"{bundle.scope}/quality_objectives.html",
                    f"{bundle.scope}/quality_objectives.ipynb",
                ]
            )
            assert not any(n.startswith("prepared/") or n == "manifest.json" for n in names)
            assert (
                archive.read("assets/plotly.min.js")
                == (built / "outputs" / PERIOD / "assets" / "plotly.min.js").read_bytes()
            )
            if bundle.scope == ORGANISATION:
                continue
            # an independent scan: every member, the executed notebook included
            for name in names:
                if name.startswith("assets/"):
                    continue
                text = _readable(name, archive.read(name))
                for kpi in kpi_names:  # indicator names like 投诉中心直接解决率 are not departments
                    text = text.replace(kpi, "")
                for own in own_texts(bundle.scope):  # its own records may name others (品质部 赵敏)
                    text = text.replace(own, "")
                for term, dept in _other_terms(params, bundle.scope).items():
                    assert term not in text, f"{bundle.scope}/{name} names {dept} as {term!r}"
                for dept in params.departments:
                    if dept != bundle.scope:
                        assert f'"{dept}"' not in text, f"{bundle.scope}/{name} holds id {dept}"
                        assert f"/{dept}/" not in text, f"{bundle.scope}/{name} links {dept}"
            nb = json.loads(archive.read(f"{bundle.scope}/quality_objectives.ipynb"))
            injected = [
                c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
            ]
            assert f'department = "{bundle.scope}"' in "".join(injected[0]["source"])
            assert not [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]


@pytest.mark.slow
def test_quality_bundle_shows_its_role_not_the_lead_departments_of_shared_objectives(built: Path):
    params = load_params(built / "params")
    (bundle,) = bundles.build_bundles(params, built / "outputs" / PERIOD, scopes=["quality"])
    with zipfile.ZipFile(bundle.path) as archive:
        page = archive.read("quality/quality_objectives.html").decode()
    # quality supports QO-2026-01 (led by hotline_ops) and QO-2026-03 (cs_division)
    assert "QO-2026-01" in page and "QO-2026-03" in page
    assert "配合" in page and "热线运营部" not in page and "客户服务事业部" not in page


@pytest.mark.slow
def test_a_leak_in_any_member_stops_the_whole_distribution(built: Path, smtp_server: Mailbox):
    period_dir = built / "outputs" / PERIOD
    # another department's name planted in hotline_ops's executed notebook
    ipynb = period_dir / "hotline_ops" / "quality_objectives.ipynb"
    nb = json.loads(ipynb.read_text(encoding="utf-8"))
    nb["cells"][-1]["outputs"].append(
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"text/html": "<p>\\u6295\\u8bc9\\u4e2d\\u5fc3 9.6%</p>"},
        }  # 投诉中心, escaped
    )
    ipynb.write_text(json.dumps(nb), encoding="utf-8")
    # and a register row of another department in quality's report
    page = period_dir / "quality" / "quality_objectives.html"
    page.write_text(
        page.read_text(encoding="utf-8").replace("</main>", "<p>CA-001</p></main>"),
        encoding="utf-8",
    )
    params = _with_distribution(built, smtp_server.port)
    with pytest.raises(ConfidentialityError) as caught:
        distribute.distribute(params, PERIOD)
    found = {
        (leak.scope, leak.member, leak.kind, leak.value, leak.other) for leak in caught.value.leaks
    }
    assert (
        "hotline_ops",
        "hotline_ops/quality_objectives.ipynb",
        "name",
        "投诉中心",
        "complaints",
    ) in found
    assert ("quality", "quality/quality_objectives.html", "row", "CA-001", "admin") in found
    assert smtp_server.messages == []  # nothing at all was sent
    assert not (period_dir / distribute.LEDGER).exists()
    message = caught.value.message("zh")
    assert "保密检查未通过" in message and "CA-001" in message


def test_screen_finds_ids_names_and_rows_but_not_shared_vocabulary(params):
    import pandas as pd

    registers = {
        "findings": pd.DataFrame(
            {
                "finding_id": ["F-001", "F-002"],
                "department": ["hotline_ops", "complaints"],
                "statement": ["与投诉中心交接记录不全", "x"],
                "grade": ["minor", "minor"],
            }
        ),
    }
    screen = bundles.Screen(params, registers)
    text = (
        'department = "complaints"\n'  # another department's id, as a token
        "quality_objectives.html\n"  # an id inside a longer name: not a token
        "投诉中心直接解决率 9.6%\n"  # a KPI name that contains a department name
        "与投诉中心交接记录不全\n"  # hotline's own finding mentions the Complaint Centre
        "F-001 F-002\n"  # its own finding, and complaints'
        "Hotline Operations, COMPLAINT CENTRE\n"
    )
    leaks = {
        (leak.kind, leak.value, leak.other) for leak in screen.scan("hotline_ops", "x.html", text)
    }
    assert leaks == {
        ("id", "complaints", "complaints"),
        ("row", "F-002", "complaints"),
        ("name", "COMPLAINT CENTRE", "complaints"),
    }
    assert screen.scan(ORGANISATION, "x.html", text) == []


def test_decode_text_reveals_names_hidden_in_json_and_entities():
    assert bundles.decode_text("\\u70ed\\u7ebf&#36816;&#x8425;&amp;\\/x") == "热线运营&/x"


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_smtp_failure_is_reported_per_recipient_and_retry_sends_no_duplicates(
    built: Path, smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("QMSNB_SMTP_PASSWORD", "s3cret")
    params = _with_distribution(built, smtp_server.port)
    smtp_server.refuse = {"ops.deputy@example.com"}

    first = distribute.distribute(params, PERIOD)

    status = {(d.scope, d.address): d.status for d in first.deliveries}
    assert status == {
        ("organisation", "总经理 <gm@example.com>"): "sent",
        ("hotline_ops", "王磊 <wang.lei@example.com>"): "sent",
        ("hotline_ops", "ops.deputy@example.com"): "failed",
        ("complaints", "chen.chen@example.com"): "sent",
        ("quality", "zhao.min@example.com"): "sent",
    }
    assert first.exit_code == ExitCode.SEND_FAILED
    (failed,) = first.failed
    assert failed.error.startswith("550")
    ledger = io.read_json(built / "outputs" / PERIOD / "distribution.json")
    assert ledger["deliveries"]["hotline_ops:ops.deputy@example.com"]["status"] == "failed"
    assert ledger["run_id"] == first.run_id
    assert len(smtp_server.messages) == 4

    # each recipient got exactly their own department's bundle
    (hotline_mail,) = smtp_server.received_by("wang.lei@example.com")
    (attachment,) = list(hotline_mail.iter_attachments())
    assert attachment.get_filename() == f"qmsnb-{PERIOD}-hotline_ops.zip"
    archive = zipfile.ZipFile(__import__("io").BytesIO(attachment.get_content()))
    assert "hotline_ops/quality_objectives.html" in archive.namelist()
    assert not [
        n for n in archive.namelist() if n.startswith(("complaints/", "quality/", "organisation/"))
    ]
    assert "热线运营部" in hotline_mail["Subject"]
    (org_mail,) = smtp_server.received_by("gm@example.com")
    org_zip = zipfile.ZipFile(
        __import__("io").BytesIO(next(org_mail.iter_attachments()).get_content())
    )
    assert "organisation/quality_objectives.html" in org_zip.namelist()
    # the organisation-wide bundle went to nobody else
    for address in ("wang.lei@example.com", "chen.chen@example.com", "zhao.min@example.com"):
        for mail in smtp_server.received_by(address):
            names = zipfile.ZipFile(
                __import__("io").BytesIO(next(mail.iter_attachments()).get_content())
            ).namelist()
            assert not [n for n in names if n.startswith("organisation/")]

    # the mailbox is fixed; the same command again
    smtp_server.refuse = set()
    second = distribute.distribute(params, PERIOD)
    status = {d.address: d.status for d in second.deliveries}
    assert status["ops.deputy@example.com"] == "sent"
    assert [s for a, s in status.items() if a != "ops.deputy@example.com"] == ["already_sent"] * 4
    assert second.exit_code == ExitCode.OK
    assert len(smtp_server.messages) == 5
    for address in (
        "gm@example.com",
        "wang.lei@example.com",
        "ops.deputy@example.com",
        "chen.chen@example.com",
        "zhao.min@example.com",
    ):
        assert len(smtp_server.received_by(address)) == 1, address
    ledger = io.read_json(built / "outputs" / PERIOD / "distribution.json")
    entry = ledger["deliveries"]["hotline_ops:ops.deputy@example.com"]
    assert (entry["status"], entry["attempts"]) == ("sent", 2)

    # a third run sends nothing at all
    third = distribute.distribute(params, PERIOD)
    assert {d.status for d in third.deliveries} == {"already_sent"}
    assert len(smtp_server.messages) == 5


@pytest.mark.slow
def test_server_down_then_up_sends_each_message_once(built: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QMSNB_SMTP_PASSWORD", "s3cret")
    port = _free_port()
    params = _with_distribution(built, port)
    down = distribute.distribute(params, PERIOD, scopes=["hotline_ops"])
    assert {d.status for d in down.deliveries} == {"failed"}
    assert "ConnectionRefusedError" in down.deliveries[0].error
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        auth_required=True,
        auth_require_tls=False,
        authenticator=_Login(),
    )
    controller.start()
    try:
        up = distribute.distribute(params, PERIOD, scopes=["hotline_ops"])
    finally:
        controller.stop()
    assert {d.status for d in up.deliveries} == {"sent"}
    assert sorted(r for rcpts, _ in box.messages for r in rcpts) == [
        "ops.deputy@example.com",
        "wang.lei@example.com",
    ]


@pytest.mark.slow
def test_wrong_or_missing_password(built: Path, smtp_server: Mailbox, monkeypatch):
    params = _with_distribution(built, smtp_server.port)
    monkeypatch.delenv("QMSNB_SMTP_PASSWORD", raising=False)
    with pytest.raises(DistributionError) as caught:
        distribute.distribute(params, PERIOD, scopes=["complaints"])
    assert "QMSNB_SMTP_PASSWORD" in caught.value.message("en")
    monkeypatch.setenv("QMSNB_SMTP_PASSWORD", "wrong")
    result = distribute.distribute(params, PERIOD, scopes=["complaints"])
    assert result.deliveries[0].status == "failed" and result.deliveries[0].error.startswith("535")
    assert smtp_server.messages == []


@pytest.mark.slow
def test_outbox_writes_one_eml_per_recipient_and_sends_nothing(built: Path, smtp_server: Mailbox):
    params = _with_distribution(built, smtp_server.port)
    result = distribute.distribute(params, PERIOD, outbox=True)
    outbox = built / "outputs" / PERIOD / "outbox"
    files = sorted(p.name for p in outbox.glob("*.eml"))
    assert files == sorted(
        [
            "organisation--gm@example.com.eml",
            "hotline_ops--wang.lei@example.com.eml",
            "hotline_ops--ops.deputy@example.com.eml",
            "complaints--chen.chen@example.com.eml",
            "quality--zhao.min@example.com.eml",
        ]
    )
    assert {d.status for d in result.deliveries} == {"written"}
    assert (
        smtp_server.messages == []
        and not (built / "outputs" / PERIOD / "distribution.json").exists()
    )
    mail = email.message_from_bytes(
        (outbox / "complaints--chen.chen@example.com.eml").read_bytes(), policy=policy.default
    )
    assert mail["To"] == "chen.chen@example.com"
    assert mail["Subject"] == "【质量报告】2026年10月 · 投诉中心"
    body = mail.get_body(("plain",)).get_content()
    assert "投诉中心" in body and "qmsnb-2026-10-complaints.zip" in body
    (attachment,) = list(mail.iter_attachments())
    assert (
        attachment.get_content()
        == (built / "outputs" / PERIOD / "bundles" / "qmsnb-2026-10-complaints.zip").read_bytes()
    )


@pytest.mark.slow
def test_link_delivery_sends_the_link_not_the_bundle(built: Path, smtp_server, monkeypatch):
    monkeypatch.setenv("QMSNB_SMTP_PASSWORD", "s3cret")
    params = _with_distribution(
        built, smtp_server.port, delivery="link", link_base="https://intranet.example.com/qms/"
    )
    distribute.distribute(params, PERIOD, scopes=["quality"], lang="en")
    (mail,) = smtp_server.received_by("zhao.min@example.com")
    assert list(mail.iter_attachments()) == []
    body = mail.get_body(("plain",)).get_content()
    assert "https://intranet.example.com/qms/2026-10/bundles/qmsnb-2026-10-quality.zip" in body
    assert mail["Subject"] == "[Quality reports] Quality Department · Oct 2026"


@pytest.mark.slow
def test_cli_distribute_check_and_exit_codes(built: Path, capsys):
    from qmsnb.cli import main

    params_dir = str(built / "params")
    assert (
        main(["--params", params_dir, "--lang", "en", "distribute", "--period", PERIOD, "--check"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("confidentiality check passed") == 4
    # no distribution.yaml: a plain message, exit code 2
    assert main(["--params", params_dir, "--lang", "en", "distribute", "--period", PERIOD]) == 2
    assert "distribution.yaml" in capsys.readouterr().err
    # a leak: exit code 5
    page = built / "outputs" / PERIOD / "complaints" / "quality_objectives.html"
    page.write_text(
        page.read_text(encoding="utf-8") + "<p>Hotline Operations</p>", encoding="utf-8"
    )
    assert (
        main(["--params", params_dir, "--lang", "en", "distribute", "--period", PERIOD, "--check"])
        == 5
    )
    assert "Hotline Operations" in capsys.readouterr().out


def test_concurrent_distribute_is_refused(tmp_path: Path):
    with io.exclusive_lock(tmp_path / ".lock") as first:
        assert first
        with io.exclusive_lock(tmp_path / ".lock") as second:
            assert not second
    with io.exclusive_lock(tmp_path / ".lock") as again:
        assert again
