"""FLTBlock: a pre-norm residual block of an FLTConv and a two-layer MLP."""

from __future__ import annotations

from torch import Tensor, nn

from flt3d.nn.flt_conv import FLTConv
from flt3d.nn.graph import GraphSizes
from flt3d.nn.neighbors import Neighbors

__all__ = ["FLTBlock"]


class FLTBlock(nn.Module):
    r"""Pre-norm residual FLT block: attention then a two-layer MLP.

    .. math::
        x \leftarrow x + \mathrm{FLTConv}(\mathrm{LN}(x)),\qquad
        x \leftarrow x + \mathrm{MLP}(\mathrm{LN}(x))

    Args:
        channels: feature channels (in and out).
        heads: attention heads (default ``8``).
        pos_dim: coordinate dimension (default ``3``).
        mlp_ratio: hidden width of the MLP over ``channels`` (default ``2.0``).
        dropout: dropout after attention and MLP (default ``0.0``).
        **options: :class:`~flt3d.nn.FLTConv` / :class:`~flt3d.nn.FLTAttention` options.

    Shapes:
        - **input:** x ``[N, channels]``, pos ``[N, pos_dim]``, batch ``[N]`` (optional).
        - **output:** ``[N, channels]``.
    """

    def __init__(
        self,
        channels: int,
        *,
        heads: int = 8,
        pos_dim: int = 3,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        **options,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.norm1 = nn.LayerNorm(channels)
        self.conv = FLTConv(channels, channels, heads=heads, pos_dim=pos_dim, **options)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(round(mlp_ratio * channels))
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels)
        )
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset norms, attention and MLP."""
        self.norm1.reset_parameters()
        self.norm2.reset_parameters()
        self.conv.reset_parameters()
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

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
        """Pre-norm residual block; arguments as :meth:`FLTConv.forward <flt3d.nn.FLTConv.forward>`."""
        conv = self.conv(
            self.norm1(x), pos, batch, neighbors=neighbors, num_graphs=num_graphs,
            validate=validate, sizes=sizes,
        )  # fmt: skip
        x = x + self.dropout(conv)
        return x + self.dropout(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return f"{self.channels}, {self.conv.options_repr()}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
