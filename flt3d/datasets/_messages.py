"""Pieces of error messages shared by the readers of structure and mesh files."""

from __future__ import annotations

__all__ = ["_one_line"]


def _one_line(error: Exception) -> str:
    """``"<ErrorType>: <message>"`` with the message's whitespace, newlines too, made single spaces.

    Example:
        >>> _one_line(ValueError("bad\\n  header"))
        'ValueError: bad header'
        >>> _one_line(KeyError())
        'KeyError'
    """
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
