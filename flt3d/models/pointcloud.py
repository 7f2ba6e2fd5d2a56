r"""PointCloudClassifier: FLT blocks on the 3D coordinates of a point cloud, pooled, then an MLP.

.. math::
    h^{(0)}_i = W_\mathrm{in} x_i\ (\text{no bias; or a learned } c)\ (+\,W_p (r_i - \bar r)), \qquad
    h^{(l+1)} = \mathrm{FLTBlock}_l(h^{(l)}, r, \mathrm{cloud}), \qquad
    \mathrm{logits} = \mathrm{MLP}\big[\mathrm{mean}_i\,\mathrm{LN}(h^{(L)}_i) \,\Vert\,
    \max_i\,\mathrm{LN}(h^{(L)}_i)\big]

Points meet through the learned spectral RPE :math:`\hat f(r_i - r_j)` inside the attention
(and, optionally, a spectral filter beside it), so geometry enters only through displacements:
the logits are invariant to translations and to the order of the points, exactly, and with
an isotropic spectrum, a ``cutoff`` (closed forms of the distance within it, the content
kernel beyond) and no features that carry directions (``in_channels=0``), to rotations. Length scales are in the units of the coordinates:
:class:`~flt3d.datasets.ModelNetFolder` puts every shape in the unit sphere (diameter 2), where
the default ``length_scale=0.1`` lets the RPE start with decay lengths between 0.1 and about
0.7 (the widths of an isotropic mixture spread over its heads) and learn longer ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_max_pool, global_mean_pool

from flt3d.models._common import (
    attention_spectrum,
    check_dropout,
    check_positive,
    constructor_config,
)
from flt3d.models.blocks import BlockModel, block_stack, checked_pass
from flt3d.nn.graph import GraphSizes, center_pos, check_batch, check_finite

__all__ = ["POOLINGS", "PointCloudClassifier"]

POOLINGS = ("mean", "max", "mean_max")
"""How :class:`PointCloudClassifier` reduces its points to one vector per cloud."""


def _class_names(classes: Sequence[str] | None, num_classes: int) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) or not all(isinstance(name, str) for name in classes):
        raise ValueError(f"classes must be a sequence of class names, got {classes!r}")
    names = list(classes)
    if len(names) != num_classes or len(set(names)) != len(names):
        raise ValueError(
            f"classes must be {num_classes} distinct names (num_classes), got {names!r}"
        )
    return names


class PointCloudClassifier(BlockModel):
    r"""Point-cloud classifier with FourierLearner attention over the points.

    ``positional`` as in :class:`~flt3d.models.SequenceModel`: ``"rpe"`` (the 3D spectral RPE
    of ``spectrum``), ``"absolute"`` (the centred coordinates embedded linearly and added to
    the features, attention without RPE) or ``"none"`` (no positions: a bag of features).

    Softmax attention averages, so points that all carry the same features stay identical
    whatever the RPE: without features (``in_channels=0``) the model needs the spectral
    filter (``spectral_filter=True``, an unnormalised sum that sees how many points lie
    where) or ``positional="absolute"``.

    Args:
        num_classes: classes ``C``.
        in_channels: features per point (default ``3``: the normals of
            :class:`~flt3d.datasets.ModelNetFolder`); ``0``: none, every point starts from one
            learned vector.
        hidden_channels: feature width (default ``64``).
        num_layers: FLT blocks (default ``3``).
        heads: attention heads (default ``4``).
        spectrum: spectral family of the RPE (default ``"isotropic_mixture"``: a function of
            the distance only, for shapes in any orientation).
        positional: ``"rpe"``, ``"absolute"`` or ``"none"`` (default ``"rpe"``).
        attention: ``"linear"`` (default: O(P) per cloud of ``P`` points) or ``"exact"``
            (O(P²)); switch later with :func:`flt3d.nn.set_attention`.
        mask: ``"exp"`` or ``"mul"`` RPE (default ``"exp"``).
        num_features: random features of the linear mode (default ``64``).
        num_frequencies: RPE frequencies (default ``16``).
        length_scale: shortest length the RPE resolves, in the coordinates' units (default
            ``0.1``, for clouds in the unit sphere).
        closed_form_rpe: exact mode applies the spectrum's closed form rather than its
            ``num_frequencies`` estimate (default ``False``; see :class:`~flt3d.nn.FLTAttention`).
        cutoff: make the RPE and the filters exact within this radius, on a neighbour list in
            linear mode (default ``None``: one low-rank RPE over every pair; see
            :class:`~flt3d.nn.FLTAttention`).
        sampler: frequency sampler of the low-rank RPE (default ``"density"``: draws from the
            learned density itself).
        nodes: node layout of those draws (default ``"quadrature"``; see
            :mod:`flt3d.nn.samplers`).
        redraw: ``"train"`` (default: fresh random features and frequencies at every training
            step, the stored draw in eval mode) or ``"never"``.
        spectral_filter: add the spectral filter branch :math:`\sum_j f_c(r_i - r_j) u_j` to
            every block (default ``False``; see :class:`~flt3d.nn.FLTConv`).
        filter_spectrum: its spectral family (default ``None``: ``spectrum``).
        pooling: ``"mean"``, ``"max"`` or ``"mean_max"`` (both, concatenated) (default
            ``"mean_max"``).
        dropout: dropout in the blocks and the classifier MLP (default ``0.0``).
        mlp_ratio: MLP width of the blocks over ``hidden_channels`` (default ``2.0``).
        classes: the class names, ``num_classes`` of them, kept in :attr:`config` so that a
            saved model names its predictions (default ``None``).

    Shapes:
        - **input:** x ``[N, in_channels]`` (``None`` when ``in_channels=0``), pos ``[N, 3]``,
          batch ``[N]`` (optional: one cloud), ``num_graphs`` (optional, as PyG's
          ``Batch.num_graphs``). Zero clouds give ``[0, num_classes]``; a cloud without points
          is a ``ValueError``.
        - **output:** logits ``[G, num_classes]``.

    Example:
        >>> import torch
        >>> model = PointCloudClassifier(10, hidden_channels=16, num_layers=1, heads=2)
        >>> model
        PointCloudClassifier(10, in_channels=3, hidden_channels=16, num_layers=1, positional='rpe', pooling='mean_max', attention='linear')
        >>> pos, normal = torch.randn(64, 3), torch.randn(64, 3)
        >>> batch = torch.arange(2).repeat_interleave(32)
        >>> model(normal, pos, batch).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 3,
        hidden_channels: int = 64,
        num_layers: int = 3,
        heads: int = 4,
        spectrum: str | None = "isotropic_mixture",
        positional: str = "rpe",
        attention: str = "linear",
        mask: str = "exp",
        num_features: int = 64,
        num_frequencies: int = 16,
        length_scale: float = 0.1,
        closed_form_rpe: bool = False,
        cutoff: float | None = None,
        sampler: str = "density",
        nodes: str = "quadrature",
        redraw: str = "train",
        spectral_filter: bool = False,
        filter_spectrum: str | None = None,
        pooling: str = "mean_max",
        dropout: float = 0.0,
        mlp_ratio: float = 2.0,
        classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        check_positive(
            num_classes=num_classes,
            hidden_channels=hidden_channels,
            num_layers=num_layers,
            heads=heads,
        )
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 0:
            raise ValueError(f"in_channels must be a non-negative integer, got {in_channels!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if in_channels == 0 and not spectral_filter and positional != "absolute":
            raise ValueError(
                "in_channels=0 needs spectral_filter=True or positional='absolute': attention "
                "averages, so points that all start from the same vector stay identical"
            )
        dropout = check_dropout(dropout)
        attention_rpe = attention_spectrum(positional, spectrum)
        names = _class_names(classes, num_classes)
        self.config = constructor_config(PointCloudClassifier, locals(), classes=names)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.positional = positional
        self.pooling = pooling
        self.classes = names
        if in_channels:
            # no bias: a vector every point shares passes unchanged through averaging attention
            # and mean pooling, and at the start it drowns what the points' geometry adds
            # (on the shapes sample, a bias kept the loss at ln 10 for the first 300 steps)
            self.embedding = nn.Linear(in_channels, hidden_channels, bias=False)
            self.constant = None
        else:
            self.embedding = None
            self.constant = nn.Parameter(torch.empty(hidden_channels))
        self.position_embedding = (
            nn.Linear(3, hidden_channels, bias=False) if positional == "absolute" else None
        )
        self.blocks = block_stack(
            self.config,
            pos_dim=3,
            spectrum=attention_rpe,
            filter_spectrum=filter_spectrum or spectrum or "isotropic_mixture",
        )
        self.norm = nn.LayerNorm(hidden_channels)
        pooled = hidden_channels * (2 if pooling == "mean_max" else 1)
        self.classifier = nn.Sequential(
            nn.Linear(pooled, hidden_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_channels, num_classes),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the embeddings, blocks and classifier; redraw random features."""
        if self.embedding is not None:
            self.embedding.reset_parameters()
        else:
            nn.init.normal_(self.constant)
        if self.position_embedding is not None:
            self.position_embedding.reset_parameters()
        self.reset_blocks()
        for layer in self.classifier:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def embed(self, x: Tensor | None, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """The features the first block reads, ``[N, hidden_channels]``."""
        n = pos.shape[0]
        if self.embedding is None:
            if x is not None and (x.dim() != 2 or tuple(x.shape) != (n, 0)):
                raise ValueError(
                    f"x must be None or [N, 0] with in_channels=0, got {tuple(x.shape)}"
                )
            h = self.constant.expand(n, -1)
        else:
            if x is None or x.dim() != 2 or tuple(x.shape) != (n, self.in_channels):
                shape = None if x is None else tuple(x.shape)
                raise ValueError(
                    f"x must be [N, {self.in_channels}] = [{n}, {self.in_channels}], got {shape}"
                )
            h = self.embedding(x)
        if self.position_embedding is not None:
            h = h + self.position_embedding(center_pos(pos, batch, num_graphs))
        return h

    def forward(
        self,
        x: Tensor | None,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        num_graphs: int | None = None,
    ) -> Tensor:
        """Class logits; see the class docstring for shapes."""
        if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.shape[1] != 3:
            shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"pos must be [N, 3], got {shape}")
        batch, num_graphs = check_batch(batch, pos.shape[0], pos.device, num_graphs)
        counts = torch.bincount(batch, minlength=num_graphs)
        # one read for the empty-cloud check and the blocks' layout choices
        smallest, largest, squares = (
            torch.stack([counts.min(), counts.max(), counts.pow(2).sum()]).tolist()
            if num_graphs
            else (1, 0, 0)
        )
        if smallest == 0:
            empty = torch.nonzero(counts == 0).flatten().tolist()
            raise ValueError(
                f"clouds {empty[:10]} have no points: a class needs at least one point "
                f"(batch ids and num_graphs={num_graphs})"
            )
        check_finite(pos)
        sizes = GraphSizes(num_graphs, pos.shape[0], largest, squares)
        h = self.embed(x, pos, batch, num_graphs)
        h = self.norm(checked_pass(self.blocks, h, pos, batch, sizes))
        pooled = []
        if self.pooling in ("mean", "mean_max"):
            pooled.append(global_mean_pool(h, batch, size=num_graphs))
        if self.pooling in ("max", "mean_max"):
            pooled.append(global_max_pool(h, batch, size=num_graphs))
        return self.classifier(torch.cat(pooled, dim=-1))

    @torch.no_grad()
    def attention_weights(self, x: Tensor | None, pos: Tensor, *, layer: int = 0) -> Tensor:
        r"""The attention weights of block ``layer`` on one cloud, for plots and checks.

        .. math::
            a_{ij}^h = \frac{w_{ij}^h}{\sum_k w_{ik}^h}

        with :math:`w^h` the unnormalised weights of head :math:`h` that
        :meth:`FLTAttention.kernel <flt3d.nn.FLTAttention.kernel>` computes from the queries
        and keys that block reads: exact in exact mode (the weights the attention applies),
        their random-feature estimate with the stored draw in linear mode. ``a[i, :, h]`` is
        how point ``i`` spreads its attention over the cloud. Dense, O(P²): for small clouds.
        The blocks before ``layer`` run as in :meth:`forward`, in the model's current mode
        (call ``eval()`` first for the stored draws); the spectral filter branch is not
        attention and is left out.

        Args:
            x: features ``[P, in_channels]`` (``None`` when ``in_channels=0``).
            pos: coordinates ``[P, 3]`` of the one cloud.
            layer: the block (default ``0``, the first; negative counts from the last).

        Returns:
            ``[P, P, heads]``, rows summing to one over the second index.

        Example:
            >>> import torch
            >>> model = PointCloudClassifier(3, hidden_channels=8, heads=2, attention="exact")
            >>> a = model.attention_weights(torch.randn(10, 3), torch.randn(10, 3))
            >>> a.shape, bool(torch.allclose(a.sum(1), torch.ones(10, 2)))
            (torch.Size([10, 10, 2]), True)
        """
        if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.shape[1] != 3:
            shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"pos must be [P, 3], got {shape}")
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise ValueError(f"layer must be an integer, got {layer!r}")
        if not -self.num_layers <= layer < self.num_layers:
            raise ValueError(
                f"layer must be in [-{self.num_layers}, {self.num_layers}), got {layer}"
            )
        layer %= self.num_layers
        batch, num_graphs = check_batch(None, pos.shape[0], pos.device)
        h = self.embed(x, pos, batch, num_graphs)
        for block in self.blocks[:layer]:
            h = block(h, pos, batch)
        block = self.blocks[layer]
        conv = block.conv
        qkv = conv.qkv(block.norm1(h)).view(pos.shape[0], -1, conv.heads, conv.head_channels)
        w = conv.attn.kernel(qkv[:, 0], qkv[:, 1], pos.to(h.dtype))
        return w / w.sum(dim=1, keepdim=True)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_classes}, in_channels={self.in_channels}, "
            f"hidden_channels={self.hidden_channels}, num_layers={self.num_layers}, "
            f"positional={self.positional!r}, pooling={self.pooling!r}, "
            f"attention={self.attention!r})"
        )
