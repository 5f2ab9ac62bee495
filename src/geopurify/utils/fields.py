"""Type checks of config dataclass fields, for values given from Python rather than parsed by the CLI.

The CLI parses every option to its field's type, but a Python caller can pass anything
(``SegmentConfig(voxel_size="0.02")``, ``api.query(out, ["sofa"], threshold=None or "0.3")``); without
this check such a value reached a comparison in ``__post_init__`` and surfaced as a bare ``TypeError``
or ``ValueError``. Only scalar fields are checked (``int``, ``float``, ``str``, ``bool`` and their
``| None``); lists, dicts, tuples and callables are left to each class's own validation.

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     k: int = 3
...     def __post_init__(self): check_field_types(self)
>>> Demo(k="8")
Traceback (most recent call last):
...
geopurify.errors.ConfigError: Demo.k: expected an integer, got '8' (str)
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
import types
import typing
from typing import Any

from ..errors import ConfigError

_WHAT = {int: "an integer", float: "a number", str: "a string", bool: "True or False"}


def _accepts(kind: type, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, (bool, numbers.Integral)) and value in (0, 1)
    if kind is int:
        return isinstance(value, numbers.Integral)
    if kind is float:
        return isinstance(value, numbers.Real)
    return isinstance(value, (str, os.PathLike))  # a path where the field holds one as text


@functools.cache
def _scalar_fields(cls: type) -> tuple[tuple[str, type, bool], ...]:
    """(name, scalar type, None allowed) of ``cls``'s init fields whose annotation is a plain scalar."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not evaluate here: nothing to check
        return ()
    out = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        if not f.init or hint is None:
            continue
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
            else (hint,)
        optional = type(None) in args
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) == 1 and kinds[0] in _WHAT:
            out.append((f.name, kinds[0], optional))
    return tuple(out)


def check_field_types(obj: Any) -> None:
    """Refuse (:class:`ConfigError`) a scalar field of the dataclass ``obj`` holding a value of another type."""
    cls = type(obj)
    for name, kind, optional in _scalar_fields(cls):
        value = getattr(obj, name)
        if value is None and optional:
            continue
        if not _accepts(kind, value):
            what = _WHAT[kind] + (" or None" if optional else "")
            raise ConfigError(f"{cls.__name__}.{name}: expected {what}, got {value!r} ({type(value).__name__})")
