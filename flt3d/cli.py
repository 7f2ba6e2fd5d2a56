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
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence

from flt3d import __version__

__all__ = ["main"]

_HANDLED = (ValueError, ImportError, OSError)


def _version_dir(base: str, k: int) -> str:
    return base if k == 1 else f"{base}-{k}"


def _default_output(name: str, *, resume: bool) -> str:
    """``runs/NAME``; a fresh run takes the first of ``runs/NAME``, ``runs/NAME-2``, ... that
    holds no checkpoint yet, ``--resume`` the last one that does."""
    from flt3d.training.run import checkpoint_paths

    base = os.path.join("runs", name)
    k = 1
    while os.path.isfile(checkpoint_paths(_version_dir(base, k))[1]):
        k += 1
    if resume:
        return _version_dir(base, max(k - 1, 1))
    return _version_dir(base, k)


def _config_name(config: str) -> str:
    name = os.path.basename(config)
    return name[: -len(".yaml")] if name.endswith(".yaml") else os.path.splitext(name)[0]


def _train(args: argparse.Namespace) -> int:
    from flt3d.training.config import ConfigError, apply_overrides, load_config
    from flt3d.training.run import CONFIG_FILE, prepare_fit

    try:
        if args.output is None:
            name = _config_name(args.config or ("atoms" if args.data else "qm9"))
            output = _default_output(name, resume=args.resume)
        else:
            output = args.output
        saved = os.path.join(output, CONFIG_FILE)
        if args.config is None and args.resume and os.path.isfile(saved):
            config = load_config(saved)
        else:
            config = load_config(args.config or ("atoms" if args.data else "qm9"))
        if args.data is not None:
            if config.get("task") != "atoms":
                raise ConfigError(
                    f"--data trains the 'atoms' task (energies and forces); the config is a "
                    f"{config.get('task')!r} task"
                )
            config.setdefault("data", {})["path"] = _existing_file(args.data)
        config = apply_overrides(config, args.overrides)
        _check_threads(config.get("num_threads"))
        run = prepare_fit(config, output, resume=args.resume)
    except _HANDLED as error:
        if isinstance(error, ConfigError) and args.resume and args.output is None:
            error = ConfigError(f"{error} (pass the run folder with --output)")
        if isinstance(error, ValueError):
            error = _naming_overrides(error, args.overrides)
        return _fail("train", error)
    except Exception as error:  # nothing has trained yet: a value that the model, data module,
        # optimiser or lightning.Trainer rejects with its own exception (TypeError, ...)
        error = ValueError(f"the configuration cannot be used: {type(error).__name__}: {error}")
        return _fail("train", _naming_overrides(error, args.overrides))
    evaluations = run.run()
    if not run.trainer.is_global_zero:
        return 0
    print(f"run folder: {run.output}")
    print(f"last checkpoint: {run.last_checkpoint} (step {run.trainer.global_step})")
    if not evaluations:
        print("no validation ran, so there is no best checkpoint to evaluate")
        return 0
    print(f"best checkpoint: {run.best_checkpoint}")
    for evaluation in evaluations:
        for line in evaluation.lines:
            print(line)
    return 0


def _naming_overrides(error: ValueError, overrides: Sequence[str]) -> ValueError:
    # a value rejected deep inside (int('cpu')) may leave its key unnamed: then name them all
    keys = [text.partition("=")[0].strip().split(".")[-1] for text in overrides]
    if not overrides or any(key and key in str(error) for key in keys):
        return error
    listed = ", ".join(repr(text) for text in overrides)
    return ValueError(f"{error} (--set overrides: {listed})")


def _check_threads(threads: object) -> None:
    # torch.set_num_threads takes any positive number, and crashes the process far beyond it
    from flt3d.nn.checks import check_int
    from flt3d.training.config import ConfigError

    cores = os.cpu_count() or 1
    check_int(threads, "config key 'num_threads'", none="null", error=ConfigError)
    if threads is not None and threads > cores:
        raise ConfigError(
            f"config key 'num_threads' is {threads}, more than the {cores} CPU cores of this "
            f"machine; expected at most {cores}, or null for PyTorch's default"
        )


def _eval(args: argparse.Namespace) -> int:
    from flt3d.training.checkpoint import read_checkpoint
    from flt3d.training.config import ConfigError, parse_override
    from flt3d.training.run import evaluate

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
            sections["data"]["path"] = _existing_file(args.data)
            split = split or "all"
        checkpoint = _checkpoint(args)
        _check_weights(checkpoint, read_checkpoint(checkpoint)["state_dict"])
        evaluation = evaluate(
            checkpoint,
            split or "test",
            data=sections["data"],
            trainer=sections["trainer"],
            quiet=not args.progress,
        )
    except _HANDLED as error:
        if isinstance(error, ValueError):
            error = _naming_overrides(error, args.overrides)
        return _fail("eval", error)
    for line in evaluation.lines:
        print(line)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from flt3d.datasets.molecules import from_smiles, read_molecules
    from flt3d.training.checkpoint import CheckpointError
    from flt3d.training.run import load_module

    try:
        checkpoint = _checkpoint(args)
        task, module, entry = load_module(checkpoint)
        _check_weights(checkpoint, module.state_dict())
        if task.name == "atoms":
            return _predict_structures(args, module, checkpoint)
        if task.name == "pointcloud":
            return _predict_shapes(args, module, entry["data"])
        if task.name != "qm9":
            raise CheckpointError(
                f"predict needs a molecular property, energy or point-cloud checkpoint; "
                f"{checkpoint!r} is a {task.name!r} checkpoint"
            )
        labels, molecules = [], []
        for smiles in args.smiles:
            molecules.append(from_smiles(smiles, seed=args.seed))
            labels.append(smiles)
        for path in args.files:
            found = read_molecules(path, seed=args.seed)
            molecules.extend(found)
            labels.extend(
                [path] if len(found) == 1 else [f"{path}#{k}" for k in range(1, len(found) + 1)]
            )
        allowed = set(module.elements)
        for label, molecule in zip(labels, molecules):
            unknown = sorted(set(molecule.z.tolist()) - allowed)
            if unknown:
                raise ValueError(
                    f"cannot predict {label!r}: it contains {_symbols(unknown)}, and the model "
                    f"was trained on {_symbols(sorted(allowed))} only"
                )
        values = module.predict_molecules(molecules).tolist()
        for label, value in zip(labels, values):
            _check_prediction(checkpoint, label, value)
    except _HANDLED as error:
        return _fail("predict", error)
    name, unit = module.target, module.model_unit
    for label, value in zip(labels, values):
        print(f"{label}\t{name} = {value:.6g} {unit}")
    return 0


def _predict_structures(args: argparse.Namespace, module, checkpoint: str) -> int:
    # energies and forces of every structure in the files (an energy-and-forces checkpoint):
    # molecule files through RDKit, the rest through ASE with their cells (periodic ones too)
    from flt3d.datasets.atoms import read_structures
    from flt3d.datasets.molecules import check_elements, read_molecules

    try:
        if args.smiles:
            raise ValueError(
                f"{checkpoint!r} is an energy-and-forces checkpoint, which predicts structures "
                f"from --file, not --smiles (got --smiles {args.smiles[0]!r})"
            )
        results = []
        for path in args.files:
            if os.path.splitext(path)[1].lower() in (".sdf", ".mol", ".smi", ".smiles"):
                structures = read_molecules(_existing_file(path))
            else:
                structures = read_structures(_existing_file(path), energy_key=None)
            check_elements(structures, module.elements, source=path)
            labels = (
                [path] if len(structures) == 1 else [f"{path}#{k}" for k in range(len(structures))]
            )
            try:
                predictions = module.predict_structures(structures)
            except ValueError as error:  # e.g. a periodic cell that the model cannot take
                raise ValueError(f"cannot predict {path!r}: {error}") from error
            for label, (energy, forces) in zip(labels, predictions):
                _check_prediction(checkpoint, label, energy, forces)
            results.extend(zip(labels, structures, predictions))
    except _HANDLED as error:
        return _fail("predict", error)
    for label, structure, (energy, forces) in results:
        print(f"{label}\tenergy = {energy:.6f} eV")
        for atom, (z, force) in enumerate(zip(structure.z.tolist(), forces.tolist())):
            fx, fy, fz = force
            print(f"  {atom}\t{_symbols([z])}\tforce = {fx:.6f} {fy:.6f} {fz:.6f} eV/Å")
    return 0


def _predict_shapes(args: argparse.Namespace, module, data: dict) -> int:
    # the class of each mesh or point file (a point-cloud checkpoint), read as in training:
    # the same number of points and sampling seed, in the unit sphere
    from flt3d.datasets.pointclouds import read_point_cloud

    try:
        if args.smiles:
            raise ValueError("a point-cloud checkpoint classifies shapes from --file, not --smiles")
        clouds = [
            read_point_cloud(path, num_points=data["num_points"], seed=data["seed"], normalize=True)
            for path in args.files
        ]
        probabilities = module.predict_clouds(clouds, sources=args.files)
    except _HANDLED as error:
        return _fail("predict", error)
    names = module.classes
    for path, p in zip(args.files, probabilities):
        best = int(p.argmax())
        print(f"{path}\t{names[best]} (p = {float(p[best]):.2f})")
    return 0


def _checkpoint(args: argparse.Namespace) -> str:
    # --checkpoint PATH, or --model NAME: a pretrained model shipped inside the package
    if args.model is None:
        return args.checkpoint
    from flt3d import pretrained

    return pretrained.path(args.model)


def _models(args: argparse.Namespace) -> int:
    from flt3d import pretrained

    names = pretrained.names()
    if not names:
        return _fail("models", ValueError("this installation ships no pretrained models"))
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


def _check_weights(checkpoint: str, state_dict) -> None:
    # a damaged checkpoint can still load, with NaN weights that would predict NaN
    import torch

    from flt3d.training.checkpoint import CheckpointError

    for name, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all():
            raise CheckpointError(
                f"checkpoint {checkpoint!r} is corrupt: its weights {name!r} hold NaN or "
                "infinite values"
            )


def _check_prediction(checkpoint: str, label: str, value: float, forces=None) -> None:
    # weights that a damaged checkpoint holds can be finite and still overflow to NaN
    from flt3d.training.checkpoint import CheckpointError

    if not math.isfinite(value) or (forces is not None and not forces.isfinite().all()):
        raise CheckpointError(
            f"the model of checkpoint {checkpoint!r} predicts NaN or infinite values for "
            f"{label!r}; expected finite ones (are its weights damaged?)"
        )


def _existing_file(path: str) -> str:
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path!r}")
    return os.path.abspath(path)


def _symbols(numbers: Sequence[int]) -> str:
    from flt3d.atomistic.elements import element_symbol

    return ", ".join(element_symbol(z) for z in numbers)


def _fail(command: str, error: BaseException) -> int:
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"flt3d {command}: error: {message or type(error).__name__}", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flt3d",
        description="FourierLearner-Transformers: train, evaluate and apply FLT models.",
    )
    parser.add_argument("--version", action="version", version=f"flt3d {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model from a YAML configuration",
        description="Train a model. Without arguments: FLTNet on the QM9 sample shipped with "
        "flt3d (the HOMO-LUMO gap), a few minutes on a CPU; prints validation and test MAE.",
    )
    train.add_argument(
        "--config",
        metavar="NAME|PATH",
        help="a YAML file or a shipped configuration (qm9, atoms, digits, pydoc_lm, pointcloud); "
        "default: qm9, or the run folder's config.yaml with --resume",
    )
    train.add_argument(
        "--data",
        metavar="PATH",
        help="train energies (and forces, when present) on the structures of a file ASE reads "
        "(extxyz, ASE .db, .traj): the 'atoms' task",
    )
    train.add_argument(
        "--output",
        metavar="DIR",
        help="run folder for checkpoints and logs; default: runs/NAME (runs/NAME-2, ... if taken)",
    )
    train.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="continue the run in --output from checkpoints/last.ckpt (step count, optimiser "
        "and scheduler state)",
    )
    train.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override configuration values, e.g. model.hidden_channels=64 trainer.max_epochs=3",
    )
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a checkpoint on a data split",
        description="Print the error of a checkpoint on one split of its data (MAE in the "
        "target's unit, meV for energies).",
    )
    _add_checkpoint(evaluate)
    evaluate.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        default=None,
        help="default: test; with --data, all (every structure of the file)",
    )
    evaluate.add_argument(
        "--data",
        metavar="PATH",
        help="evaluate an energy-and-forces checkpoint on another file of structures",
    )
    evaluate.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="change data or trainer settings, e.g. data.sample=false trainer.accelerator=cpu",
    )
    evaluate.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="show Lightning's progress bar",
    )
    evaluate.set_defaults(handler=_eval)

    predict = commands.add_parser(
        "predict",
        help="predict a property of molecules, or the class of shapes",
        description="Predict the trained property for molecules given as SMILES (3D geometry "
        "from RDKit, force-field relaxed) or files (xyz, extxyz, sdf, mol, smi); one line per "
        "molecule. With a point-cloud checkpoint: the class of each mesh or point file (off, "
        "ply, obj, stl) and its probability, one line per file.",
    )
    _add_checkpoint(predict)
    predict.add_argument(
        "--smiles", action="append", default=[], metavar="SMILES", help="repeatable"
    )
    predict.add_argument(
        "--file", dest="files", action="append", default=[], metavar="PATH", help="repeatable"
    )
    predict.add_argument(
        "--seed", type=int, default=0, help="seed of the 3D embedding of SMILES (default 0)"
    )
    predict.set_defaults(handler=_predict)

    models = commands.add_parser(
        "models",
        help="list the pretrained models shipped with flt3d",
        description="List the pretrained QM9 models that --model NAME loads (no download): "
        "name, target and unit, test MAE on the standard split, training time.",
    )
    models.set_defaults(handler=_models)
    return parser


def _add_checkpoint(command: argparse.ArgumentParser) -> None:
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint of flt3d train")
    source.add_argument(
        "--model", metavar="NAME", help="a pretrained model shipped with flt3d (flt3d models)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flt3d`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
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
        return _fail(
            args.command,
            ImportError(
                f"flt3d {args.command} needs the optional package {error.name!r}; install the "
                "training extra with pip install 'flt3d[train]'"
            ),
        )
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
