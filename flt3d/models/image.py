r"""ImageClassifier: patches as tokens on a 2D grid, bidirectional FLT blocks, mean pooling.

.. math::
    h^{(0)}_p = \mathrm{PatchEmbed}(x)_p\ (+\,P[p]), \qquad
    h^{(l+1)} = \mathrm{FLTBlock}_l(h^{(l)}, (r_p, c_p), \mathrm{image}), \qquad
    \mathrm{logits} = W\, \frac{1}{|P|}\sum_p \mathrm{LN}(h^{(L)}_p)

Patch ``p`` sits at its (row, column) in units of patches
(:class:`flt3d.nn.PatchEmbedding`).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from flt3d.models._common import (
    attention_spectrum,
    check_dropout,
    check_positive,
    constructor_config,
)
from flt3d.models.blocks import BlockModel, block_stack, checked_pass
from flt3d.nn.graph import GraphSizes
from flt3d.nn.patches import PatchEmbedding

__all__ = ["ImageClassifier"]


class ImageClassifier(BlockModel):
    r"""Image classifier with FourierLearner attention over patches.

    ``positional`` as in :class:`~flt3d.models.SequenceModel`: ``"rpe"`` (the 2D spectral RPE
    of ``spectrum``), ``"absolute"`` (a learned embedding per patch, attention without RPE;
    images must be ``image_size`` square) or ``"none"`` (no positions: a bag of patches).

    Args:
        in_channels: image channels (default ``1``).
        num_classes: classes (default ``10``).
        image_size: side of the square images (default ``8``); must be a multiple of
            ``patch_size``. Other sizes are accepted unless ``positional="absolute"``.
        patch_size: side of the square patches (default ``1``: one token per pixel).
        hidden_channels: feature width (default ``64``).
        num_layers: FLT blocks (default ``3``).
        heads: attention heads (default ``4``).
        spectrum: spectral family of the RPE (default ``"gaussian_mixture"``).
        positional: ``"rpe"``, ``"absolute"`` or ``"none"`` (default ``"rpe"``).
        attention: ``"linear"`` (default) or ``"exact"``.
        num_features: random features of the linear mode (default ``64``).
        num_frequencies: RPE frequencies (default ``16``).
        dropout: dropout in the blocks and before the classifier (default ``0.0``).
        mask: ``"exp"`` or ``"mul"`` RPE (default ``"exp"``).
        length_scale: shortest distance the RPE resolves, in patches (default ``1.0``).
        mlp_ratio: MLP width of the blocks over ``hidden_channels`` (default ``2.0``).

    Shapes:
        - **input:** images ``[B, in_channels, H, W]``.
        - **output:** logits ``[B, num_classes]``.

    Example:
        >>> import torch
        >>> model = ImageClassifier(hidden_channels=16, num_layers=1, heads=2)
        >>> model
        ImageClassifier(1, 10, image_size=8, patch_size=1, positional='rpe', attention='linear')
        >>> model(torch.rand(5, 1, 8, 8)).shape
        torch.Size([5, 10])
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 8,
        patch_size: int = 1,
        hidden_channels: int = 64,
        num_layers: int = 3,
        heads: int = 4,
        spectrum: str | None = "gaussian_mixture",
        positional: str = "rpe",
        attention: str = "linear",
        num_features: int = 64,
        num_frequencies: int = 16,
        dropout: float = 0.0,
        mask: str = "exp",
        length_scale: float = 1.0,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        check_positive(
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            patch_size=patch_size,
            hidden_channels=hidden_channels,
            num_layers=num_layers,
            heads=heads,
        )
        if image_size % patch_size:
            raise ValueError(
                f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})"
            )
        dropout = check_dropout(dropout)
        attention_rpe = attention_spectrum(positional, spectrum)
        self.config = constructor_config(ImageClassifier, locals())
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_channels = hidden_channels
        self.positional = positional
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embedding = PatchEmbedding(in_channels, hidden_channels, patch_size=patch_size)
        self.position_embedding = (
            nn.Embedding(self.num_patches, hidden_channels) if positional == "absolute" else None
        )
        self.blocks = block_stack(self.config, pos_dim=2, spectrum=attention_rpe)
        self.norm = nn.LayerNorm(hidden_channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the patch and position embeddings, blocks and classifier."""
        self.patch_embedding.reset_parameters()
        if self.position_embedding is not None:
            self.position_embedding.reset_parameters()
        self.reset_blocks()
        self.classifier.reset_parameters()

    def forward(self, images: Tensor) -> Tensor:
        """Class logits; see the class docstring for shapes."""
        if self.position_embedding is not None and (
            images.dim() != 4 or tuple(images.shape[-2:]) != (self.image_size,) * 2
        ):
            raise ValueError(
                f"images must be [B, C, {self.image_size}, {self.image_size}] with "
                f"positional='absolute', got {tuple(images.shape)}"
            )
        x, pos, batch = self.patch_embedding(images)
        if self.position_embedding is not None:
            x = x + self.position_embedding.weight.repeat(images.shape[0], 1)
        b, n = images.shape[0], x.shape[0] // max(images.shape[0], 1)
        # grid coordinates and graph ids: nothing to check, and every image has n patches
        x = checked_pass(self.blocks, x, pos, batch, GraphSizes(b, b * n, n, b * n * n))
        x = global_mean_pool(self.norm(x), batch, size=images.shape[0])
        return self.classifier(self.dropout(x))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.num_classes}, "
            f"image_size={self.image_size}, patch_size={self.patch_size}, "
            f"positional={self.positional!r}, attention={self.attention!r})"
        )
