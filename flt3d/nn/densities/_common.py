"""Parameter helpers the density families share: logits of bounded widths, per-component draws."""

from __future__ import annotations

import torch
from torch import Tensor

from flt3d.nn.spectrum import Spectrum


def _logit(p: Tensor) -> Tensor:
    return torch.log(p) - torch.log1p(-p)


def _check_per_component(spectrum: Spectrum, num_components: int) -> None:
    if spectrum.sampler == "density" and spectrum.num_frequencies % num_components:
        raise ValueError(
            f"sampler='density' draws num_frequencies / num_components frequencies per "
            f"component: num_frequencies ({spectrum.num_frequencies}) must be a multiple of "
            f"num_components ({num_components})"
        )
