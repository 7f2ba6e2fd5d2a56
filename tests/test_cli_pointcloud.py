"""``flt3d train --config pointcloud``, ``eval`` and ``predict`` on shapes, and bad inputs."""

import re
from contextlib import redirect_stdout
from io import StringIO

import numpy as np
import pytest
import yaml

from flt3d.cli import main
from flt3d.training.checkpoint import read_checkpoint

trimesh = pytest.importorskip("trimesh")

CLASSES = ("box", "cone", "sphere")
TINY = [
    "model.hidden_channels=8", "model.num_layers=1", "model.heads=2", "model.num_features=8",
    "model.num_frequencies=4", "data.num_points=32", "data.batch_size=4",
    "data.val_fraction=0.2", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1",
    "trainer.accelerator=cpu", "optim.warmup_steps=2",
]  # fmt: skip
PERCENT = r"\d+\.\d\d"


def _mesh(name, rng):
    if name == "box":
        mesh = trimesh.creation.box(extents=rng.uniform(0.5, 1.5, 3))
    elif name == "cone":
        mesh = trimesh.creation.cone(radius=rng.uniform(0.3, 1.0), height=rng.uniform(0.5, 1.5))
    else:
        mesh = trimesh.creation.icosphere(subdivisions=1, radius=rng.uniform(0.5, 1.5))
    return mesh


def write_shapes(folder, *, train=5, test=2, seed=0):
    """A folder in the ModelNet layout: box, cone and sphere meshes as OFF files."""
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        for split, count in (("train", train), ("test", test)):
            (folder / name / split).mkdir(parents=True)
            for k in range(count):
                _mesh(name, rng).export(folder / name / split / f"{name}_{k:04d}.off")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run on a folder of one's own: its folder, best checkpoint and printed lines."""
    folder = tmp_path_factory.mktemp("pointcloud")
    shapes = write_shapes(folder / "shapes")
    output = folder / "run"
    argv = ["train", "--config", "pointcloud", "--output", str(output), "--set", *TINY,
            f"data.path={shapes}", f"data.root={folder / 'cache'}"]  # fmt: skip
    buffer = StringIO()
    with redirect_stdout(buffer):
        assert main(argv) == 0
    return folder, output / "checkpoints" / "best.ckpt", buffer.getvalue()


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_prints_and_writes_test_accuracy(trained):
    folder, checkpoint, printed = trained
    accuracy = re.search(rf"^test accuracy: ({PERCENT}) %$", printed, re.M)
    assert accuracy, printed
    assert re.search(rf"^val accuracy: {PERCENT} %$", printed, re.M), printed
    results = yaml.safe_load((folder / "run" / "results.yaml").read_text())
    assert 0 <= results["test"]["acc"] <= 1
    assert float(accuracy.group(1)) == pytest.approx(100 * results["test"]["acc"], abs=0.01)
    entry = read_checkpoint(checkpoint)["flt3d"]
    assert entry["task"] == "pointcloud"
    assert entry["model"]["classes"] == list(CLASSES) and entry["model"]["num_classes"] == 3
    assert entry["data"]["path"] == str(folder / "shapes")
    assert entry["data"]["num_points"] == 32


def test_a_modelnet_folder_given_as_data_root_is_the_dataset(tmp_path, monkeypatch):
    # PyG's ModelNet(root) reads its shapes from root: `--set data.root=DIR` on a folder in
    # the ModelNet layout trains on DIR (not on the shipped shapes), its cache elsewhere
    monkeypatch.setenv("FLT3D_DATA", str(tmp_path / "data"))
    shapes = write_shapes(tmp_path / "mine", train=3, test=1, seed=1)
    before = sorted(p.relative_to(shapes) for p in shapes.rglob("*"))
    output = tmp_path / "run"
    argv = ["train", "--config", "pointcloud", "--output", str(output), "--set", *TINY,
            f"data.root={shapes}"]  # fmt: skip
    with redirect_stdout(StringIO()):
        assert main(argv) == 0
    results = yaml.safe_load((output / "results.yaml").read_text())
    assert 0 <= results["test"]["acc"] <= 1
    entry = read_checkpoint(output / "checkpoints" / "best.ckpt")["flt3d"]
    assert entry["model"]["classes"] == list(CLASSES)  # the shipped shapes have ten classes
    assert entry["data"]["path"] == str(shapes) and entry["data"]["root"] is None
    assert sorted(p.relative_to(shapes) for p in shapes.rglob("*")) == before  # nothing written
    assert any((tmp_path / "data" / "shapes").rglob("*.pt"))


def test_eval_reprints_the_test_accuracy(trained, capsys):
    folder, checkpoint, _ = trained
    code, out, err = run(["eval", "--checkpoint", checkpoint], capsys)
    assert code == 0, err
    results = yaml.safe_load((folder / "run" / "results.yaml").read_text())
    assert out == f"test accuracy: {100 * results['test']['acc']:.2f} %\n"


def test_predict_prints_class_and_probability(trained, tmp_path, capsys):
    _, checkpoint, _ = trained
    rng = np.random.default_rng(7)
    files = []
    for name, extension in (("box", ".off"), ("cone", ".ply"), ("sphere", ".stl")):
        files.append(tmp_path / f"new_{name}{extension}")
        _mesh(name, rng).export(files[-1])
    argv = ["predict", "--checkpoint", checkpoint]
    for path in files:
        argv += ["--file", path]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    # what the printed lines must say: the model's own most likely class and its probability
    from flt3d.datasets.pointclouds import read_point_cloud
    from flt3d.training.run import load_module

    _, module, entry = load_module(checkpoint)
    data = entry["data"]
    clouds = [
        read_point_cloud(p, num_points=data["num_points"], seed=data["seed"], normalize=True)
        for p in files
    ]
    best, index = module.predict_clouds(clouds).max(dim=-1)
    for path, line, p, k in zip(files, lines, best.tolist(), index.tolist()):
        match = re.fullmatch(rf"{re.escape(str(path))}\t(box|cone|sphere) \(p = (\d\.\d\d)\)", line)
        assert match, line
        assert match.group(1) == module.classes[k]
        assert float(match.group(2)) == pytest.approx(p, abs=0.005)
    # the same preprocessing every time: the same answer
    assert run(argv, capsys)[1] == out


@pytest.mark.parametrize("case", ["missing", "truncated", "extension", "no normals"])
def test_bad_files_exit_with_one_line_naming_the_file(trained, tmp_path, case, capsys):
    _, checkpoint, _ = trained
    path = tmp_path / {"missing": "gone.off", "truncated": "cut.off", "extension": "box.txt",
                       "no normals": "points.obj"}[case]  # fmt: skip
    if case == "truncated":
        trimesh.creation.box().export(tmp_path / "box.off")
        text = (tmp_path / "box.off").read_text()
        path.write_text(text[: len(text) // 2])
    elif case == "extension":
        path.write_text("1 2 3\n")
    elif case == "no normals":  # vertices only: a point file, which has no normals
        path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in np.random.rand(50, 3)))
    code, out, err = run(["predict", "--checkpoint", checkpoint, "--file", path], capsys)
    assert code == 1 and out == ""
    assert err.startswith("flt3d predict: error: ") and err.count("\n") == 1, err
    assert str(path) in err and "Traceback" not in err
    if case == "no normals":
        assert "no normals" in err


def test_predict_takes_files_not_smiles(trained, capsys):
    code, _, err = run(["predict", "--checkpoint", trained[1], "--smiles", "CCO"], capsys)
    assert code == 1 and "--file, not --smiles" in err


@pytest.mark.parametrize("case", ["no folder", "no test split", "bad mesh"])
def test_bad_folders_exit_with_one_line(tmp_path, case, capsys):
    shapes = tmp_path / "shapes"
    if case == "no test split":
        write_shapes(shapes, train=2, test=1)
        for file in (shapes / "cone" / "test").iterdir():
            file.unlink()
        (shapes / "cone" / "test").rmdir()
        expected = "has no 'test' folder"
    elif case == "bad mesh":
        write_shapes(shapes, train=2, test=1)
        bad = shapes / "box" / "train" / "box_0001.off"
        bad.write_text("OFF\n8 12 0\n0 0 0\n")
        expected = f"{str(bad)!r} is truncated"
    else:
        expected = "no such folder"
    argv = ["train", "--config", "pointcloud", "--output", tmp_path / "run", "--set", *TINY,
            f"data.path={shapes}", f"data.root={tmp_path / 'cache'}"]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 1
    assert err.startswith("flt3d train: error: ") and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_classes_are_set_by_the_data(tmp_path, capsys):
    argv = ["train", "--config", "pointcloud", "--output", tmp_path / "run", "--set",
            "model.num_classes=4"]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 1 and "'model.num_classes' is set by the pointcloud data" in err
