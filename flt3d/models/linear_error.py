"""How far linear mode is from exact mode: the estimator-error diagnostic of a trained FLTNet
(see :meth:`FLTNet.linear_error`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from flt3d.models.fltnet import FLTNet


def linear_error(
    model: FLTNet, z: Tensor, pos: Tensor, batch: Tensor | None, *, draws: int, seed: int
) -> dict[str, float]:
    """:meth:`FLTNet.linear_error`: relative representation and prediction differences between
    linear and exact mode over ``draws`` fresh draws, the stored draw put back afterwards."""
    from flt3d.nn import FLTAttention, SpectralFilter, set_attention

    layers = [m for m in model.modules() if isinstance(m, (FLTAttention, SpectralFilter))]
    modes = [m.attention for m in layers]
    saved = {name: b.clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.eval()
    try:
        set_attention(model, "exact")
        exact_h, exact_y = model.representation(z, pos, batch), model(z, pos, batch)
        set_attention(model, "linear")
        errors, pred = [], []
        for k in range(draws):
            gen = torch.Generator().manual_seed(seed + k)
            for m in layers:
                if isinstance(m, FLTAttention):
                    m.redraw_features(generator=gen)
                    m.redraw_frequencies(generator=gen)
                elif m.cutoff is None:
                    m.spectrum.redraw_frequencies(generator=gen)
            h = model.representation(z, pos, batch)
            errors.append(float((h - exact_h).norm() / exact_h.norm().clamp_min(1e-30)))
            pred.append(float((model(z, pos, batch) - exact_y).abs().mean()))
    finally:
        for name, b in model.named_buffers():
            b.copy_(saved[name])
        for m, mode in zip(layers, modes):
            m.attention = mode
        model.train(was_training)
    return {
        "representation_mean": sum(errors) / len(errors),
        "representation_max": max(errors),
        "prediction_mae": sum(pred) / len(pred),
    }
