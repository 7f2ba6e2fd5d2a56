"""Small argument checks shared by the data modules and modules."""

from __future__ import annotations

from typing import Any

__all__ = ["check_int"]


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` if it is an ``int`` (not a bool) of at least ``minimum``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value
