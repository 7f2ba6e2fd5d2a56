"""The ``flt3d`` command: ``train``, ``eval``, ``predict`` and ``models``.

Examples::

    flt3d train                                   # FLTNet on the bundled QM9 sample, minutes on CPU
    flt3d train --config digits --set trainer.max_epochs=3 optim.lr=3e-3
    flt3d train --output runs/qm9 --resume --set trainer.max_epochs=40
    flt3d eval --checkpoint runs/qm9/checkpoints/best.ckpt --split test
    flt3d predict --checkpoint runs/qm9/checkpoints/best.ckpt --smiles CCO --file mol.sdf
    flt3d train --data structures.extxyz          # energies + forces of one's own structures
    flt3d eval --checkpoint runs/atoms/checkpoints/best.ckpt --data other.extxyz
    flt3d predict --checkpoint runs/atoms/checkpoints/best.ckpt --file cluster.xyz
    flt3d train --config pointcloud               # classes of the shipped shapes, minutes on CPU
    flt3d train --config pointcloud --set data.path=ModelNet10
    flt3d predict --checkpoint runs/pointcloud/checkpoints/best.ckpt --file chair.off
    flt3d models                                  # the pretrained QM9 models shipped with flt3d
    flt3d predict --model qm9-gap --smiles CCO    # one of them, no checkpoint path

Overrides are ``KEY=VALUE`` pairs after ``--set``, with dotted keys into the configuration
sections and values parsed as YAML (see :mod:`flt3d.training.config`). Errors in the input
(configuration, overrides, checkpoints, molecules, shapes) are reported as one message on stderr
with exit status 1; usage errors exit with status 2.

The package holds one command per module: :mod:`~flt3d.cli.train`, :mod:`~flt3d.cli.evaluate`,
:mod:`~flt3d.cli.predict` and :mod:`~flt3d.cli.models`, with their options in
:mod:`~flt3d.cli.parser`, the checks of files and checkpoints in :mod:`~flt3d.cli.inputs` and the
error messages in :mod:`~flt3d.cli.messages`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

from .messages import fail
from .parser import build_parser
from .train import default_output as _default_output  # noqa: F401  (tests/test_cli.py uses it)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flt3d`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # torch's own pytree deprecation, triggered inside Lightning; not actionable for users
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "predict" and not (args.smiles or args.files):
        parser.error("predict needs at least one --smiles or --file")
    try:
        import flt3d.training  # noqa: F401
    except ImportError as error:
        return fail(
            args.command,
            ImportError(
                f"flt3d {args.command} needs the optional package {error.name!r}; install the "
                "training extra with pip install 'flt3d[train]'"
            ),
        )
    try:
        return args.handler(args)
    except BrokenPipeError:  # the reader of stdout left (flt3d models | head): stop, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
