"""The files and checkpoints that a command line names, and the checks that they are sound."""

from __future__ import annotations

import argparse
import math
import os

__all__ = ["check_prediction", "check_weights", "checkpoint_path", "existing_file"]


def existing_file(path: str) -> str:
    """The absolute path of ``path``; a ``ValueError`` if no such file exists."""
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path!r}")
    return os.path.abspath(path)


def checkpoint_path(args: argparse.Namespace) -> str:
    """``--checkpoint PATH``, or that of ``--model NAME``: a pretrained model in the package."""
    if args.model is None:
        return args.checkpoint
    from flt3d import pretrained

    return pretrained.path(args.model)


def check_weights(checkpoint: str, state_dict) -> None:
    """Raise ``CheckpointError`` if a floating weight of ``state_dict`` is NaN or infinite."""
    # a damaged checkpoint can still load, with NaN weights that would predict NaN
    import torch

    from flt3d.training.checkpoint import CheckpointError

    for name, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all():
            raise CheckpointError(
                f"checkpoint {checkpoint!r} is corrupt: its weights {name!r} hold NaN or "
                "infinite values"
            )


def check_prediction(checkpoint: str, label: str, value: float, forces=None) -> None:
    """Raise ``CheckpointError`` if a predicted value (or force) of ``label`` is not finite."""
    # weights that a damaged checkpoint holds can be finite and still overflow to NaN
    from flt3d.training.checkpoint import CheckpointError

    if not math.isfinite(value) or (forces is not None and not forces.isfinite().all()):
        raise CheckpointError(
            f"the model of checkpoint {checkpoint!r} predicts NaN or infinite values for "
            f"{label!r}; expected finite ones (are its weights damaged?)"
        )
