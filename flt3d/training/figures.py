"""RPEFigures: a Lightning callback that draws what a run's first FLT layer learned.

At the end of training, on the main process, the first layer's RPE profile f(Δ) and its
spectral density are saved as ``rpe_profile.png`` and ``rpe_spectrum.png`` in the run folder
(:func:`save_rpe_figures`, drawn with :mod:`flt3d.plot`). Nothing is drawn without matplotlib
(``flt3d[plot]``) or for models without a spectral RPE.
"""

from __future__ import annotations

import os

import lightning as L
import torch

__all__ = ["RPEFigures", "save_rpe_figures"]


def save_rpe_figures(model: torch.nn.Module, folder: str | os.PathLike) -> list[str]:
    """Save the first FLT layer's learned RPE profile and spectrum as PNG files in ``folder``.

    Returns the paths written: none when matplotlib (``flt3d[plot]``) is not installed or the
    model has no spectral RPE.
    """
    try:  # the backend is left as it is (a notebook keeps its inline figures)
        from matplotlib import pyplot as plt
    except ImportError:
        return []
    from flt3d.nn import FLTAttention
    from flt3d.plot import rpe_profile, spectrum

    if not any(isinstance(m, FLTAttention) and m.spectrum is not None for m in model.modules()):
        return []
    paths = []
    for name, draw in (("rpe_profile.png", rpe_profile), ("rpe_spectrum.png", spectrum)):
        figure = draw(model)
        path = os.path.join(folder, name)
        figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(figure)
        paths.append(path)
    return paths


class RPEFigures(L.Callback):
    """Draw the trained model's RPE figures into ``folder`` when ``fit`` ends (main process).

    Args:
        folder: where the PNG files go (a run's output folder).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = os.fspath(folder)
        self.paths: list[str] = []

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.paths = save_rpe_figures(pl_module.model, self.folder)
