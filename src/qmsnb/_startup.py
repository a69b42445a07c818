"""Cheap start-up: imports that cost seconds and are almost never used, deferred.

``import jsonschema`` (pulled in by ``nbformat``, hence by papermill, nbclient,
nbconvert and plotly's notebook renderer) imports every optional format checker
it finds. One of them, ``rfc3987_syntax`` (installed with
``jsonschema[format-nongpl]`` for jupyter-events), compiles a Lark grammar for
RFC 3987 IRIs *at import*: ~1.3 s on this machine, in every process that touches
a notebook file, to check a string format that no notebook schema uses.

:func:`defer_slow_imports` puts a stand-in package under that name. jsonschema
imports it as before and gets ``is_valid_syntax``; the grammar is compiled the
first time an ``iri``/``iri-reference`` value is actually checked, by the real
code of the real package (the stand-in's ``__path__`` is the real package's
folder). So validation is unchanged; only its cost moves to where it is needed.
Call it before anything imports ``jsonschema`` (entry points, workers, kernel
templates); it does nothing if the package is absent or already imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

#: Packages whose import is deferred, with the attribute jsonschema takes from them.
_DEFERRED = {"rfc3987_syntax": "syntax_helpers"}


def _stand_in(name: str, submodule: str) -> types.ModuleType | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    module = types.ModuleType(name, f"Deferred stand-in for {name} (see qmsnb._startup).")
    module.__path__ = list(spec.submodule_search_locations)
    module.__file__ = spec.origin
    module.__qmsnb_deferred__ = True  # type: ignore[attr-defined]

    def _real() -> types.ModuleType:
        return importlib.import_module(f"{name}.{submodule}")

    def __getattr__(attr: str) -> Any:  # PEP 562: resolved on first use
        if attr.startswith("__"):
            raise AttributeError(attr)
        value = getattr(_real(), attr)
        setattr(module, attr, value)
        return value

    def is_valid_syntax(term: str, value: str) -> bool:
        return _real().is_valid_syntax(term, value)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    return module


def defer_slow_imports() -> None:
    """Install the deferred stand-ins (idempotent; safe to call from any process)."""
    for name, submodule in _DEFERRED.items():
        if name in sys.modules:
            continue
        try:
            stand_in = _stand_in(name, submodule)
        except (ImportError, ValueError):
            continue
        if stand_in is not None:
            sys.modules[name] = stand_in
