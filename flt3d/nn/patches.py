r"""Image patches as tokens: a strided convolution whose outputs sit on the grid of patch indices.

To use every pixel as a token instead, see :func:`flt3d.datasets.grid.flatten_image`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .checks import check_int

__all__ = ["PatchEmbedding"]


def _patch_grid(
    batch_size: int, height: int, width: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """(row, column) of every patch in row-major order per image, and the image id of each."""
    rows = torch.arange(height, device=device, dtype=torch.float64)
    cols = torch.arange(width, device=device, dtype=torch.float64)
    cells = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)
    batch = torch.arange(batch_size, device=device).repeat_interleave(height * width)
    return cells.to(dtype).repeat(batch_size, 1), batch


class PatchEmbedding(nn.Module):
    r"""Cut images into non-overlapping square patches and embed each as one token.

    A ``Conv2d`` with kernel size and stride ``patch_size`` maps every patch to an
    ``out_channels`` vector; the result is returned as a flat batch whose coordinates are patch
    indices, so one grid step is one patch (``pos`` units of patches, not pixels):

    .. math::
        \mathrm{pos}[b h w + r w + c] = (r, c), \qquad h = H / p, \quad w = W / p.

    Args:
        in_channels: channels of the input images ``C``.
        out_channels: embedding size per patch.
        patch_size: side ``p`` of the square patches; ``H`` and ``W`` must be divisible by it.

    Shapes:
        - **input**: ``[B, C, H, W]``
        - **x**: ``[B * h * w, out_channels]``, patches in row-major order per image
        - **pos**: ``[B * h * w, 2]``, (patch row, patch column), dtype of the conv weight (so
          autocast never rounds coordinates to half precision)
        - **batch**: ``[B * h * w]``, long, sorted

    Example:
        >>> embed = PatchEmbedding(1, 64, patch_size=2)
        >>> embed
        PatchEmbedding(1, 64, patch_size=2)
        >>> x, pos, batch = embed(torch.zeros(3, 1, 8, 8))
        >>> x.shape, pos.shape, batch.shape
        (torch.Size([48, 64]), torch.Size([48, 2]), torch.Size([48]))
    """

    def __init__(self, in_channels: int, out_channels: int, *, patch_size: int) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", index=True)
        self.out_channels = check_int(out_channels, "out_channels", index=True)
        self.patch_size = check_int(patch_size, "patch_size", index=True)
        self.proj = nn.Conv2d(
            self.in_channels, self.out_channels, kernel_size=patch_size, stride=patch_size
        )

    def reset_parameters(self) -> None:
        """Re-initialise the patch projection."""
        self.proj.reset_parameters()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Embed the patches of ``x``; returns ``(x_flat, pos, batch)`` (see Shapes)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        b, _, h, w = x.shape
        p = self.patch_size
        if b < 1 or h < 1 or w < 1 or h % p or w % p:
            raise ValueError(
                f"x must be [B, C, H, W] with B >= 1 and H, W positive multiples of "
                f"patch_size={p}, got {tuple(x.shape)}"
            )
        out = self.proj(x)
        b, _, h, w = out.shape
        x_flat = out.permute(0, 2, 3, 1).reshape(b * h * w, self.out_channels)
        pos, batch = _patch_grid(b, h, w, out.device, self.proj.weight.dtype)
        return x_flat, pos, batch

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"patch_size={self.patch_size})"
        )
