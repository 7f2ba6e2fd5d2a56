"""Argument checks shared by every layer: integers, booleans and numbers, with one message form.

Every message reads ``"<name> must be <what>, got <value>"``. The module imports nothing from
``flt3d``, so it sits in the lowest layer and the layers above (atomistic, datasets, models,
training, cli) all use it.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["check_bool", "check_index", "check_int", "check_number"]


def check_index(
    value: Any, name: str, expected: str, *, error: type[ValueError] = ValueError
) -> int:
    """``operator.index(value)`` (so NumPy and 0-d tensor integers pass), refusing bools.

    Args:
        value: the value to check.
        name: how the message names it.
        expected: what the message says it must be (``"a non-negative integer"``).
        error: the exception class raised, a ``ValueError`` (default ``ValueError``).

    Example:
        >>> check_index(3, "seed", "a non-negative integer")
        3
        >>> check_index(2.5, "seed", "a non-negative integer")
        Traceback (most recent call last):
            ...
        ValueError: seed must be a non-negative integer, got 2.5
    """
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise error(f"{name} must be {expected}, got {value!r}") from None


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int = 1,
    none: str | None = None,
    index: bool = False,
    got_index: bool = True,
    error: type[ValueError] = ValueError,
) -> Any:
    """``value`` if it is an ``int`` (not a bool) of at least ``minimum``, else ``error``.

    Args:
        value: the value to check.
        name: how the message names it (``"data.batch_size"``, ``"config key 'seed'"``).
        minimum: the least value allowed (default ``1``).
        none: if given, ``None`` is allowed too and the message says so by this word
            (``"null"`` for configuration keys, ``"None"`` for arguments; default: not allowed).
        index: accept whatever ``operator.index`` accepts (NumPy integers, 0-d integer
            tensors) and return the plain ``int`` it gives (default: ``int`` only).
        got_index: with ``index``, a value below ``minimum`` is shown in the message as that
            plain ``int``; ``False`` shows the ``repr`` of the argument (default ``True``).
        error: the exception class raised, a ``ValueError`` (default ``ValueError``).

    Example:
        >>> check_int(0, "data.seed", minimum=0)
        0
        >>> check_int(True, "config key 'num_threads'", none="null")
        Traceback (most recent call last):
            ...
        ValueError: config key 'num_threads' must be a positive integer or null, got True
    """
    if value is None and none is not None:
        return value
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}"
    )
    expected = what if none is None else f"{what} or {none}"
    if index:
        number = check_index(value, name, expected, error=error)
    elif isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be {expected}, got {value!r}")
    else:
        number = value
    if number < minimum:
        shown = f"{number}" if index and got_index else repr(value)
        raise error(f"{name} must be {expected}, got {shown}")
    return number


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``, else ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_number(value: Any, name: str, *, low: float, high: float) -> float:
    """``value`` if it is a real number (not a bool) strictly between ``low`` and ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
        raise ValueError(f"{name} must be a number in ({low:g}, {high:g}), got {value!r}")
    return value
