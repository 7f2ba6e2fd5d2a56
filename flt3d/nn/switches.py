"""Mode switches of the FLT layers: their ``attention`` mode and ``redraw`` policy.

:class:`LayerModes` gives :class:`~flt3d.nn.FLTAttention` and :class:`~flt3d.nn.SpectralFilter`
the two attributes, checked against :mod:`flt3d.nn.modes`; :func:`set_attention` and
:func:`set_redraw` switch every such layer inside a model.
"""

from __future__ import annotations

from torch import nn

from flt3d.nn.modes import ATTENTIONS, REDRAWS

__all__ = ["LayerModes", "set_attention", "set_redraw"]


class LayerModes:
    """Mixin of an FLT layer's ``attention`` (``"linear"`` or ``"exact"``) and ``redraw``."""

    def init_modes(self, attention: str, redraw: str) -> None:
        """Check and set both modes, as the layer's constructor received them."""
        if redraw not in REDRAWS:
            raise ValueError(f"redraw must be one of {REDRAWS}, got {redraw!r}")
        self.attention = attention
        self.redraw = redraw

    @property
    def attention(self) -> str:
        """``"linear"`` or ``"exact"``; may be changed at any time."""
        return self._attention

    @attention.setter
    def attention(self, value: str) -> None:
        if value not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {value!r}")
        self._attention = value


def set_attention(module: nn.Module, attention: str) -> nn.Module:
    """Switch every :class:`~flt3d.nn.FLTAttention` inside ``module`` to ``attention``.

    Args:
        module: any module.
        attention: ``"linear"`` or ``"exact"``.

    Returns:
        ``module``, for chaining.
    """
    if attention not in ATTENTIONS:  # also where the module holds no FLT layer
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
    for m in module.modules():
        if isinstance(m, LayerModes):
            m.attention = attention
    return module


def set_redraw(module: nn.Module, redraw: str) -> nn.Module:
    """Set the redraw policy (``"never"`` or ``"train"``) of every FLT layer inside ``module``.

    Returns:
        ``module``, for chaining.
    """
    if redraw not in REDRAWS:  # also where the module holds no FLT layer
        raise ValueError(f"redraw must be 'never' or 'train', got {redraw!r}")
    for m in module.modules():
        if isinstance(m, LayerModes):
            m.redraw = redraw
    return module
