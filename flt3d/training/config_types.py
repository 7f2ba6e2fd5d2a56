"""Type checks of a run configuration's values against the annotations of the callables they
configure, with jsonargparse.

Each mapping section of a run configuration is the keyword arguments of one callable (see
:func:`flt3d.training.tasks.section_keys`); jsonargparse reads that callable's signature and checks
every value given against its parameter's annotation, so ``model.hidden_channels: abc`` is an
error naming the key and ``int``, before any data is read or any model built.

Only parameters annotated with plain types are checked: ``int``, ``float``, ``bool``, ``str``,
``None``, ``Literal``, ``timedelta``, and unions, sequences, tuples and mappings of them.
A parameter whose annotation names any other class (``Tensor``, ``Profiler``, ``Strategy``) is
accepted as given, as are parameters without a default: for a class jsonargparse would read a
string value as a class path and import its module, and the callable checks its own value.
Values are checked, not converted: the configuration keeps the values as written.

Example:
    >>> from flt3d.models.fltnet import FLTNet
    >>> check_types({"hidden_channels": "abc"}, FLTNet, "model")
    Traceback (most recent call last):
        ...
    flt3d.training.config.ConfigError: config key 'model.hidden_channels' must be int, got 'abc'
"""

from __future__ import annotations

import collections.abc
import copy
import datetime
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flt3d.training.config import ConfigError

__all__ = ["check_types", "checked_parameters"]

_PLAIN = (int, float, bool, str, type(None), datetime.timedelta)
_CONTAINERS = (
    list, tuple, dict, set, frozenset, collections.abc.Sequence, collections.abc.Mapping,
    collections.abc.MutableSequence, collections.abc.MutableMapping,
)  # fmt: skip


def _plain(hint: Any) -> bool:
    """Whether ``hint`` is built of plain types only (see the module docstring)."""
    if hint in _PLAIN:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return all(isinstance(arg, (int, float, bool, str, type(None))) for arg in hint.__args__)
    if origin in (typing.Union, types.UnionType) or origin in _CONTAINERS:
        return all(arg is Ellipsis or _plain(arg) for arg in typing.get_args(hint))
    return False


def _hints(callable_: Callable) -> dict[str, Any]:
    target = callable_.__init__ if inspect.isclass(callable_) else callable_
    try:
        return typing.get_type_hints(target)
    except Exception:  # an annotation that does not resolve: nothing of it is checked
        return {}


def _type_name(hint: Any) -> str:
    """``hint`` as written in an annotation: ``int``, ``str | None``, ``Sequence[float]``."""
    if hint is type(None):
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is not None:
        inner = ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args)
        return f"{origin.__name__}[{inner}]" if args else origin.__name__
    return getattr(hint, "__name__", str(hint))


@functools.cache
def _parser(callable_: Callable, exclude: frozenset[str]) -> tuple[Any, dict[str, str]]:
    """A jsonargparse parser of ``callable_``'s checked parameters, and their type names."""
    from jsonargparse import ArgumentParser

    hints = _hints(callable_)
    parameters = inspect.signature(callable_).parameters
    checked = {
        name: _type_name(hints[name])
        for name, parameter in parameters.items()
        if name not in exclude
        and name in hints
        and parameter.default is not parameter.empty
        and _plain(hints[name])
    }
    parser = ArgumentParser(exit_on_error=False)
    skip = set(parameters) - set(checked)
    if inspect.isclass(callable_):
        parser.add_class_arguments(callable_, skip=skip, fail_untyped=False)
    else:
        parser.add_function_arguments(callable_, skip=skip, fail_untyped=False)
    return parser, checked


def checked_parameters(callable_: Callable, exclude: Iterable[str] = ()) -> dict[str, str]:
    """The parameters of ``callable_`` whose values :func:`check_types` checks, with their types.

    Example:
        >>> from flt3d.training.optim import configure_optimizers
        >>> checked_parameters(configure_optimizers)["betas"]
        'Sequence[float]'
    """
    return dict(_parser(callable_, frozenset(exclude))[1])


def check_types(
    values: Mapping[str, Any], callable_: Callable, where: str, exclude: Iterable[str] = ()
) -> None:
    """Check each value of a section against its parameter's annotation in ``callable_``.

    Args:
        values: the section (its keys are already known to be parameters of ``callable_``).
        callable_: the class or function the section configures.
        where: the section's name, for messages (``"model"``).
        exclude: parameters that the section may not set, left unchecked.

    Raises:
        ConfigError: naming the first value not of its parameter's type, with the type.
    """
    parser, checked = _parser(callable_, frozenset(exclude))
    given = {key: value for key, value in values.items() if key in checked and value is not None}
    if _parses(parser, given):  # null is left to the callable, as jsonargparse does
        return
    for key, value in given.items():  # the first value that does not parse
        if not _parses(parser, {key: value}):
            raise ConfigError(f"config key '{where}.{key}' must be {checked[key]}, got {value!r}")


def _parses(parser: Any, values: dict[str, Any]) -> bool:
    from jsonargparse import ArgumentError

    try:  # a copy: jsonargparse converts the items of a list in place (0 → 0.0)
        parser.parse_object(copy.deepcopy(values), defaults=False)
    except (ArgumentError, TypeError, ValueError):
        return False
    return True
