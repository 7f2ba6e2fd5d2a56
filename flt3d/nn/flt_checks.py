"""Argument checks of :class:`~flt3d.nn.flt_attention.FLTAttention`: its cutoff options and its inputs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import Tensor

from flt3d.nn.modes import FARS

if TYPE_CHECKING:
    from flt3d.nn.flt_attention import FLTAttention

__all__ = ["check_inputs", "check_options"]


def check_options(
    *,
    cutoff: float | None,
    far_temperature: float,
    far: str | None,
    long_range: str | None,
    spectrum: str | None,
    mask: str,
    causal: bool,
    closed_form_rpe: bool,
) -> tuple[float | None, float]:
    """Check the options of the cutoff, the far pairs and the long range; ``(cutoff, far_temperature)`` as floats."""
    cutoff_value = None if cutoff is None else float(cutoff)
    temperature = float(far_temperature)
    if not 0 < temperature <= 1:
        raise ValueError(f"far_temperature must be in (0, 1], got {far_temperature}")
    if temperature != 1 and cutoff_value is None:
        raise ValueError("far_temperature needs a cutoff (it applies beyond it)")
    if far not in FARS:
        raise ValueError(f"far must be one of {FARS}, got {far!r}")
    if far is None and (cutoff is None or long_range is not None or far_temperature != 1):
        raise ValueError(
            "far=None (attention within the cutoff only) needs a cutoff, no long_range and "
            f"far_temperature=1, got cutoff={cutoff}, long_range={long_range!r}, "
            f"far_temperature={far_temperature}"
        )
    if cutoff_value is not None:
        if not (math.isfinite(cutoff_value) and cutoff_value > 0):
            raise ValueError(f"cutoff must be a positive number, got {cutoff}")
        if spectrum is None or mask != "exp" or causal or closed_form_rpe:
            raise ValueError(
                "cutoff needs a spectrum, mask='exp', causal=False and no closed_form_rpe, "
                f"got spectrum={spectrum!r}, mask={mask!r}, causal={causal}, "
                f"closed_form_rpe={closed_form_rpe}"
            )
    elif long_range is not None:
        raise ValueError("long_range needs a cutoff (it is the part beyond it)")
    return cutoff_value, temperature


def check_inputs(layer: FLTAttention, q: Tensor, k: Tensor, v: Tensor, pos: Tensor) -> None:
    """Check the shapes of a forward pass's ``q, k, v`` and ``pos`` against ``layer``."""
    expected = (layer.heads, layer.head_channels)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != 3 or tuple(t.shape[1:]) != expected:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be [N, {expected[0]}, {expected[1]}], got {shape}")
    if not (q.shape[0] == k.shape[0] == v.shape[0]):
        raise ValueError(
            f"q, k, v must have the same N, got {q.shape[0]}, {k.shape[0]}, {v.shape[0]}"
        )
    if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.shape[1] != layer.pos_dim:
        shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
        raise ValueError(f"pos must be [N, {layer.pos_dim}] (pos_dim={layer.pos_dim}), got {shape}")
    if pos.shape[0] != q.shape[0]:
        raise ValueError(f"pos must have N = {q.shape[0]} rows like q, got {pos.shape[0]}")
    if not pos.is_floating_point():
        raise ValueError(f"pos must be a floating tensor, got {pos.dtype}")
