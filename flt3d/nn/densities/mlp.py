"""MLPSpectrum: a small MLP as the spectral density, for the general case without a closed form."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flt3d.nn.spectrum import Spectrum

__all__ = ["MLPSpectrum"]


class MLPSpectrum(Spectrum):
    r"""A small MLP density for the general case: :math:`g_\theta(\xi) = p(\xi)\,\mathrm{MLP}_\theta(\xi/s)`.

    The MLP returns both the even weight ``a`` and the odd (directional) weight ``b`` of every
    head. There is no closed form; :meth:`limit` is a large Monte Carlo sum.

    Args:
        heads: number of heads.
        pos_dim: coordinate dimension ``D``.
        hidden_channels: MLP width (default ``32``).
        init_scale: initial constant ``a`` (default ``1.0``): :math:`f` starts as a Gaussian of
            width ``length_scale``.
        **kwargs: :class:`~flt3d.nn.spectrum.Spectrum` options.
    """

    def __init__(
        self,
        heads: int,
        pos_dim: int,
        *,
        hidden_channels: int = 32,
        init_scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(heads, pos_dim, **kwargs)
        self.init_scale = init_scale
        self.net = nn.Sequential(
            nn.Linear(pos_dim, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, 2 * heads),
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Default layer init, then a small last layer whose bias gives ``a = init_scale``."""
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        last = self.net[-1]
        last.weight.mul_(0.1)
        last.bias.zero_()
        last.bias[: self.heads] = self.init_scale

    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(xi / self.proposal_scale)  # [H, R, 2H]: head h reads outputs h, H + h
        idx = torch.arange(self.heads, device=xi.device)
        return out[idx, :, idx], out[idx, :, self.heads + idx]
