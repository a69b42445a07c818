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
