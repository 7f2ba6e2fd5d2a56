"""Where processed datasets are cached."""

from __future__ import annotations

import os

__all__ = ["default_data_root"]


def default_data_root() -> str:
    """Folder of the processed dataset caches: ``$FLT3D_DATA`` or ``~/.cache/flt3d``."""
    return os.environ.get("FLT3D_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "flt3d")
