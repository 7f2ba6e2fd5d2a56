"""FLTConv: a PyG-compatible point-cloud layer around FLTAttention, with filter branches."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flt3d.nn.flt_attention import FLTAttention
from flt3d.nn.graph import GraphSizes, checked_inputs, graph_sizes
from flt3d.nn.neighbors import Neighbors, neighbor_list
from flt3d.nn.spectral_filter import SpectralFilter

__all__ = ["FLTConv"]


class FLTConv(nn.Module):
    r"""FourierLearner attention as a point-cloud layer: ``forward(x, pos, batch)``.

    .. math::
        x'_i = W_o \,\mathrm{FLTAttention}(W_q x, W_k x, W_v x, \mathrm{pos}, \mathrm{batch})_i

    With ``spectral_filter=True`` a :class:`~flt3d.nn.SpectralFilter` branch runs beside the
    attention on its own values, :math:`\sum_j f_h(r_i - r_j) W_u x_j`, and :math:`W_o` reads
    both: attention averages, the filter sums (it counts neighbours and weighs them by
    distance), at the same O(N) cost in linear mode.

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels.
        heads: attention heads (default ``8``).
        head_channels: channels per head (default ``out_channels // heads``).
        pos_dim: coordinate dimension (default ``3``).
        attention: ``"linear"`` or ``"exact"`` (default ``"linear"``).
        bias: add biases to the projections (default ``True``).
        spectral_filter: add the spectral filter branch (default ``False``), with its own
            parameters, the attention's ``num_frequencies`` and ``length_scale``. Not causal.
        filter_heads: filters of that branch (default ``heads``); each filters
            ``heads * head_channels / filter_heads`` channels.
        filter_spectrum: spectral family of the filters (default the ``spectrum`` option
            when one is given, else ``"isotropic_mixture"``).
        filter_cutoff: make the filters local with this cutoff (default the attention's
            ``cutoff`` option; see :class:`~flt3d.nn.SpectralFilter`).
        filter_options: further :class:`~flt3d.nn.SpectralFilter` options (default: the
            attention's ``num_frequencies``, ``length_scale``, ``sampler``, ``nodes`` and
            ``redraw``).
        long_range_filter: spectral family of a global, low-rank filter branch
            (:math:`\sum_j \hat f_h(r_i - r_j) W_l x_j` over every atom of the graph, ``heads``
            filters, O(N R d) in linear mode) beside the local one (default ``None``: none).
            Smooth long-range functions (electrostatics-like tails) have the small spectral
            mass random frequencies estimate well.
        long_range_filter_options: its :class:`~flt3d.nn.SpectralFilter` options (default: the
            attention's ``num_frequencies``, ``sampler``, ``nodes`` and ``redraw``, and
            ``length_scale`` from ``long_range_length_scale`` when given).
        **options: further :class:`~flt3d.nn.FLTAttention` options (``spectrum``, ``mask``,
            ``num_features``, ``num_frequencies``, ``causal``, ``length_scale``, ``cutoff``,
            ``long_range``, ``sampler``, ``nodes``, ``redraw``, ...).

    Shapes:
        - **input:** x ``[N, C]``, pos ``[N, pos_dim]``, batch ``[N]`` (optional), neighbors
          (optional: one :class:`~flt3d.nn.neighbors.Neighbors` list, with self loops, shared
          by the layers of a model; found here when a branch has a cutoff and none is given).
        - **output:** ``[N, out_channels]``.

    Example:
        >>> import torch
        >>> conv = FLTConv(16, 32, heads=4)
        >>> conv
        FLTConv(16, 32, heads=4)
        >>> conv(torch.randn(10, 16), torch.randn(10, 3)).shape
        torch.Size([10, 32])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        heads: int = 8,
        head_channels: int | None = None,
        pos_dim: int = 3,
        attention: str = "linear",
        bias: bool = True,
        spectral_filter: bool = False,
        filter_heads: int | None = None,
        filter_spectrum: str | None = None,
        filter_cutoff: float | None = None,
        filter_options: dict | None = None,
        long_range_filter: str | None = None,
        long_range_filter_options: dict | None = None,
        **options,
    ) -> None:
        super().__init__()
        if head_channels is None:
            if out_channels % heads:
                raise ValueError(
                    f"out_channels ({out_channels}) must be divisible by heads ({heads}), "
                    "or give head_channels"
                )
            head_channels = out_channels // heads
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.head_channels = head_channels
        self.filter = None
        self.filter_spectrum: str | None = None  # the families, for the repr
        self.long_range_spectrum = long_range_filter
        if spectral_filter:
            inherited = _filter_options(
                "spectral_filter",
                options,
                "num_frequencies",
                "length_scale",
                "sampler",
                "nodes",
                "redraw",
            )
            filter_heads = heads if filter_heads is None else filter_heads
            if filter_heads < 1 or (heads * head_channels) % filter_heads:
                raise ValueError(
                    f"filter_heads must divide heads * head_channels = {heads * head_channels}, "
                    f"got {filter_heads}"
                )
            self.filter_spectrum = filter_spectrum or options.get("spectrum") or "isotropic_mixture"
            self.filter = SpectralFilter(
                filter_heads,
                heads * head_channels // filter_heads,
                pos_dim,
                spectrum=self.filter_spectrum,
                attention=attention,
                cutoff=options.get("cutoff") if filter_cutoff is None else filter_cutoff,
                **{**inherited, **(filter_options or {})},
            )
        self.long_filter = None
        if long_range_filter is not None:
            inherited = _filter_options(
                "long_range_filter", options, "num_frequencies", "sampler", "nodes", "redraw"
            )
            if options.get("long_range_length_scale") is not None:
                inherited["length_scale"] = options["long_range_length_scale"]
            self.long_filter = SpectralFilter(
                heads,
                head_channels,
                pos_dim,
                spectrum=long_range_filter,
                attention=attention,
                **{**inherited, **(long_range_filter_options or {})},
            )
        branches = 1 + len(self.filters())
        self.qkv = nn.Linear(in_channels, (2 + branches) * heads * head_channels, bias=bias)
        self.attn = FLTAttention(heads, head_channels, pos_dim, attention=attention, **options)
        self.out = nn.Linear(branches * heads * head_channels, out_channels, bias=bias)
        self.reset_parameters()

    @property
    def attention(self) -> str:
        """``"linear"`` or ``"exact"``, forwarded to the attention module."""
        return self.attn.attention

    @attention.setter
    def attention(self, value: str) -> None:
        self.attn.attention = value
        for branch in self.filters():
            branch.attention = value

    def reset_parameters(self) -> None:
        """Reset projections and spectral parameters; redraw random features."""
        self.qkv.reset_parameters()
        self.out.reset_parameters()
        self.attn.reset_parameters()
        for branch in self.filters():
            branch.reset_parameters()

    def filters(self) -> list[SpectralFilter]:
        """The spectral filter branches the layer has: local, then long-range."""
        return [branch for branch in (self.filter, self.long_filter) if branch is not None]

    @property
    def cutoff(self) -> float | None:
        """The largest cutoff of the branches (``None`` if neither is local)."""
        cutoffs = [m.cutoff for m in (self.attn, self.filter) if m is not None and m.cutoff]
        return max(cutoffs) if cutoffs else None

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        neighbors: Neighbors | None = None,
        num_graphs: int | None = None,
        validate: bool = True,
        sizes: GraphSizes | None = None,
    ) -> Tensor:
        """Convolve; ``num_graphs``, ``validate`` and ``sizes`` as in :meth:`FLTAttention.forward
        <flt3d.nn.FLTAttention.forward>`: the inputs are checked, and the graph sizes read,
        here once for every branch."""
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be [N, {self.in_channels}], got {tuple(x.shape)}")
        if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.shape[0] != x.shape[0]:
            shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"pos must be [N, pos_dim] with N = {x.shape[0]}, got {shape}")
        batch, num_graphs = checked_inputs(pos, batch, num_graphs, validate)
        sizes = graph_sizes(batch, num_graphs) if sizes is None else sizes.check(batch, num_graphs)
        if neighbors is None and self.attention == "linear" and self.cutoff is not None:
            if not sizes.small():
                neighbors = neighbor_list(pos, batch, cutoff=self.cutoff, self_loops=True)
        branches = 1 + len(self.filters())
        qkvu = self.qkv(x).view(-1, 2 + branches, self.heads, self.head_channels).unbind(1)
        checked = {"num_graphs": num_graphs, "validate": False, "sizes": sizes}
        outs = [self.attn(*qkvu[:3], pos, batch, neighbors=neighbors, **checked).flatten(1)]
        extra = iter(qkvu[3:])
        if self.filter is not None:
            u = next(extra).reshape(-1, self.filter.heads, self.filter.head_channels)
            outs.append(self.filter(u, pos, batch, neighbors=neighbors, **checked).flatten(1))
        if self.long_filter is not None:
            outs.append(self.long_filter(next(extra), pos, batch, **checked).flatten(1))
        return self.out(torch.cat(outs, dim=1) if len(outs) > 1 else outs[0])

    def options_repr(self) -> str:
        """``heads`` and the options that differ from the defaults, as the repr shows them."""
        parts = [f"heads={self.heads}"]
        if self.attention != "linear":
            parts.append(f"attention={self.attention!r}")
        if self.cutoff is not None:
            parts.append(f"cutoff={self.cutoff}")
        if self.filter is not None:
            parts += [
                f"spectral_filter=True, filter_spectrum={self.filter_spectrum!r}",
                f"filter_heads={self.filter.heads}",
            ]
            if self.filter.cutoff != self.cutoff:
                parts.append(f"filter_cutoff={self.filter.cutoff}")
        if self.long_filter is not None:
            parts.append(
                f"long_range_filter=True, long_range_spectrum={self.long_range_spectrum!r}"
            )
        return ", ".join(parts)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, {self.options_repr()}"

    def __repr__(self) -> str:
        # one line, as for the attention modules: the sub-modules follow from the options
        return f"{type(self).__name__}({self.extra_repr()})"


def _filter_options(name: str, options: dict, *keys: str) -> dict:
    """The attention ``options`` among ``keys`` that a filter branch inherits; it is not causal."""
    if options.get("causal", False):
        raise ValueError(f"{name} is not causal; use it with causal=False")
    return {key: options[key] for key in keys if key in options}
