r"""The Monte Carlo error of an FLT attention's random features: linear vs exact, against ``m``.

:func:`feature_convergence` redraws the random features of copies of one attention with more
and more features and draws the RMSE of the linear output against the exact one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flt3d.nn.flt_attention import FLTAttention
from flt3d.nn.random_features import orthogonal_gaussian

from ._common import _new_axes
from .rpe import find_attention

__all__ = ["feature_convergence"]


def _with_features(att: FLTAttention, m: int) -> FLTAttention:
    """A copy of ``att`` with ``m`` random features (same spectrum and frequencies)."""
    new = copy.deepcopy(att)
    new.num_features = m
    new.projection = orthogonal_gaussian(
        att.heads, m, att.feature_dim, dtype=att.projection.dtype, device=att.projection.device
    )
    return new


@torch.no_grad()
def feature_convergence(
    module_or_attention: nn.Module,
    *,
    features: Sequence[int] = (8, 16, 32, 64, 128, 256),
    repeats: int = 8,
    inputs: tuple[Tensor, ...] | None = None,
    num_tokens: int = 32,
    seed: int = 0,
    ax=None,
    layer: int = 0,
):
    r"""Linear-vs-exact output RMSE of an FLT attention against the number of random features.

    For each ``m`` in ``features``, ``repeats`` independent draws of the random features are
    compared with exact attention on the same inputs (same RPE :math:`\hat f`):
    :math:`\mathrm{RMSE} = \sqrt{\mathrm{mean}(\mathrm{out}_{lin} - \mathrm{out}_{exact})^2}`.
    Log-log axes, mean and spread over draws, and a dotted :math:`m^{-1/2}` reference line
    through the first point. The module itself is not changed.

    Args:
        module_or_attention: FLT attention, conv, block or a model containing them.
        features: numbers of random features ``m`` (default ``(8, ..., 256)``).
        repeats: draws per ``m`` (default ``8``).
        inputs: ``(q, k, v, pos)`` or ``(q, k, v, pos, batch)`` for the attention (default:
            one random graph of ``num_tokens`` tokens, ``q, k ~ N(0, 0.5^2)`` (larger logits
            need many more features, FAVOR+'s variance grows as :math:`e^{|q|^2 + |k|^2}`),
            ``v ~ N(0, 1)``, coordinates
            :math:`\mathcal{N}(0, (2\ell)^2)` with :math:`\ell` the RPE length scale).
        num_tokens: tokens of the random graph (default ``32``).
        seed: seed of the random inputs and draws (default ``0``).
        ax: axes to draw in (default a new figure).
        layer: which FLT attention of ``module_or_attention`` (default ``0``).

    Returns:
        The figure; its first line holds ``(features, mean RMSE)``.
    """
    att = find_attention(module_or_attention, layer)
    if not isinstance(att, FLTAttention):
        raise ValueError("feature_convergence needs an FLTAttention (or a module holding one)")
    if repeats < 1 or not features or any(int(m) < 1 for m in features):
        raise ValueError(f"need repeats >= 1 and positive features, got {repeats}, {features}")
    gen = torch.Generator().manual_seed(seed)
    ref = att.projection
    if inputs is None:
        scale = 2.0 * (att.spectrum.length_scale if att.spectrum is not None else 1.0)
        shape = (num_tokens, att.heads, att.head_channels)
        q, k, v = (torch.randn(shape, generator=gen, dtype=ref.dtype) for _ in range(3))
        q, k = 0.5 * q, 0.5 * k
        pos = scale * torch.randn(num_tokens, att.pos_dim, generator=gen, dtype=ref.dtype)
        inputs = tuple(t.to(ref.device) for t in (q, k, v, pos))
    exact = copy.deepcopy(att)
    exact.attention = "exact"
    target = exact(*inputs)
    means, spreads = [], []
    for m in features:
        probe = _with_features(att, int(m))
        probe.attention = "linear"
        errors = []
        for _ in range(repeats):
            probe.redraw_features(generator=gen)
            errors.append(float((probe(*inputs) - target).pow(2).mean().sqrt()))
        err = torch.tensor(errors, dtype=torch.float64)
        means.append(float(err.mean()))
        spreads.append(float(err.std()) if repeats > 1 else 0.0)
    fig, (axis,) = _new_axes(ax, 1)
    ms = [int(m) for m in features]
    axis.errorbar(ms, means, yerr=spreads, marker="o", capsize=3, label="linear vs exact")
    ref_line = [means[0] * math.sqrt(ms[0] / m) for m in ms]
    axis.plot(ms, ref_line, ":", color="0.4", label=r"$\propto m^{-1/2}$")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("random features $m$")
    axis.set_ylabel("output RMSE")
    axis.set_title(f"linear → exact, {repeats} draws per $m$")
    axis.legend(fontsize="small")
    return fig
