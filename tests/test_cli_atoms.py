"""``flt3d train --data``: energies and forces of one's own structures, and bad files."""

import re
from contextlib import redirect_stdout
from io import StringIO

import numpy as np
import pytest
from ase.io import read, write

from flt3d.cli import main
from flt3d.datasets import EMT_COPPER_SAMPLE_PATH

TINY = [
    "model.hidden_channels=8", "model.num_layers=1", "model.heads=2", "model.num_frequencies=4",
    "data.batch_size=4", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1", "trainer.accelerator=cpu", "optim.warmup_steps=2",
]  # fmt: skip
NUMBER = r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?"


@pytest.fixture(scope="module")
def frames():
    return read(EMT_COPPER_SAMPLE_PATH, ":40")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, frames):
    """A tiny energy-and-forces run on a file the project has not processed before."""
    folder = tmp_path_factory.mktemp("atoms")
    data = folder / "copper.extxyz"
    write(data, frames)
    output = folder / "run"
    argv = ["train", "--data", str(data), "--output", str(output), "--set", *TINY,
            f"data.root={folder / 'cache'}"]  # fmt: skip
    buffer = StringIO()
    with redirect_stdout(buffer):
        assert main(argv) == 0
    return folder, output / "checkpoints" / "best.ckpt", buffer.getvalue()


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_prints_energy_and_force_mae(trained):
    _, checkpoint, printed = trained
    assert checkpoint.is_file()
    assert re.search(rf"^test MAE energy: {NUMBER} meV$", printed, re.M), printed
    assert re.search(rf"^test MAE forces: {NUMBER} meV/Å$", printed, re.M), printed


def test_eval_on_another_file(trained, frames, tmp_path, capsys):
    other = tmp_path / "other.extxyz"
    write(other, frames[30:35])
    code, out, err = run(["eval", "--checkpoint", trained[1], "--data", other], capsys)
    assert code == 0, err
    assert re.search(rf"^all MAE energy: {NUMBER} meV$", out, re.M), out
    assert re.search(rf"^all MAE forces: {NUMBER} meV/Å$", out, re.M), out


def test_predict_prints_energies_and_forces(trained, frames, tmp_path, capsys):
    path = tmp_path / "two.extxyz"
    write(path, frames[:2])
    code, out, err = run(["predict", "--checkpoint", trained[1], "--file", path], capsys)
    assert code == 0, err
    energies = re.findall(rf"^{re.escape(str(path))}#(\d)\tenergy = ({NUMBER}) eV$", out, re.M)
    assert [e[0] for e in energies] == ["0", "1"]
    forces = re.findall(rf"^  \d+\tCu\tforce = {NUMBER} {NUMBER} {NUMBER} eV/Å$", out, re.M)
    assert len(forces) == len(frames[0]) + len(frames[1])


def _bad_files(frames, folder):
    text = open(EMT_COPPER_SAMPLE_PATH).read()
    truncated = folder / "truncated.extxyz"
    truncated.write_text(text[: len(text) // 50])
    wrong = [f.copy() for f in frames[:3]]
    for f, source in zip(wrong, frames[:3]):
        f.info["energy"] = source.info.get("energy", source.get_potential_energy())
        f.arrays["forces"] = source.get_forces()
    wrong[2].arrays["forces"] = np.zeros((len(wrong[2]), 3))
    shape = folder / "shape.extxyz"
    write(shape, wrong, format="extxyz")
    # rewrite one frame's forces column with two components only
    lines = shape.read_text().splitlines()
    header = lines[1].replace("forces:R:3", "forces:R:2")
    n0, n1 = len(wrong[0]), len(wrong[1])
    start = n0 + 2 + n1 + 2
    lines[start + 1] = header
    for k in range(start + 2, start + 2 + len(wrong[2])):
        lines[k] = " ".join(lines[k].split()[:-1])
    shape.write_text("\n".join(lines) + "\n")
    missing = folder / "missing.extxyz"
    unlabelled = [f.copy() for f in frames[:4]]
    for f in unlabelled:
        f.calc = None
    write(missing, unlabelled)
    alien = [f.copy() for f in frames[:3]]
    for f, source in zip(alien, frames[:3]):
        f.calc = source.calc
    alien[1].numbers[0] = 79  # gold
    gold = folder / "gold.extxyz"
    write(gold, alien)
    return {
        "truncated": (truncated, "structure"),
        "wrong force shape": (shape, "structure 2"),
        "missing energy": (missing, "structure 0"),
        "element the model lacks": (gold, "structure 1"),
    }


@pytest.mark.parametrize(
    "case", ["truncated", "wrong force shape", "missing energy", "element the model lacks"]
)
def test_bad_files_exit_with_one_line_naming_file_and_structure(trained, frames, case, capsys):
    folder = trained[0] / "bad"
    folder.mkdir(exist_ok=True)
    path, where = _bad_files(frames, folder)[case]
    code, out, err = run(["eval", "--checkpoint", trained[1], "--data", path], capsys)
    assert code == 1, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("flt3d eval: error:") and path.name in lines[0], lines[0]
    assert where in lines[0], lines[0]
    if case != "element the model lacks":  # training on it fails the same way
        code, out, err = run(
            ["train", "--data", path, "--output", folder / "run", "--set", *TINY], capsys
        )
        assert code == 1 and path.name in err and where in err and "Traceback" not in err, err


def test_data_needs_the_atoms_task(trained, capsys):
    code, _, err = run(["train", "--config", "qm9", "--data", EMT_COPPER_SAMPLE_PATH], capsys)
    assert code == 1 and "'atoms' task" in err
    code, _, err = run(["train", "--data", trained[0] / "nope.extxyz"], capsys)
    assert code == 1 and "no such file" in err


def test_periodic_structures_train_a_local_model(tmp_path, capsys):
    """Bulk copper in periodic cells: a local FLTNet trains on it; the default one (attention
    beyond the cutoff) refuses with one line."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    frames = []
    for k in range(12):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.get_forces()
        frames.append(atoms)
    path = tmp_path / "bulk.extxyz"
    write(path, frames)
    root = f"data.root={tmp_path / 'cache'}"
    code, out, err = run(["train", "--data", path, "--output", tmp_path / "local", "--set",
                          *TINY, root, "model.far_attention=false"], capsys)  # fmt: skip
    assert code == 0, err
    assert re.search(rf"^test MAE forces: {NUMBER} meV/Å$", out, re.M), out
    code, out, err = run(
        ["train", "--data", path, "--output", tmp_path / "far", "--set", *TINY, root], capsys
    )
    assert code == 1 and "periodic cells need a local FLTNet" in err and "Traceback" not in err
    assert "structure 0" in err and len(err.strip().splitlines()) == 1
    # predict reads the cells: the printed forces are the periodic ones, from an unlabelled file
    bare = [atoms.copy() for atoms in frames[:2]]
    unlabelled = tmp_path / "bulk_unlabelled.extxyz"
    write(unlabelled, bare)
    checkpoint = tmp_path / "local" / "checkpoints" / "best.ckpt"
    code, out, err = run(["predict", "--checkpoint", checkpoint, "--file", unlabelled], capsys)
    assert code == 0, err
    printed = re.findall(rf"^  \d+\tCu\tforce = ({NUMBER}) ({NUMBER}) ({NUMBER}) eV/Å$", out, re.M)
    printed = np.array([[float(row[0]), float(row[3]), float(row[6])] for row in printed])
    from flt3d.calculators import FLTCalculator

    calc = FLTCalculator(checkpoint)
    periodic = np.concatenate([calc.get_forces(atoms.copy()) for atoms in bare])
    np.testing.assert_allclose(printed, periodic, atol=2e-6)
    energies = [float(e[0]) for e in re.findall(rf"\tenergy = ({NUMBER}) eV$", out, re.M)]
    np.testing.assert_allclose(
        energies, [calc.get_potential_energy(a.copy()) for a in bare], atol=2e-6
    )
    isolated = bare[0].copy()
    isolated.pbc = False  # the same atoms without their images: surface atoms, another energy
    assert abs(calc.get_potential_energy(isolated) - energies[0]) > 1e-5  # 10x the print step
