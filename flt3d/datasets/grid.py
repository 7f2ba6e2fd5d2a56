r"""Grid coordinates for 1D sequences and 2D images, as flat PyG-style batches.

FLT layers take a flat batch: features ``x [N, C]``, coordinates ``pos [N, D]`` and a graph id
per token ``batch [N]``. The helpers here turn plain ``[B, L, C]`` sequences and
``[B, C, H, W]`` images into that form (and back), so nobody has to build such a batch by hand.

**Physical scale.** By default one grid step (one token in a sequence, one pixel or one patch in
an image) is ``1.0`` in ``pos`` units. That is the ``length_scale`` the spectral RPE proposal is
tuned to: a proposal :math:`p = \mathcal{N}(0, s^2 I)` with :math:`s` of order one resolves
displacements from a fraction of a step up to many steps. If you change ``spacing``, scale the
proposal's ``length_scale`` with it, or the learned spectrum starts far from the data.

**Order.** Graphs are contiguous and sorted (``batch`` is non-decreasing) and tokens inside a
graph come in sequence order, or row-major (raster) order for images. Causal attention treats
token order within a graph as time, so this order is part of the contract.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flt3d.nn.checks import check_int

__all__ = [
    "flatten_image",
    "flatten_sequence",
    "image_grid",
    "sequence_grid",
    "unflatten_image",
    "unflatten_sequence",
]


def _positive_spacing(spacing: float) -> float:
    spacing = float(spacing)
    if not math.isfinite(spacing) or spacing <= 0.0:
        raise ValueError(f"spacing must be a positive finite number, got {spacing}")
    return spacing


def _grid(
    batch_size: int,
    sizes: tuple[int, ...],
    spacing: float,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    # the cells of one grid of shape ``sizes`` in row-major order, their indices times spacing
    # (in float64, then cast), repeated for each of ``batch_size`` graphs
    spacing = _positive_spacing(spacing)
    axes = [torch.arange(size, device=device, dtype=torch.float64) for size in sizes]
    cells = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(sizes))
    pos = (cells * spacing).to(dtype).repeat(batch_size, 1)
    return pos, torch.arange(batch_size, device=device).repeat_interleave(cells.shape[0])


def sequence_grid(
    batch_size: int,
    length: int,
    *,
    spacing: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    r"""Coordinates and graph ids of ``batch_size`` sequences of ``length`` tokens each.

    .. math::
        \mathrm{pos}[b L + i] = i \cdot \mathrm{spacing}, \qquad \mathrm{batch}[b L + i] = b.

    Args:
        batch_size: number of sequences ``B``.
        length: tokens per sequence ``L``.
        spacing: distance between neighbouring tokens in ``pos`` units (default ``1.0``).
        device: device of the results.
        dtype: floating dtype of ``pos`` (default ``torch.float32``).

    Returns:
        ``(pos, batch)``: coordinates and the sequence id of every token.

    Shapes:
        - **pos**: ``[B * L, 1]``
        - **batch**: ``[B * L]``, long, sorted

    Example:
        >>> pos, batch = sequence_grid(2, 3)
        >>> pos.squeeze(-1).tolist()
        [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
        >>> batch.tolist()
        [0, 0, 0, 1, 1, 1]
    """
    batch_size = check_int(batch_size, "batch_size", index=True)
    length = check_int(length, "length", index=True)
    return _grid(batch_size, (length,), spacing, device, dtype)


def image_grid(
    batch_size: int,
    height: int,
    width: int,
    *,
    spacing: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    r"""Coordinates and graph ids of ``batch_size`` images of ``height x width`` cells.

    Cells are listed in row-major (raster) order, and each cell sits at (row, column) times
    ``spacing``:

    .. math::
        \mathrm{pos}[b H W + r W + c] = (r, c) \cdot \mathrm{spacing}.

    Args:
        batch_size: number of images ``B``.
        height: rows per image ``H``.
        width: columns per image ``W``.
        spacing: distance between neighbouring cells in ``pos`` units (default ``1.0``).
        device: device of the results.
        dtype: floating dtype of ``pos`` (default ``torch.float32``).

    Returns:
        ``(pos, batch)``: coordinates (row first) and the image id of every cell.

    Shapes:
        - **pos**: ``[B * H * W, 2]``
        - **batch**: ``[B * H * W]``, long, sorted

    Example:
        >>> pos, batch = image_grid(1, 2, 3)
        >>> pos.tolist()
        [[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]
    """
    batch_size = check_int(batch_size, "batch_size", index=True)
    height = check_int(height, "height", index=True)
    width = check_int(width, "width", index=True)
    return _grid(batch_size, (height, width), spacing, device, dtype)


def flatten_sequence(x: Tensor, *, spacing: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    r"""Turn a batch of equal-length sequences into a flat batch.

    Args:
        x: features ``[B, L, C]``.
        spacing: distance between neighbouring tokens in ``pos`` units (default ``1.0``).

    Returns:
        ``(x_flat, pos, batch)`` with ``pos`` and ``batch`` from :func:`sequence_grid` (``pos``
        has the dtype of ``x`` when ``x`` is floating, else ``float32``).

    Shapes:
        - **x**: ``[B, L, C]``
        - **x_flat**: ``[B * L, C]``, token ``i`` of sequence ``b`` at row ``b * L + i``
        - **pos**: ``[B * L, 1]``
        - **batch**: ``[B * L]``

    Example:
        >>> x_flat, pos, batch = flatten_sequence(torch.zeros(2, 5, 8))
        >>> x_flat.shape, pos.shape, batch.shape
        (torch.Size([10, 8]), torch.Size([10, 1]), torch.Size([10]))
    """
    if x.dim() != 3:
        raise ValueError(f"x must be [B, L, C], got {tuple(x.shape)}")
    b, length, c = x.shape
    if b < 1 or length < 1:
        raise ValueError(f"x must be [B, L, C] with B, L >= 1, got {tuple(x.shape)}")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    pos, batch = sequence_grid(b, length, spacing=spacing, device=x.device, dtype=dtype)
    return x.reshape(b * length, c), pos, batch


def unflatten_sequence(x_flat: Tensor, batch_size: int) -> Tensor:
    r"""Undo :func:`flatten_sequence` on features (for example a layer's output).

    Args:
        x_flat: per-token values ``[B * L, *]`` of ``batch_size`` equal-length sequences, in the
            order :func:`flatten_sequence` produces.
        batch_size: number of sequences ``B``.

    Returns:
        The same values as ``[B, L, *]``.

    Example:
        >>> x = torch.randn(2, 5, 8)
        >>> torch.equal(unflatten_sequence(flatten_sequence(x)[0], 2), x)
        True
    """
    batch_size = check_int(batch_size, "batch_size", index=True)
    if x_flat.dim() < 1 or x_flat.shape[0] == 0 or x_flat.shape[0] % batch_size:
        raise ValueError(
            f"x_flat must be [B * L, *] with B = batch_size = {batch_size} and L >= 1, "
            f"got {tuple(x_flat.shape)}"
        )
    return x_flat.reshape(batch_size, x_flat.shape[0] // batch_size, *x_flat.shape[1:])


def flatten_image(x: Tensor, *, spacing: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    r"""Turn a channels-first image batch into a flat batch of pixels.

    Args:
        x: images ``[B, C, H, W]``.
        spacing: distance between neighbouring pixels in ``pos`` units (default ``1.0``).

    Returns:
        ``(x_flat, pos, batch)`` with ``pos`` and ``batch`` from :func:`image_grid` (``pos`` has
        the dtype of ``x`` when ``x`` is floating, else ``float32``).

    Shapes:
        - **x**: ``[B, C, H, W]``
        - **x_flat**: ``[B * H * W, C]``, pixel ``(r, c)`` of image ``b`` at row
          ``b * H * W + r * W + c``
        - **pos**: ``[B * H * W, 2]``, (row, column)
        - **batch**: ``[B * H * W]``

    Example:
        >>> x_flat, pos, batch = flatten_image(torch.zeros(2, 3, 4, 5))
        >>> x_flat.shape, pos.shape
        (torch.Size([40, 3]), torch.Size([40, 2]))
    """
    if x.dim() != 4:
        raise ValueError(f"x must be [B, C, H, W], got {tuple(x.shape)}")
    b, c, h, w = x.shape
    if b < 1 or h < 1 or w < 1:
        raise ValueError(f"x must be [B, C, H, W] with B, H, W >= 1, got {tuple(x.shape)}")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    pos, batch = image_grid(b, h, w, spacing=spacing, device=x.device, dtype=dtype)
    return x.permute(0, 2, 3, 1).reshape(b * h * w, c), pos, batch


def unflatten_image(x_flat: Tensor, batch_size: int, height: int, width: int) -> Tensor:
    r"""Undo :func:`flatten_image` on features (for example a layer's output).

    Args:
        x_flat: per-pixel features ``[B * H * W, C]`` in the order :func:`flatten_image`
            produces.
        batch_size: number of images ``B``.
        height: rows per image ``H``.
        width: columns per image ``W``.

    Returns:
        Channels-first images ``[B, C, H, W]``.

    Example:
        >>> x = torch.randn(2, 3, 4, 5)
        >>> torch.equal(unflatten_image(flatten_image(x)[0], 2, 4, 5), x)
        True
    """
    batch_size = check_int(batch_size, "batch_size", index=True)
    height = check_int(height, "height", index=True)
    width = check_int(width, "width", index=True)
    n = batch_size * height * width
    if x_flat.dim() != 2 or x_flat.shape[0] != n:
        raise ValueError(
            f"x_flat must be [B * H * W, C] = [{n}, C] for B, H, W = {batch_size}, {height}, "
            f"{width}, got {tuple(x_flat.shape)}"
        )
    c = x_flat.shape[1]
    return x_flat.reshape(batch_size, height, width, c).permute(0, 3, 1, 2)
