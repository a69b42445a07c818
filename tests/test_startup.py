"""Cheap start-up: the deferred rfc3987_syntax import still validates what it did."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_importing_nbformat_does_not_compile_the_iri_grammar() -> None:
    out = _run(
        """
        import sys
        import qmsnb, nbformat, jsonschema
        print("lark" in sys.modules, sys.modules["rfc3987_syntax"].__qmsnb_deferred__)
        """
    )
    assert out == "False True"


def test_iri_formats_are_still_checked_when_used() -> None:
    out = _run(
        """
        import sys
        import qmsnb, jsonschema
        checker = jsonschema.FormatChecker()
        print(
            checker.conforms("https://例子.测试/路径?q=1", "iri"),
            checker.conforms("https://exa mple.com", "iri"),
            checker.conforms("../relative/path", "iri-reference"),
            checker.conforms("ht!tp://x", "iri"),
            "lark" in sys.modules,
        )
        """
    )
    assert out == "True False True False True"


def test_notebook_validation_still_rejects_a_broken_notebook() -> None:
    out = _run(
        """
        import qmsnb, nbformat
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
        nbformat.validate(nb)
        del nb.cells[0]["source"]
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError:
            print("rejected")
        """
    )
    assert out == "rejected"


def test_gx_import_leaves_scipy_stats_and_altair_until_they_are_used() -> None:
    out = _run(
        """
        import sys
        from qmsnb import gate
        gate._import_gx()
        print(
            sys.modules["scipy.stats"].__qmsnb_deferred__,
            sys.modules["altair"].__qmsnb_deferred__,
            "scipy.stats._stats_py" in sys.modules,
        )
        """
    )
    assert out == "True True False"


def test_a_deferred_module_becomes_the_real_one_on_first_use() -> None:
    out = _run(
        """
        import sys
        from qmsnb import gate
        gate._import_gx()
        from great_expectations.expectations.core import (
            expect_column_kl_divergence_to_be_less_than as kl,
        )
        held = kl.stats  # what GX took at import: the stand-in
        entropy = held.entropy([0.5, 0.5], [0.9, 0.1])
        real = sys.modules["scipy.stats"]
        from scipy.stats import norm
        print(
            round(float(entropy), 6),
            getattr(real, "__qmsnb_deferred__", False),
            held.entropy is real.entropy,
            round(float(norm.cdf(0)), 2),
            type(kl.alt.Chart).__name__,
        )
        """
    )
    assert out == "0.510826 False True 0.5 type"


def test_a_worker_runs_papermill_without_importing_pyarrow_or_requests() -> None:
    """papermill imports pyarrow (HDFS) and requests (HTTP) at its top; a warm
    worker defers both, and both still work when a handler needs them."""
    out = _run(
        """
        import sys
        from qmsnb import warm
        warm._worker_imports()
        import papermill.execute
        from papermill import iorw
        loaded = [
            m for m in ("pyarrow", "numpy", "requests")
            if m in sys.modules and not getattr(sys.modules[m], "__qmsnb_deferred__", False)
        ]
        selector = iorw.FileSelector("/tmp", recursive=True)
        import pyarrow.fs
        print(
            loaded,
            type(selector).__name__,
            selector.recursive,
            isinstance(selector, pyarrow.fs.FileSelector),
            iorw.requests.codes.not_found,
        )
        """
    )
    assert out == "[] FileSelector True True 404"
