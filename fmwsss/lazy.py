"""Curated package namespaces whose names are imported on first use (PEP 562).

Why: ``from fmwsss.sam.shards import SamShardReader`` runs ``fmwsss/sam/__init__.py`` first; a package
``__init__`` that imported every submodule would pull segment-anything, torchvision and ``torch._dynamo``
(about a second) into a seeding job that only reads HDF5 masks. With :func:`lazy_exports` a package keeps
its curated API (``from fmwsss.sam import build_generator``) and pays for a submodule only when a name of
it is used. A bottom layer: it imports nothing of fmwsss.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, resolving each name of ``exports`` (name -> module)
    by importing its module on first access."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
