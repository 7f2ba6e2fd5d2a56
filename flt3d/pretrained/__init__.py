r"""Pretrained QM9 models shipped inside flt3d, loaded by name with no network access.

Each model is one small file in this folder, ``NAME.pt``: a flt3d checkpoint without optimiser
state (the weights, the model and data settings that rebuild it) plus a ``"pretrained"`` entry,
the card's facts (data, split, training time, validation and test MAE on the standard split).
``NAME.md`` beside it is that card, written from the same entry by :mod:`flt3d.pretrained.export`.

Example:
    >>> from flt3d import pretrained
    >>> "qm9-gap" in pretrained.names()
    True
    >>> model = pretrained.load("qm9-gap")  # FLTNet in eval mode; predicts the gap in eV
    >>> model.training
    False

From the command line: ``flt3d models`` lists them; ``flt3d predict --model qm9-gap --smiles
CCO`` and ``flt3d eval --model qm9-gap`` use them in place of a checkpoint path.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any

import torch

__all__ = ["MODEL_KEY", "card", "load", "names", "path"]

MODEL_KEY = "pretrained"
"""Key of the card's entry in a pretrained model file."""

_SUFFIX = ".pt"


def _folder() -> str:
    return os.fspath(resources.files(__name__))


def names() -> list[str]:
    """Names of the shipped models, sorted (e.g. ``["qm9-U0", "qm9-alpha", "qm9-gap", ...]``)."""
    return sorted(
        entry[: -len(_SUFFIX)] for entry in os.listdir(_folder()) if entry.endswith(_SUFFIX)
    )


def path(name: str) -> str:
    """The file of the shipped model ``name``.

    Raises:
        ValueError: naming the shipped models if there is no model ``name``.
    """
    available = names()
    if name not in available:
        listed = ", ".join(available) or "none"
        raise ValueError(f"no pretrained model {name!r}; the shipped models are: {listed}")
    return os.path.join(_folder(), name + _SUFFIX)


def _read(name: str) -> dict[str, Any]:
    return torch.load(path(name), map_location="cpu", weights_only=True)


def card(name: str) -> dict[str, Any]:
    """The card's facts of model ``name``: target, unit, data, split, training and metrics.

    ``metrics`` holds ``val_mae`` and ``test_mae`` in ``metrics_unit`` (meV for energies), as
    ``flt3d eval --model NAME`` prints them.
    """
    return dict(_read(name)[MODEL_KEY])


def load(name: str):
    """The shipped model ``name`` as an :class:`~flt3d.models.FLTNet` in eval mode.

    ``model(z, pos, batch)`` returns ``[G, 1]``: the property of each molecule in QM9's unit
    (eV for energies such as ``gap`` and ``U0``, D for ``mu``, bohr³ for ``alpha``).

    Raises:
        ValueError: if there is no model ``name``.
    """
    from flt3d.models.fltnet import FLTNet

    checkpoint = _read(name)
    model = FLTNet(**checkpoint["flt3d"]["model"])
    prefix = "model."
    weights = {
        key[len(prefix) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(prefix)
    }
    model.load_state_dict(weights)
    return model.eval()
