"""Lazy package exports: a package's names load their module on first use (PEP 562), so that
importing a config dataclass from a package does not import torch or scipy."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


class _Package(types.ModuleType):
    """A package whose exported names win over same-named submodules (``lifting.lift`` is the function,
    as it was when the package imported everything eagerly), whenever the submodule gets loaded."""

    def __setattr__(self, name: str, value: Any) -> None:
        where = self.__dict__.get("_WHERE") or {}
        if isinstance(value, types.ModuleType) and name in where and value.__name__ == f"{self.__name__}.{name}":
            value = getattr(importlib.import_module(f"{self.__name__}.{where[name]}"), name)
        super().__setattr__(name, value)


def lazy_exports(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` serving ``name -> submodule`` from ``where``.

    The package module must define ``_WHERE = where`` (so same-named submodules do not shadow exports).
    """
    sys.modules[package].__class__ = _Package

    def __getattr__(name: str) -> Any:
        mod = where.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{mod}"), name)
        sys.modules[package].__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(where) | set(sys.modules[package].__dict__))

    return __getattr__, __dir__
