"""The ``qmsnb`` command. It only translates: parse arguments, call one library
function, and turn known errors into a plain message and an exit code.

Exit codes (also in the README): 0 all reports built; 1 some reports failed;
2 bad input (parameters, arguments, a malformed suite); 3 the data-quality gate
blocked reports (``run``) or rejected a dataset (``validate``); 70 internal error
(also: a data-quality check itself errored); 130 interrupted. Tracebacks only with
``--verbose``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from qmsnb.exceptions import ExitCode, QmsnbError
from qmsnb.i18n import LANGS, t

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Command, str]] = {}


def command(
    name: str, help_key: str
) -> Callable[
    [Callable[[argparse.ArgumentParser], None]], Callable[[argparse.ArgumentParser], None]
]:
    """Register a subcommand: the decorated function adds its arguments; ``run_<name>`` runs it."""

    def deco(
        add_args: Callable[[argparse.ArgumentParser], None],
    ) -> Callable[[argparse.ArgumentParser], None]:
        COMMANDS[name] = (add_args, globals()[f"run_{name}"], help_key)
        return add_args

    return deco


def _message_lang(args: argparse.Namespace | None) -> str:
    if args is not None and getattr(args, "lang", None):
        return args.lang
    env = os.environ.get("QMSNB_LANG")
    if env in LANGS:
        return env
    if args is not None:
        try:
            from qmsnb.config import load_params

            return load_params(args.params).organisation.report_language
        except Exception:  # params unreadable: fall back to the locale
            pass
    return "zh" if os.environ.get("LANG", "").lower().startswith("zh") else "en"


def _params(args: argparse.Namespace):  # -> Params
    from qmsnb.config import load_params

    return load_params(args.params)


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------
def run_demo(args: argparse.Namespace) -> int:
    from qmsnb import demo, io
    from qmsnb.records import open_store, store_exists

    params = _params(args)
    out = Path(args.out) if args.out else params.data_dir
    marker = out / ".qmsnb-demo"
    if out.exists() and any(out.iterdir()) and not marker.is_file():
        raise QmsnbError("error.demo.not_empty", folder=str(out))
    # The demo registers go into the records store only when they are the project's
    # registers, and never into a store holding anything but earlier demo data.
    seed = (out / "registers").resolve() == params.registers_dir.resolve()
    if seed and store_exists(params):
        with open_store(params) as store:
            if store.holds_entries() and not store.is_demo_only():
                from qmsnb.exceptions import RecordsError

                raise RecordsError("error.records.not_demo", url=store.display_url)
    spec = demo.DemoSpec(
        end=args.end,
        months=args.months,
        calls_per_month=args.calls_per_month,
        seed=args.seed,
        calls_format=args.calls_format,
    )
    files = demo.build(params, out, spec)
    io.write_text(marker, "Written by `qmsnb demo`; safe to regenerate.\n")
    print(t("demo.done", args.msg_lang, count=len(files), folder=str(out), end=args.end))
    if seed:
        counts = demo.seed_store(params, params.registers_dir)
        with open_store(params) as store:
            url = store.display_url
        print(t("demo.store", args.msg_lang, count=sum(counts.values()), url=url))
    return 0


@command("demo", "cli.demo")
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help=_h("cli.help.01"))
    p.add_argument("--end", default="2026-10", help=_h("cli.help.02"))
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--calls-per-month", type=int, default=20_000)
    p.add_argument("--calls-format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--seed", type=int, default=20261031)


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------
def run_run(args: argparse.Namespace) -> int:
    from qmsnb.engines import get_engine

    early = getattr(args, "early_engine", None)
    try:
        params = _params(args)
        name = args.engine or params.batch.engine
        runner = early if early is not None and name == "warm" else get_engine(name)
    except BaseException:
        if early is not None:
            early.close()
        raise
    if early is not None and runner is not early:
        early.close()  # the params chose another engine
    warm_up = getattr(runner, "start", None)
    if warm_up is not None:  # the warm engine's template imports while this process does
        warm_up()
    try:
        from qmsnb.batch import run_batch

        result = run_batch(
            params,
            args.period,
            departments=args.department,
            notebooks=args.notebook,
            jobs=args.jobs,
            lang=args.lang,
            runner=runner,
        )
    finally:
        stop = getattr(runner, "close", None)
        if stop is not None:  # also when the batch stopped before its engine ran
            stop()
    counts: dict[str, int] = {}
    for report in result.reports:
        counts[report["status"]] = counts.get(report["status"], 0) + 1
    lang = args.msg_lang
    print(
        t(
            "run.summary",
            lang,
            period=result.period,
            total=len(result.reports),
            ok=counts.get("ok", 0),
            failed=sum(v for k, v in counts.items() if k not in ("ok", "blocked")),
            blocked=counts.get("blocked", 0),
        )
    )
    print(t("run.portal", lang))
    print(result.portal.resolve())
    return int(result.exit_code)


@command("run", "cli.run")
def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--period", required=True, help=_h("cli.help.03"))
    p.add_argument("--department", action="append", help=_h("cli.help.04"))
    p.add_argument("--notebook", action="append", help=_h("cli.help.05"))
    p.add_argument("--jobs", type=int, help=_h("cli.help.06"))
    p.add_argument("--engine", help=_h("cli.help.07"))


# ---------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------
def run_validate(args: argparse.Namespace) -> int:
    from qmsnb import gate
    from qmsnb.i18n import period_label

    params = _params(args)
    lang = args.msg_lang
    result = gate.run_gate(params, args.period, months=args.months)
    folder = params.output_dir / ".validate" / result.period
    _, report = gate.write_outputs(result, folder, params, args.lang or lang, portal_link=False)
    for name, dataset in result.datasets.items():
        reasons = "; ".join(dict.fromkeys(f.reason for f in dataset.failures))
        print(
            t(
                "validate.line",
                lang,
                dataset=gate.dataset_name(name, lang),
                status=t(f"gate.status.{dataset.status}", lang),
                problems=f" · {reasons}" if reasons else "",
            )
        )
    for line in gate.summary_lines(result, lang, blocking=True):
        print(line, file=sys.stderr)
    print(
        t(
            "validate.summary",
            lang,
            period=period_label(result.period, lang),
            status=t(f"gate.status.{result.status}", lang),
            report=report.resolve(),
        )
    )
    return int(result.exit_code)


@command("validate", "cli.validate")
def _validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--period", required=True, help=_h("cli.help.03"))
    p.add_argument("--months", type=int, help=_h("cli.help.08"))


# ---------------------------------------------------------------------------
# contract
# ---------------------------------------------------------------------------
def run_contract(args: argparse.Namespace) -> int:
    from qmsnb.docs import contract_markdown

    print(contract_markdown())
    return 0


@command("contract", "cli.contract")
def _contract_args(p: argparse.ArgumentParser) -> None:
    return None


# ---------------------------------------------------------------------------
# distribute
# ---------------------------------------------------------------------------
def run_distribute(args: argparse.Namespace) -> int:
    from qmsnb import distribute as dist

    params = _params(args)
    if args.check:
        bundles = dist.check_bundles(params, args.period, scopes=args.department)
        print("\n".join(dist.bundle_lines(bundles, args.msg_lang)))
        ok = all(b.ok for b in bundles)
        return int(ExitCode.OK if ok else ExitCode.CONFIDENTIALITY)
    result = dist.distribute(params, args.period, outbox=args.outbox, scopes=args.department)
    print("\n".join(dist.result_lines(result, args.msg_lang)))
    return int(result.exit_code)


@command("distribute", "cli.distribute")
def _distribute_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--period", required=True, help=_h("cli.help.03"))
    p.add_argument("--outbox", action="store_true", help=_h("cli.help.09"))
    p.add_argument("--check", action="store_true", help=_h("cli.help.10"))
    p.add_argument("--department", action="append", help=_h("cli.help.11"))


# ---------------------------------------------------------------------------
# lab
# ---------------------------------------------------------------------------
def run_lab(args: argparse.Namespace) -> int:
    params = _params(args)
    env = {**os.environ, "QMSNB_PARAMS": str(params.folder)}
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--notebook-dir={params.root / 'notebooks'}",
        # a quality office's machine may have no internet: no news feed, no update check
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    os.execvpe(cmd[0], cmd, env)
    return 0  # pragma: no cover


@command("lab", "cli.lab")
def _lab_args(p: argparse.ArgumentParser) -> None:
    return None


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------
def run_records(args: argparse.Namespace) -> int:
    from qmsnb.records import open_store

    params = _params(args)
    lang = args.msg_lang
    with open_store(params) as store:
        if args.action == "import":
            result = store.import_table(args.register, Path(args.file), args.who, args.reason)
            print(
                t(
                    "records.imported",
                    lang,
                    register=args.register,
                    file=args.file,
                    inserted=len(result.inserted),
                    updated=len(result.updated),
                    unchanged=len(result.unchanged),
                )
            )
        elif args.action == "export":
            path = store.export_excel(
                args.register, Path(args.file), lang=args.lang or lang, with_history=args.history
            )
            print(
                t(
                    "records.exported",
                    lang,
                    register=args.register,
                    file=str(path),
                    count=len(store.frame(args.register)),
                )
            )
        else:
            print(store.display_url)
            for register, count in store.counts().items():
                print(t("records.status_line", lang, register=register, count=count))
    return 0


@command("records", "cli.records")
def _records_args(p: argparse.ArgumentParser) -> None:
    import getpass

    sub = p.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help=_h("cli.help.12"))
    imp.add_argument("register", help=_h("cli.help.13"))
    imp.add_argument("file")
    imp.add_argument(
        "--who", default=os.environ.get("QMSNB_USER") or getpass.getuser(), help=_h("cli.help.14")
    )
    imp.add_argument("--reason", help=_h("cli.help.15"))
    exp = sub.add_parser("export", help=_h("cli.help.16"))
    exp.add_argument("register")
    exp.add_argument("file")
    exp.add_argument("--history", action="store_true", help=_h("cli.help.17"))
    sub.add_parser("status", help=_h("cli.help.18"))


# ---------------------------------------------------------------------------
# risks
# ---------------------------------------------------------------------------
def run_risks(args: argparse.Namespace) -> int:
    from qmsnb import risks
    from qmsnb.records import open_store

    params = _params(args)
    lang = args.msg_lang
    with open_store(params) as store:
        source = Path(args.source) if args.source else None
        processes = risks.process_register(params, store, source)
        result = risks.seed_store(store, processes, args.who)
    print(
        t(
            "risks.seeded",
            lang,
            added=len(result.added),
            skipped=len(result.skipped),
            processes=len(processes),
        )
    )
    if result.added:
        print(t("risks.seeded_ids", lang, first=result.added[0], last=result.added[-1]))
    return 0


@command("risks", "cli.risks")
def _risks_args(p: argparse.ArgumentParser) -> None:
    import getpass

    sub = p.add_subparsers(dest="action", required=True)
    seed = sub.add_parser("seed", help=_h("cli.help.19"))
    seed.add_argument(
        "--from",
        dest="source",
        help=_h("cli.help.20"),
    )
    seed.add_argument(
        "--who", default=os.environ.get("QMSNB_USER") or getpass.getuser(), help=_h("cli.help.21")
    )


#: Language of the --help texts (set by :func:`build_parser`).
_HELP_LANG = ["en"]


def _h(key: str) -> str:
    """A --help text from the catalogue."""
    return t(key, _HELP_LANG[0])


def _help_lang() -> str:
    env = os.environ.get("QMSNB_LANG")
    if env in LANGS:
        return env
    return "zh" if os.environ.get("LANG", "").lower().startswith("zh") else "en"


def build_parser() -> argparse.ArgumentParser:
    lang = _help_lang()
    _HELP_LANG[0] = lang
    parser = argparse.ArgumentParser(prog="qmsnb", description=t("cli.description", lang))
    parser.add_argument("--params", default="params", help=_h("cli.help.22"))
    parser.add_argument("--lang", choices=LANGS, help=_h("cli.help.23"))
    parser.add_argument("--verbose", action="store_true", help=_h("cli.help.24"))
    parser.add_argument(
        "--version", action="version", version=f"qmsnb {__import__('qmsnb').__version__}"
    )
    # the same options after the command name too (`qmsnb run --period P --lang en`);
    # SUPPRESS keeps a value given before the command when none is given after it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default=argparse.SUPPRESS, help=_h("cli.help.22"))
    common.add_argument("--lang", choices=LANGS, default=argparse.SUPPRESS, help=_h("cli.help.23"))
    common.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help=_h("cli.help.24")
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, func, help_key) in COMMANDS.items():
        p = sub.add_parser(name, help=t(help_key, lang), parents=[common])
        add_args(p)
        p.set_defaults(func=func)
    return parser


def _start_engine_early(args: argparse.Namespace) -> None:
    """``qmsnb run`` with the warm engine (the default): start its kernel template
    before anything else, even before the params are read (~0.7 s: the config
    models import). The params may still choose papermill; then it is closed."""
    args.early_engine = None
    if getattr(args, "func", None) is not run_run or args.engine not in (None, "warm"):
        return
    from qmsnb.engines import get_engine

    engine = get_engine("warm")
    try:
        engine.start()  # type: ignore[attr-defined]
    except Exception:  # run_run starts it again and reports what is wrong
        engine.close()  # type: ignore[attr-defined]
        return
    args.early_engine = engine


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _start_engine_early(args)
    args.msg_lang = _message_lang(args)
    try:
        return args.func(args)
    except QmsnbError as exc:
        if args.verbose:
            traceback.print_exc()
        print(exc.message(args.msg_lang), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(t("error.interrupted", args.msg_lang), file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug, not a user error
        if args.verbose:
            traceback.print_exc()
        print(
            t("error.internal", args.msg_lang, problem=f"{type(exc).__name__}: {exc}"),
            file=sys.stderr,
        )
        return int(ExitCode.PROGRAM_ERROR)


if __name__ == "__main__":
    sys.exit(main())
