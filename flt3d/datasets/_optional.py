"""Imports of the optional molecule extras, with an error that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MOLECULES_EXTRA", "import_optional"]

MOLECULES_EXTRA = "pip install 'flt3d[molecules]'"


def import_optional(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency of the ``molecules`` extra.

    Args:
        module: module to import, e.g. ``"rdkit.Chem"``.
        purpose: what needs it, for the error message, e.g. ``"reading sdf files"``.

    Returns:
        The imported module.

    Raises:
        ImportError: naming the extra to install when ``module`` is missing.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise ImportError(
            f"{purpose} needs the optional package {package!r}; install it with {MOLECULES_EXTRA}"
        ) from error
