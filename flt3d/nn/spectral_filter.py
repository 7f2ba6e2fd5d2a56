r"""SpectralFilter: an unnormalised sum of values weighted by a learned spectral RPE.

.. math::
    \mathrm{out}_i = \sum_{j \in G(i)} f_h(r_i - r_j)\, v_j \qquad \text{(per head } h)

the continuous-filter convolution of SchNet with the filter :math:`f_h` learned through its
Fourier spectrum, over all tokens of the graph. Softmax attention averages (its weights sum to
one per row), so it cannot count neighbours; this sum can, and it carries distance
information into the values. ``"linear"`` mode uses the low-rank factors of :math:`\hat f`,
:math:`\hat f(r_i - r_j) = \psi_Q(r_i)\cdot\psi_K(r_j)`, so it costs O(N R d) per head through
one per-graph state :math:`S_g = \sum_{j\in g} \psi_K(r_j) v_j^\top`; ``"exact"`` sums over
within-graph pairs with the closed form :math:`f` (or :math:`\hat f` for families without one).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flt3d.nn.densities import make_spectrum
from flt3d.nn.flt_attention import ATTENTIONS
from flt3d.nn.graph import center_pos, check_batch, graph_pairs

__all__ = ["SpectralFilter"]


class SpectralFilter(nn.Module):
    r"""Per-head spectral filter convolution over graphs (see the module docstring).

    Args:
        heads: number of heads ``H`` (one filter each).
        head_channels: channels per head ``d``.
        pos_dim: coordinate dimension ``D``.
        spectrum: spectral family (default ``"isotropic_mixture"``; see
            :func:`flt3d.nn.densities.make_spectrum`).
        num_frequencies: frequencies ``R`` of the linear mode (default ``16``).
        attention: ``"linear"`` or ``"exact"`` (default ``"linear"``); the name matches
            :class:`~flt3d.nn.FLTAttention` so :func:`~flt3d.nn.set_attention` switches both.
        length_scale: shortest length the filter resolves (default ``1.0``).
        spectrum_options: further options of the spectral family.

    Shapes:
        - **input:** v ``[N, H, d]``, pos ``[N, D]``, batch ``[N]`` (optional).
        - **output:** ``[N, H, d]``.

    Example:
        >>> import torch
        >>> conv = SpectralFilter(2, 4, 3, attention="exact")
        >>> conv(torch.randn(5, 2, 4), torch.randn(5, 3)).shape
        torch.Size([5, 2, 4])
    """

    def __init__(
        self,
        heads: int,
        head_channels: int,
        pos_dim: int,
        *,
        spectrum: str = "isotropic_mixture",
        num_frequencies: int = 16,
        attention: str = "linear",
        length_scale: float = 1.0,
        spectrum_options: dict | None = None,
    ) -> None:
        super().__init__()
        if spectrum is None:
            raise ValueError("SpectralFilter needs a spectrum, got None")
        self.heads = heads
        self.head_channels = head_channels
        self.pos_dim = pos_dim
        self.attention = attention
        self.spectrum = make_spectrum(
            spectrum,
            heads,
            pos_dim,
            num_frequencies=num_frequencies,
            length_scale=length_scale,
            **(spectrum_options or {}),
        )

    @property
    def attention(self) -> str:
        """``"linear"`` or ``"exact"``; may be changed at any time."""
        return self._attention

    @attention.setter
    def attention(self, value: str) -> None:
        if value not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {value!r}")
        self._attention = value

    def reset_parameters(self) -> None:
        """Reset the spectral parameters."""
        self.spectrum.reset_parameters()

    def filter(self, delta: Tensor) -> Tensor:
        """The filter exact mode applies, ``delta [..., D]`` → ``[..., H]``."""
        if self.spectrum.closed_form:
            return self.spectrum.limit(delta)
        return self.spectrum(delta)

    def forward(self, v: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        """Filter; see the class docstring for shapes."""
        expected = (self.heads, self.head_channels)
        if v.dim() != 3 or tuple(v.shape[1:]) != expected:
            raise ValueError(f"v must be [N, {expected[0]}, {expected[1]}], got {tuple(v.shape)}")
        if pos.dim() != 2 or pos.shape != (v.shape[0], self.pos_dim):
            raise ValueError(
                f"pos must be [N, {self.pos_dim}] = [{v.shape[0]}, {self.pos_dim}], "
                f"got {tuple(pos.shape)}"
            )
        batch, num_graphs = check_batch(batch, v.shape[0], v.device)
        pos = center_pos(pos.to(v.dtype), batch, num_graphs)
        if self.attention == "exact":
            i, j = graph_pairs(batch, num_graphs)
            if not self.spectrum.even:
                message = self.filter(pos[i] - pos[j]).unsqueeze(-1) * v[j]
                return torch.zeros_like(v).index_add_(0, i, message)
            # f(-d) = f(d): evaluate each unordered pair once, and the self term f(0) once
            upper = i < j
            i, j = i[upper], j[upper]
            f = self.filter(pos[i] - pos[j]).unsqueeze(-1)
            out = self.filter(pos.new_zeros(1, self.pos_dim)).unsqueeze(-1) * v
            out = out.index_add(0, i, f * v[j])
            return out.index_add(0, j, f * v[i])
        psi_q, psi_k = self.spectrum.features(pos)  # [N, H, 2R]
        state = v.new_zeros(num_graphs, self.heads, psi_k.shape[-1], self.head_channels)
        state = state.index_add(0, batch, psi_k.unsqueeze(-1) * v.unsqueeze(-2))
        return torch.einsum("nhr,nhrd->nhd", psi_q, state[batch])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(heads={self.heads}, head_channels={self.head_channels}, "
            f"pos_dim={self.pos_dim}, attention={self.attention!r})"
        )
