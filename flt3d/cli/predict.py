"""The ``flt3d predict`` command: what a checkpoint predicts for molecules, structures or shapes.

The checkpoint's task decides: a molecular property of SMILES and molecule files (``qm9``), the
energy and forces of each structure in the files (``atoms``), or the class of each mesh or point
file (``pointcloud``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from .inputs import check_prediction, check_weights, checkpoint_path, existing_file
from .messages import HANDLED, fail

__all__ = ["predict"]


def predict(args: argparse.Namespace) -> int:
    """Predict with the checkpoint of ``args``; print one line per molecule, structure or file."""
    from flt3d.training.checkpoint import CheckpointError
    from flt3d.training.run import load_module

    try:
        checkpoint = checkpoint_path(args)
        task, module, entry = load_module(checkpoint)
        check_weights(checkpoint, module.state_dict())
        if task.name == "atoms":
            lines = _structures(args, module, checkpoint)
        elif task.name == "pointcloud":
            lines = _shapes(args, module, entry["data"])
        elif task.name == "qm9":
            lines = _molecules(args, module, checkpoint)
        else:
            raise CheckpointError(
                f"predict needs a molecular property, energy or point-cloud checkpoint; "
                f"{checkpoint!r} is a {task.name!r} checkpoint"
            )
    except HANDLED as error:
        return fail("predict", error)
    for line in lines:
        print(line)
    return 0


def _molecules(args: argparse.Namespace, module, checkpoint: str) -> list[str]:
    # the trained property of every SMILES and every molecule in the files (a QM9 checkpoint)
    from flt3d.datasets.molecules import from_smiles, read_molecules

    labels, molecules = [], []
    for smiles in args.smiles:
        molecules.append(from_smiles(smiles, seed=args.seed))
        labels.append(smiles)
    for path in args.files:
        found = read_molecules(path, seed=args.seed)
        molecules.extend(found)
        labels.extend(_labels(path, len(found)))
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
        check_prediction(checkpoint, label, value)
    name, unit = module.target, module.model_unit
    return [f"{label}\t{name} = {value:.6g} {unit}" for label, value in zip(labels, values)]


def _structures(args: argparse.Namespace, module, checkpoint: str) -> list[str]:
    # energies and forces of every structure in the files (an energy-and-forces checkpoint):
    # molecule files through RDKit, the rest through ASE with their cells (periodic ones too)
    from flt3d.datasets.atoms import read_structures
    from flt3d.datasets.molecules import check_elements, read_molecules

    if args.smiles:
        raise ValueError(
            f"{checkpoint!r} is an energy-and-forces checkpoint, which predicts structures "
            f"from --file, not --smiles (got --smiles {args.smiles[0]!r})"
        )
    results = []
    for path in args.files:
        if os.path.splitext(path)[1].lower() in (".sdf", ".mol", ".smi", ".smiles"):
            structures = read_molecules(existing_file(path))
        else:
            structures = read_structures(existing_file(path), energy_key=None)
        check_elements(structures, module.elements, source=path)
        labels = _labels(path, len(structures))
        try:
            predictions = module.predict_structures(structures)
        except ValueError as error:  # e.g. a periodic cell that the model cannot take
            raise ValueError(f"cannot predict {path!r}: {error}") from error
        for label, (energy, forces) in zip(labels, predictions):
            check_prediction(checkpoint, label, energy, forces)
        results.extend(zip(labels, structures, predictions))
    lines = []
    for label, structure, (energy, forces) in results:
        lines.append(f"{label}\tenergy = {energy:.6f} eV")
        for atom, (z, force) in enumerate(zip(structure.z.tolist(), forces.tolist())):
            fx, fy, fz = force
            lines.append(f"  {atom}\t{_symbols([z])}\tforce = {fx:.6f} {fy:.6f} {fz:.6f} eV/Å")
    return lines


def _shapes(args: argparse.Namespace, module, data: dict) -> list[str]:
    # the class of each mesh or point file (a point-cloud checkpoint), read as in training:
    # the same number of points and sampling seed, in the unit sphere
    from flt3d.datasets.pointclouds import read_point_cloud

    if args.smiles:
        raise ValueError("a point-cloud checkpoint classifies shapes from --file, not --smiles")
    clouds = [
        read_point_cloud(path, num_points=data["num_points"], seed=data["seed"], normalize=True)
        for path in args.files
    ]
    probabilities = module.predict_clouds(clouds, sources=args.files)
    names = module.classes
    lines = []
    for path, p in zip(args.files, probabilities):
        best = int(p.argmax())
        lines.append(f"{path}\t{names[best]} (p = {float(p[best]):.2f})")
    return lines


def _labels(path: str, count: int) -> list[str]:
    # one item of a file is named by the file, several by PATH#k from k = 0, for every kind of
    # checkpoint: the index ASE's PATH@k selects, and the one check_elements' messages name
    return [path] if count == 1 else [f"{path}#{k}" for k in range(count)]


def _symbols(numbers: Sequence[int]) -> str:
    from flt3d.atomistic.elements import element_symbol

    return ", ".join(element_symbol(z) for z in numbers)
