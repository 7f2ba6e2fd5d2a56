"""Pieces the ready models share: argument checks, and the ``config`` read from the constructor's
signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

POSITIONALS = ("rpe", "absolute", "none")


def check_positive(**values: int) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_dropout(dropout: float) -> float:
    """``dropout`` as a float in ``[0, 1)``."""
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return float(dropout)


def attention_spectrum(positional: str, spectrum: str | None) -> str | None:
    """The spectrum the attention uses for a ``positional`` option (``None`` unless ``"rpe"``)."""
    if positional not in POSITIONALS:
        raise ValueError(f"positional must be one of {POSITIONALS}, got {positional!r}")
    if positional != "rpe":
        return None
    if spectrum is None:
        raise ValueError("positional='rpe' needs a spectrum; use positional='none' for no RPE")
    return spectrum


@functools.cache
def _storers(cls: type) -> dict[str, Callable[[Any], Any] | None]:
    # per constructor argument, in the signature's order: how its value is stored
    storers = {}
    for name, parameter in inspect.signature(cls, eval_str=True).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{cls.__name__}'s config cannot hold *{name}")
        hint = parameter.annotation
        storers[name] = float if hint in (float, float | None) else bool if hint is bool else None
    return storers


def constructor_config(cls: type, arguments: Mapping[str, Any], **resolved: Any) -> dict[str, Any]:
    """A model's ``config``: every argument of ``cls``'s constructor by name, in the order of its
    signature, so that ``cls(**config)`` builds the model again.

    A value comes from ``resolved`` where given there (what the constructor normalises: a
    resolved default, tensors as plain lists), else from ``arguments``, the constructor's
    ``locals()`` (so an argument rebound to its checked value is stored checked), with a
    ``float`` (or ``float | None``) argument stored as a float and a ``bool`` one as a bool.

    Example:
        >>> class Model:
        ...     def __init__(self, width: int, *, scale: float | None = 1, flag: bool = 0): ...
        >>> constructor_config(Model, {"self": None, "width": 4, "scale": 2, "flag": 1})
        {'width': 4, 'scale': 2.0, 'flag': True}
        >>> constructor_config(Model, {"width": 4, "scale": None, "flag": 0}, width=8)
        {'width': 8, 'scale': None, 'flag': False}
    """
    storers = _storers(cls)
    unknown = sorted(set(resolved) - set(storers))
    if unknown:
        raise TypeError(f"{unknown} are not arguments of {cls.__name__}")
    config = {}
    for name, store in storers.items():
        value = resolved[name] if name in resolved else arguments[name]
        stored = name in resolved or value is None or store is None
        config[name] = value if stored else store(value)
    return config
