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
    return _set_every(module, "attention", attention, ATTENTIONS)


def set_redraw(module: nn.Module, redraw: str) -> nn.Module:
    """Set the redraw policy (``"never"`` or ``"train"``) of every FLT layer inside ``module``.

    Returns:
        ``module``, for chaining.
    """
    return _set_every(module, "redraw", redraw, REDRAWS)


def _set_every(module: nn.Module, name: str, value: str, allowed: tuple[str, ...]) -> nn.Module:
    if value not in allowed:  # checked here too: the module may hold no FLT layer
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    for m in module.modules():
        if isinstance(m, LayerModes):
            setattr(m, name, value)
    return module
