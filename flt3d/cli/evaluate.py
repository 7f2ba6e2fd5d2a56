"""The ``flt3d eval`` command: the error of a checkpoint on one split of its data."""

from __future__ import annotations

import argparse

from .inputs import check_weights, checkpoint_path, existing_file
from .messages import HANDLED, fail, naming_overrides

__all__ = ["evaluate"]


def evaluate(args: argparse.Namespace) -> int:
    """Evaluate the checkpoint of ``args`` and print the evaluation's lines."""
    from flt3d.training.checkpoint import read_checkpoint
    from flt3d.training.config import ConfigError, parse_override
    from flt3d.training.run import evaluate as evaluate_checkpoint

    try:
        sections: dict[str, dict] = {"data": {}, "trainer": {}}
        for text in args.overrides:
            path, value = parse_override(text)
            if path[0] not in sections or len(path) != 2:
                raise ConfigError(
                    f"bad override {text!r}: eval accepts data.KEY=VALUE and trainer.KEY=VALUE"
                )
            sections[path[0]][path[1]] = value
        split = args.split
        if args.data is not None:
            sections["data"]["path"] = existing_file(args.data)
            split = split or "all"
        checkpoint = checkpoint_path(args)
        check_weights(checkpoint, read_checkpoint(checkpoint)["state_dict"])
        evaluation = evaluate_checkpoint(
            checkpoint,
            split or "test",
            data=sections["data"],
            trainer=sections["trainer"],
            quiet=not args.progress,
        )
    except HANDLED as error:
        return fail("eval", naming_overrides(error, args.overrides))
    for line in evaluation.lines:
        print(line)
    return 0
