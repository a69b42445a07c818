"""What the management-review pack and distribution cost on the demo.

In a temporary copy of the project: the demo (12 months, ``--calls-per-month``,
default 20,000) and the full batch for 2026-10; then, each as its own process
(wall seconds and peak memory of the process tree):

* the management review alone (``qmsnb run --notebook management_review``),
* ``qmsnb distribute --check`` (build and check every bundle),
* ``qmsnb distribute`` to a local SMTP server (aiosmtpd, in this process),

and the confidentiality scan's throughput on the largest department report.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from _util import measure

REPO = Path(__file__).resolve().parents[1]


class _Sink:
    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        self.bytes += len(envelope.content)
        return "250 OK"


def main(args: list[str]) -> dict:
    from aiosmtpd.controller import Controller

    calls = next((a.split("=", 1)[1] for a in args if a.startswith("--calls=")), "20000")
    qmsnb = str(Path(sys.executable).parent / "qmsnb")
    figures: dict = {"calls_per_month": int(calls)}
    with tempfile.TemporaryDirectory(prefix="qmsnb-bench-dist-") as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "params", root / "params")
        shutil.copytree(REPO / "notebooks", root / "notebooks")
        shutil.copytree(REPO / "expectations", root / "expectations")
        env = {**os.environ, "QMSNB_LANG": "en"}
        demo = measure([qmsnb, "demo", "--calls-per-month", calls], cwd=root, env=env)
        assert demo.returncode == 0, demo.stderr
        run = measure([qmsnb, "run", "--period", "2026-10"], cwd=root, env=env)
        figures["batch_all_reports_s"] = round(run.seconds, 1)
        figures["batch_all_reports_peak_mib"] = round(run.peak_mib)
        review = measure(
            [
                qmsnb,
                "run",
                "--period",
                "2026-10",
                "--notebook",
                "management_review",
                "--department",
                "organisation",
            ],
            cwd=root,
            env=env,
        )
        assert review.returncode == 0, review.stderr
        figures["review_alone_s"] = round(review.seconds, 1)
        figures["review_alone_peak_mib"] = round(review.peak_mib)
        # the review run replaced the period; run the full batch again for the bundles
        assert measure([qmsnb, "run", "--period", "2026-10"], cwd=root, env=env).returncode == 0
        check = measure([qmsnb, "distribute", "--period", "2026-10", "--check"], cwd=root, env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        figures["bundles_build_and_check_s"] = round(check.seconds, 1)
        figures["bundles_build_and_check_peak_mib"] = round(check.peak_mib)
        bundles = sorted((root / "outputs" / "2026-10" / "bundles").glob("*.zip"))
        figures["bundles"] = len(bundles)
        figures["bundle_kib_max"] = round(max(b.stat().st_size for b in bundles) / 1024)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        recipients = "\n".join(
            f"  {b.stem.split('-', 3)[3]}: [r{i}@example.com]" for i, b in enumerate(bundles)
        )
        (root / "params" / "distribution.yaml").write_text(
            f"smtp: {{host: 127.0.0.1, port: {port}, security: none, sender: q@example.com}}\n"
            f"recipients:\n{recipients}\n",
            encoding="utf-8",
        )
        sink = _Sink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            send = measure([qmsnb, "distribute", "--period", "2026-10"], cwd=root, env=env)
        finally:
            controller.stop()
        assert send.returncode == 0, send.stdout + send.stderr
        figures["send_all_s"] = round(send.seconds, 1)
        figures["send_all_peak_mib"] = round(send.peak_mib)
        figures["messages"] = sink.count
        figures["mail_mib_total"] = round(sink.bytes / 1048576, 1)

        from qmsnb import bundles as b
        from qmsnb import prepare
        from qmsnb.config import load_params

        params = load_params(root / "params")
        period_dir = root / "outputs" / "2026-10"
        screen = b.Screen(params, prepare.read_prepared(period_dir / "prepared")[1])
        pages = sorted(
            (p for p in period_dir.glob("*/*.html") if p.parent.name != "organisation"),
            key=lambda p: p.stat().st_size,
        )
        page = pages[-1]
        text = b.member_text(page.name, page.read_bytes())
        scope = page.parent.name
        screen.scan(scope, page.name, text)  # build the per-scope patterns once
        started = time.perf_counter()
        for _ in range(5):
            screen.scan(scope, page.name, text)
        per = (time.perf_counter() - started) / 5
        figures["scan_page_kib"] = round(len(text.encode()) / 1024)
        figures["scan_mib_per_s"] = round(len(text.encode()) / 1048576 / per, 1)
    return figures
