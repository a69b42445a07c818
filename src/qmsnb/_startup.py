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

:func:`defer_modules` does the same for whole modules that a library imports at
its top and uses only inside functions: Great Expectations imports
``scipy.stats`` (for its KL-divergence and KS-test expectations) and ``altair``
(for chart renderers) at import, ~1.2 s of its ~3 s import on this machine,
and the gate uses neither. The stand-in becomes the real module on first use.

:func:`defer_callables` is for a module imported as ``from m import A, B`` where
``A`` and ``B`` are only ever called: papermill's ``iorw`` does ``from pyarrow.fs
import FileSelector, HadoopFileSystem`` for its HDFS handler, which imports all
of pyarrow and numpy (~0.4 s and ~40 MiB in every warm-engine worker, whose
notebooks are local files). The stand-in's ``A`` imports the real module when
called and calls the real ``A``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
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


class _Deferred(types.ModuleType):
    """A module that imports the real one the first time anything is asked of it.

    Code that did ``from scipy import stats`` holds this object; every attribute
    it lacks is looked up on the real module (imported then, under a lock), and
    the real module takes its place in ``sys.modules``."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__qmsnb_real__(), attr)

    def __qmsnb_real__(self) -> types.ModuleType:
        real: types.ModuleType | None = self.__dict__.get("__qmsnb_module__")
        if real is None:
            with _LOCK:
                real = self.__dict__.get("__qmsnb_module__")
                if real is None:
                    if sys.modules.get(self.__name__) is self:
                        del sys.modules[self.__name__]
                    real = importlib.import_module(self.__name__)
                    self.__dict__["__qmsnb_module__"] = real
        return real

    def __dir__(self) -> list[str]:
        return dir(self.__qmsnb_real__())


_LOCK = threading.RLock()


def defer_modules(names: tuple[str, ...]) -> None:
    """Put a :class:`_Deferred` stand-in under each name not imported yet."""
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        module = _Deferred(name, f"Deferred stand-in for {name} (see qmsnb._startup).")
        module.__spec__ = spec
        module.__file__ = spec.origin
        if spec.submodule_search_locations is not None:
            module.__path__ = list(spec.submodule_search_locations)
        module.__dict__["__qmsnb_deferred__"] = True
        sys.modules[name] = module


def defer_callables(name: str, callables: tuple[str, ...]) -> None:
    """Put a :class:`_Deferred` stand-in under ``name`` (if not imported yet) whose
    ``callables`` are forwarders: calling one imports the real module then.

    No import happens here, not even of the parent package (``find_spec`` of a
    submodule would import its parent); a missing module fails when used, as an
    ``ImportError`` from the forwarder.
    """
    if name in sys.modules:
        return
    module = _DeferredCallables(name, f"Deferred stand-in for {name} (see qmsnb._startup).")
    module.__dict__["__qmsnb_deferred__"] = True
    for attr in callables:
        module.__dict__[attr] = _forwarder(module, attr)
    sys.modules[name] = module


class _DeferredCallables(_Deferred):
    """A :class:`_Deferred` without a spec: the import system's own look-ups of
    ``__spec__``, ``__path__`` and the like must not import the real module."""

    __spec__ = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return getattr(self.__qmsnb_real__(), attr)


def _forwarder(module: _Deferred, attr: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(module.__qmsnb_real__(), attr)(*args, **kwargs)

    call.__name__ = call.__qualname__ = attr
    call.__doc__ = f"Imports {module.__name__} on first call, then calls its {attr}."
    return call
