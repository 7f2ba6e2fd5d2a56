"""Plain values: constructor arguments as JSON/YAML-friendly Python values, for a model's
``config``."""

from __future__ import annotations

from torch import Tensor

from flt3d.atomistic import element_symbol


def plain(value):
    """A constructor argument as JSON/YAML-friendly Python values (tensors become lists)."""
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, dict):
        # element keys as symbols: JSON would turn integer keys into strings anyway
        return {
            key if isinstance(key, str) else element_symbol(key): plain(v)
            for key, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
