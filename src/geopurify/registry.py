"""Named registries for encoders, teachers and datasets, extensible through entry points."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """A name -> factory map.

    Third-party packages add entries through the registry's entry-point group (``geopurify.readers``,
    ``geopurify.encoders``, ``geopurify.teachers``); a plugin under a built-in's name is ignored.

    >>> r = Registry("widget")
    >>> @r.register("plain")
    ... def make_plain(**kw):
    ...     return "plain widget"
    >>> r.build("plain")
    'plain widget'
    >>> r.names()
    ['plain']
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.group = entry_point_group
        self._items: dict[str, Callable[..., T]] = {}
        self._loaded_entry_points = False

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``; a name taken by another factory is refused."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            old = self._items.get(name)
            if old is not None and _qualname(old) != _qualname(factory):  # the same one again: a module reload
                raise ConfigError(
                    f"{self.kind} {name!r} is registered twice ({_qualname(old)} and {_qualname(factory)})"
                )
            self._items[name] = factory
            return factory

        return deco

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points or not self.group:
            return
        self._loaded_entry_points = True
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                log.warning("%s plugin %r (%s) ignored: the name is taken by a built-in", self.kind, ep.name, ep.value)
                continue
            try:
                self._items[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not break the built-ins
                log.warning("could not load %s plugin %r: %s", self.kind, ep.name, exc)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def get(self, name: str) -> Callable[..., T]:
        self._load_entry_points()
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._items[name]

    def check_options(self, name: str, options: dict) -> None:
        """Raise ConfigError naming any option the factory of ``name`` does not accept, with the accepted list.

        The one rule for options of every registry (readers, encoders, teachers); factories taking
        ``**kwargs`` accept anything. A factory with a ``precheck(options)`` attribute has it called next:
        the cheap checks of its options (a weights file that must exist) that can run before any scene is
        read or model loaded.
        """
        factory = self.get(name)
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = None
        if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            unknown = sorted(set(options) - set(accepted))
            if unknown:
                raise ConfigError(
                    f"{self.kind} {name!r} has no option {', '.join(unknown)}; "
                    + (f"it accepts: {', '.join(accepted)}" if accepted else "it takes no options")
                )
        precheck = getattr(factory, "precheck", None)
        if callable(precheck):  # the factory's own cheap checks (files its options name), no model loaded
            precheck(dict(options))

    def build(self, name: str, **kwargs) -> T:
        self.check_options(name, kwargs)
        return self.get(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._items


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
