"""Pieces the ready models share: argument checks and the FLT block stack."""

from __future__ import annotations

from torch import nn

from flt3d.nn.conv import FLTBlock

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


def block_stack(channels: int, num_layers: int, **options) -> nn.ModuleList:
    """``num_layers`` :class:`~flt3d.nn.FLTBlock` of width ``channels`` with the same options."""
    return nn.ModuleList(FLTBlock(channels, **options) for _ in range(num_layers))
