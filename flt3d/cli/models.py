"""The ``flt3d models`` command: the table of pretrained models shipped with flt3d."""

from __future__ import annotations

import argparse

from .messages import fail

__all__ = ["list_models"]


def list_models(args: argparse.Namespace) -> int:
    """Print name, target and unit, test MAE and training time of every pretrained model."""
    from flt3d import pretrained

    names = pretrained.names()
    if not names:
        return fail("models", ValueError("this installation ships no pretrained models"))
    print("name\ttarget\ttest MAE\ttraining")
    for name in names:
        facts = pretrained.card(name)
        mae = facts["metrics"]["test_mae"]
        hours = facts["training"]["seconds"] / 3600.0
        print(
            f"{name}\t{facts['target']} ({facts['unit']})\t{mae:.4g} {facts['metrics_unit']}"
            f"\t{hours:.1f} h CPU, {facts['split']['train']:,} molecules"
        )
    return 0
