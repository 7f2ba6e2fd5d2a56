"""Small argument checks shared by the data modules, modules, run configuration and CLI."""

from __future__ import annotations

from typing import Any

__all__ = ["check_bool", "check_int", "check_number"]


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int = 1,
    none: str | None = None,
    error: type[ValueError] = ValueError,
) -> Any:
    """``value`` if it is an ``int`` (not a bool) of at least ``minimum``, else ``error``.

    Args:
        value: the value to check.
        name: how the message names it (``"data.batch_size"``, ``"config key 'seed'"``).
        minimum: the least value allowed (default ``1``).
        none: if given, ``None`` is allowed too and the message says so by this word
            (``"null"`` for configuration keys, ``"None"`` for arguments; default: not allowed).
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
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        alternative = "" if none is None else f" or {none}"
        raise error(f"{name} must be {what}{alternative}, got {value!r}")
    return value


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
