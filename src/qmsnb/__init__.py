"""qmsnb: an ISO 9001 audit and management-review workbench on Jupyter.

Notebooks use two things from here: :func:`open_period` to get the period
context, and the analysis modules (``qmsnb.objectives``, ``qmsnb.audit``, ...)
whose functions return report sections. Modules load lazily, so ``import qmsnb``
is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from qmsnb._startup import defer_slow_imports

# jsonschema's IRI checker compiles a grammar at import (~1.3 s in every process
# that touches a notebook or Great Expectations); load it on first use instead.
defer_slow_imports()

__version__ = "0.1.0"

#: Short names notebooks use → the modules behind them.
_ANALYSIS = {
    "objectives": "qmsnb.analysis.objectives",
    "review": "qmsnb.analysis.review",
    "audit": "qmsnb.analysis.audit",
    "risk": "qmsnb.analysis.risk",
    "rca": "qmsnb.analysis.rca",
    "widgets": "qmsnb.widgets",
}

__all__ = ["__version__", "open_period", *_ANALYSIS]


def open_period(*args: Any, **kwargs: Any) -> Any:
    """See :func:`qmsnb.context.open_period`."""
    from qmsnb.context import open_period as _open

    return _open(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _ANALYSIS:
        module = importlib.import_module(_ANALYSIS[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'qmsnb' has no attribute {name!r}")
