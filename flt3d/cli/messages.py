"""How the ``flt3d`` commands report an error: one line on stderr and exit status 1."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["HANDLED", "fail", "naming_overrides"]

#: the exceptions that bad input raises (configuration, overrides, checkpoints, files)
HANDLED = (ValueError, ImportError, OSError)


def fail(command: str, error: BaseException) -> int:
    """Print ``flt3d COMMAND: error: MESSAGE`` (on one line) to stderr; returns the exit code 1."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"flt3d {command}: error: {message or type(error).__name__}", file=sys.stderr)
    return 1


def naming_overrides(error: BaseException, overrides: Sequence[str]) -> BaseException:
    """``error``, with the ``--set`` overrides listed when it is a ``ValueError`` naming none."""
    # a value rejected deep inside (int('cpu')) may leave its key unnamed: then name them all
    if not isinstance(error, ValueError):
        return error
    keys = [text.partition("=")[0].strip().split(".")[-1] for text in overrides]
    if not overrides or any(key and key in str(error) for key in keys):
        return error
    listed = ", ".join(repr(text) for text in overrides)
    return ValueError(f"{error} (--set overrides: {listed})")
