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

import math

import torch
from torch import Tensor, nn

from flt3d.nn.attention import linear_attention_sums
from flt3d.nn.densities import make_spectrum
from flt3d.nn.graph import (
    GraphSizes,
    center_pos,
    checked_inputs,
    distance,
    gather,
    graph_pairs,
    graph_sizes,
)
from flt3d.nn.neighbors import Neighbors, cosine_cutoff, local_neighbors
from flt3d.nn.pairs import pair_sum
from flt3d.nn.precision import full_precision
from flt3d.nn.switches import LayerModes

__all__ = ["SpectralFilter"]


class SpectralFilter(LayerModes, nn.Module):
    r"""Per-head spectral filter convolution over graphs (see the module docstring).

    Three kinds of filter, one vocabulary of modes (``attention``, shared with
    :class:`~flt3d.nn.FLTAttention`):

    - **local** (``cutoff`` given): :math:`f_h(\Delta)\,u(\lVert\Delta\rVert/r_c)`, the
      closed form times a cosine envelope. ``"linear"`` sums it over a neighbour list, O(N k);
      ``"exact"`` over all pairs. The same function in both modes, exactly: sharp filters
      (bumps at bond lengths) have too much spectral mass for a low-rank estimate, and need
      none.
    - **global, finite-frequency** (default): :math:`\hat f_h` from ``R`` frequencies.
      ``"linear"`` uses its low-rank factors, O(N R d); ``"exact"`` sums the same
      :math:`\hat f_h` over all pairs, so linear equals exact up to rounding for one draw and
      both tend to :math:`f` as ``R`` grows.
    - **global, closed form** (``closed_form=True``): ``"exact"`` applies the
      :math:`R\to\infty` limit :math:`f_h`; ``"linear"`` still estimates it with ``R``
      frequencies.

    Args:
        heads: number of heads ``H`` (one filter each).
        head_channels: channels per head ``d``.
        pos_dim: coordinate dimension ``D``.
        spectrum: spectral family (default ``"isotropic_mixture"``; see
            :func:`flt3d.nn.densities.make_spectrum`).
        num_frequencies: frequencies ``R`` of the global filter (default ``16``).
        attention: ``"linear"`` or ``"exact"`` (default ``"linear"``); the name matches
            :class:`~flt3d.nn.FLTAttention` so :func:`~flt3d.nn.set_attention` switches both.
        length_scale: shortest length the filter resolves (default ``1.0``).
        cutoff: make the filter local, with this cutoff radius (default ``None``: global).
        closed_form: exact mode of a global filter applies the closed form (default ``False``).
        sampler: frequency sampler of a global filter (default ``"proposal"``; see
            :class:`~flt3d.nn.spectrum.Spectrum`).
        nodes: node layout of its draws (default ``"iid"``; see :mod:`flt3d.nn.samplers`).
        redraw: ``"never"`` or ``"train"`` (fresh frequencies at every training-mode forward
            pass; the stored ones in eval mode) (default ``"never"``).
        spectrum_options: further options of the spectral family.

    Shapes:
        - **input:** v ``[N, H, d]``, pos ``[N, D]``, batch ``[N]`` (optional), neighbors
          (optional, local filters: a :class:`~flt3d.nn.neighbors.Neighbors` with self loops
          and at least this cutoff).
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
        cutoff: float | None = None,
        closed_form: bool = False,
        sampler: str = "proposal",
        nodes: str = "iid",
        redraw: str = "never",
        spectrum_options: dict | None = None,
    ) -> None:
        super().__init__()
        if spectrum is None:
            raise ValueError("SpectralFilter needs a spectrum, got None")
        self.heads = heads
        self.head_channels = head_channels
        self.pos_dim = pos_dim
        self.init_modes(attention, redraw)
        self.cutoff = None if cutoff is None else float(cutoff)
        if self.cutoff is not None and not (math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ValueError(f"cutoff must be a positive number, got {cutoff}")
        self.spectrum = make_spectrum(
            spectrum,
            heads,
            pos_dim,
            num_frequencies=1 if self.cutoff is not None else num_frequencies,
            length_scale=length_scale,
            **({} if self.cutoff is not None else {"sampler": sampler, "nodes": nodes}),
            **(spectrum_options or {}),
        )
        self.closed_form = bool(closed_form)
        if (self.cutoff is not None or self.closed_form) and not self.spectrum.closed_form:
            raise ValueError(
                f"a local or closed-form filter needs a family with a closed form, got {spectrum!r}"
            )

    def reset_parameters(self) -> None:
        """Reset the spectral parameters."""
        self.spectrum.reset_parameters()

    def frequencies(self) -> Tensor | None:
        """Fresh frequencies in training mode with ``redraw="train"``, else ``None`` (stored).

        None are drawn where the forward pass uses none: a local filter, and the closed form
        of exact mode."""
        uses_frequencies = self.cutoff is None and not (
            self.closed_form and self.attention == "exact"
        )
        if uses_frequencies and self.redraw == "train" and self.training:
            return self.spectrum.draw_frequencies().to(self.spectrum.frequencies)
        return None

    def filter(self, delta: Tensor, frequencies: Tensor | None = None) -> Tensor:
        """The filter exact mode applies, ``delta [..., D]`` → ``[..., H]``."""
        if self.cutoff is not None:
            envelope = cosine_cutoff(distance(delta), self.cutoff)
            return self.spectrum.limit(delta) * envelope.unsqueeze(-1)
        if self.closed_form:
            return self.spectrum.limit(delta)
        return self.spectrum(delta, frequencies)

    @full_precision
    def forward(
        self,
        v: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        neighbors: Neighbors | None = None,
        num_graphs: int | None = None,
        validate: bool = True,
        sizes: GraphSizes | None = None,
    ) -> Tensor:
        """Filter; see the class docstring for shapes; ``num_graphs``, ``validate`` and
        ``sizes`` as in :meth:`FLTAttention.forward <flt3d.nn.FLTAttention.forward>`."""
        expected = (self.heads, self.head_channels)
        if v.dim() != 3 or tuple(v.shape[1:]) != expected:
            raise ValueError(f"v must be [N, {expected[0]}, {expected[1]}], got {tuple(v.shape)}")
        if pos.dim() != 2 or pos.shape != (v.shape[0], self.pos_dim):
            raise ValueError(
                f"pos must be [N, {self.pos_dim}] = [{v.shape[0]}, {self.pos_dim}], "
                f"got {tuple(pos.shape)}"
            )
        batch, num_graphs = checked_inputs(pos, batch, num_graphs, validate)
        if sizes is not None:
            sizes.check(batch, num_graphs)
        pos = center_pos(pos.to(v.dtype), batch, num_graphs)
        frequencies = self.frequencies()
        if neighbors is not None and neighbors.periodic:
            if self.cutoff is None:
                raise ValueError(
                    "periodic neighbours need a local filter (a cutoff): a global low-rank "
                    "filter over one cell's atoms is not a periodic function"
                )
            return self._local(v, pos, batch, num_graphs, neighbors)
        if self.attention == "linear" and sizes is None:
            sizes = graph_sizes(batch, num_graphs)
        if self.attention == "exact" or (self.cutoff is not None and sizes.small()):
            # a local filter is the same function in both modes: on small graphs the pairs of
            # each graph are cheaper than a neighbour list
            return self._exact(v, pos, batch, num_graphs, frequencies)
        if self.cutoff is not None:
            return self._local(v, pos, batch, num_graphs, neighbors)
        xi, a, b = self.spectrum.estimate(frequencies)
        if xi.shape[0] == 1 and self.heads > 1:
            return self._low_rank_shared(v, pos, batch, sizes, xi, a.to(v.dtype), b.to(v.dtype))
        psi_q, psi_k = self.spectrum.features(pos, frequencies)  # [N, H, 2R]
        state = v.new_zeros(num_graphs, self.heads, psi_k.shape[-1], self.head_channels)
        state = state.index_add(0, batch, psi_k.unsqueeze(-1) * v.unsqueeze(-2))
        return torch.einsum("nhr,nhrd->nhd", psi_q, gather(state, batch))

    def _exact(self, v, pos, batch, num_graphs, frequencies):
        i, j = graph_pairs(batch, num_graphs)
        if not self.spectrum.even:
            f = self.filter(gather(pos, i) - gather(pos, j), frequencies).unsqueeze(-1)
            message = f * gather(v, j)
            return torch.zeros_like(v).index_add_(0, i, message)
        # f(-d) = f(d): evaluate each unordered pair once, and the self term f(0) once
        upper = i < j
        i, j = i[upper], j[upper]
        f = self.filter(gather(pos, i) - gather(pos, j), frequencies).unsqueeze(-1)
        out = self.filter(pos.new_zeros(1, self.pos_dim), frequencies).unsqueeze(-1) * v
        out = out.index_add(0, i, f * gather(v, j))
        return out.index_add(0, j, f * gather(v, i))

    def _local(self, v, pos, batch, num_graphs, neighbors):
        neighbors = local_neighbors(neighbors, pos, batch, num_graphs, self.cutoff)
        index = neighbors.index
        if self.spectrum.even and neighbors.shift is None:
            # f(-d) = f(d): each unordered pair once, summed both ways (self pairs once)
            index = index[:, index[0] <= index[1]]
        if index is neighbors.index:
            delta = neighbors.displacements(pos)
        else:
            delta = gather(pos, index[0]) - gather(pos, index[1])

        def message(v_j, delta_p):
            return self.filter(delta_p).unsqueeze(-1) * v_j

        options = dict(params=tuple(self.spectrum.parameters()), per_pair=3 * self.heads * self.head_channels)
        out = pair_sum(message, index, v.shape[0], sources_j=(v,), pair_data=(delta,), **options)
        if index is not neighbors.index:
            upper = index[:, index[0] < index[1]]
            out = out + pair_sum(
                message,
                upper.flip(0),
                v.shape[0],
                sources_j=(v,),
                pair_data=(delta[index[0] < index[1]],),
                **options,
            )
        return out

    def _low_rank_shared(self, v, pos, batch, sizes, xi, a, b):
        # one set of R frequencies for all heads: trigonometric features cost R per token,
        # not H R; the per-graph state is the usual [G, H, 2R, d] segment sum
        r = xi.shape[1]
        theta = 2 * math.pi * pos @ xi[0].to(pos.dtype).T  # [N, R]
        cos, sin = theta.cos(), theta.sin()
        # f(ri - rj) = sum_r a (cos_i cos_j + sin_i sin_j) + b (sin_i cos_j - cos_i sin_j) / R
        a, b = a.unsqueeze(0) / r, b.unsqueeze(0) / r  # [1, H, R]
        read = torch.cat(
            [a * cos.unsqueeze(1) + b * sin.unsqueeze(1), a * sin.unsqueeze(1) - b * cos.unsqueeze(1)],
            dim=-1,
        )  # [N, H, 2R]
        trig = torch.cat([cos, sin], dim=-1).unsqueeze(1).expand(-1, self.heads, -1)
        return linear_attention_sums(read, trig, v, batch, sizes.num_graphs, sizes=sizes)[..., :-1]

    def __repr__(self) -> str:
        extra = "" if self.cutoff is None else f", cutoff={self.cutoff}"
        return (
            f"{type(self).__name__}(heads={self.heads}, head_channels={self.head_channels}, "
            f"pos_dim={self.pos_dim}, attention={self.attention!r}{extra})"
        )
