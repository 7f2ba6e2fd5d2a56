"""The argument parser of the ``flt3d`` command: its subcommands, their options and handlers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from flt3d import __version__

from .evaluate import evaluate
from .models import list_models
from .predict import predict
from .train import train

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``flt3d``; each subcommand sets ``handler``, its function of the arguments."""
    parser = argparse.ArgumentParser(
        prog="flt3d",
        description="FourierLearner-Transformers: train, evaluate and apply FLT models.",
    )
    parser.add_argument("--version", action="version", version=f"flt3d {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    command = _add_command(
        commands,
        "train",
        train,
        help="train a model from a YAML configuration",
        description="Train a model. Without arguments: FLTNet on the QM9 sample shipped with "
        "flt3d (the HOMO-LUMO gap), a few minutes on a CPU; prints validation and test MAE.",
    )
    command.add_argument(
        "--config",
        metavar="NAME|PATH",
        help="a YAML file or a shipped configuration (qm9, atoms, digits, pydoc_lm, pointcloud); "
        "default: qm9, or the run folder's config.yaml with --resume",
    )
    command.add_argument(
        "--data",
        metavar="PATH",
        help="train energies (and forces, when present) on the structures of a file ASE reads "
        "(extxyz, ASE .db, .traj): the 'atoms' task",
    )
    command.add_argument(
        "--output",
        metavar="DIR",
        help="run folder for checkpoints and logs; default: runs/NAME (runs/NAME-2, ... if taken)",
    )
    _add_flag(
        command,
        "--resume",
        help="continue the run in --output from checkpoints/last.ckpt (step count, optimiser "
        "and scheduler state)",
    )
    _add_overrides(
        command,
        help="override configuration values, e.g. model.hidden_channels=64 trainer.max_epochs=3",
    )

    command = _add_command(
        commands,
        "eval",
        evaluate,
        help="evaluate a checkpoint on a data split",
        description="Print the error of a checkpoint on one split of its data (MAE in the "
        "target's unit, meV for energies).",
    )
    _add_checkpoint(command)
    command.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        default=None,
        help="default: test; with --data, all (every structure of the file)",
    )
    command.add_argument(
        "--data",
        metavar="PATH",
        help="evaluate an energy-and-forces checkpoint on another file of structures",
    )
    _add_overrides(
        command,
        help="change data or trainer settings, e.g. data.sample=false trainer.accelerator=cpu",
    )
    _add_flag(command, "--progress", help="show Lightning's progress bar")

    command = _add_command(
        commands,
        "predict",
        predict,
        help="predict a property of molecules, or the class of shapes",
        description="Predict the trained property for molecules given as SMILES (3D geometry "
        "from RDKit, force-field relaxed) or files (xyz, extxyz, sdf, mol, smi); one line per "
        "molecule. With a point-cloud checkpoint: the class of each mesh or point file (off, "
        "ply, obj, stl) and its probability, one line per file. A file of several molecules "
        "or structures names each PATH#k, k from 0 (ASE's PATH@k).",
    )
    _add_checkpoint(command)
    command.add_argument(
        "--smiles", action="append", default=[], metavar="SMILES", help="repeatable"
    )
    command.add_argument(
        "--file", dest="files", action="append", default=[], metavar="PATH", help="repeatable"
    )
    command.add_argument(
        "--seed", type=int, default=0, help="seed of the 3D embedding of SMILES (default 0)"
    )

    _add_command(
        commands,
        "models",
        list_models,
        help="list the pretrained models shipped with flt3d",
        description="List the pretrained QM9 models that --model NAME loads (no download): "
        "name, target and unit, test MAE on the standard split, training time.",
    )
    return parser


def _add_command(
    commands: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    # a subcommand whose parsed arguments ``main`` hands to ``handler``
    command = commands.add_parser(name, help=help, description=description)
    command.set_defaults(handler=handler)
    return command


def _add_checkpoint(command: argparse.ArgumentParser) -> None:
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint of flt3d train")
    source.add_argument(
        "--model", metavar="NAME", help="a pretrained model shipped with flt3d (flt3d models)"
    )


def _add_overrides(command: argparse.ArgumentParser, *, help: str) -> None:
    # --set KEY=VALUE ..., repeatable; the pairs collect in ``overrides``
    command.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help=help,
    )


def _add_flag(command: argparse.ArgumentParser, name: str, *, help: str) -> None:
    # --NAME / --no-NAME, off by default
    command.add_argument(name, action=argparse.BooleanOptionalAction, default=False, help=help)
