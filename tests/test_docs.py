"""Docs that are generated from code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from qmsnb.docs import contract_markdown

REPO = Path(__file__).resolve().parents[1]


def test_data_contract_doc_is_current() -> None:
    current = (REPO / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert current.strip() == contract_markdown().strip(), (
        "run: qmsnb contract > docs/data-contract.md"
    )


def test_notebooks_are_committed_without_outputs() -> None:
    import json

    for path in (REPO / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), path.name
        tags = nb["cells"][0].get("metadata", {}).get("tags", [])
        assert "parameters" in tags, f"{path.name}: first cell must be tagged parameters"


def test_notebooks_stay_thin() -> None:
    """No function definitions, file I/O or imports other than qmsnb in notebooks."""
    import json

    for path in (REPO / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for banned in ("def ", "open(", "read_csv", "read_excel", "to_csv", "lambda"):
                assert banned not in source, f"{path.name}: {banned!r} in a cell"
            for line in source.splitlines():
                if line.startswith(("import ", "from ")):
                    assert line.split()[1].split(".")[0] == "qmsnb", f"{path.name}: {line}"
