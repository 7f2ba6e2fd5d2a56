"""The shapes generator (datasets/make_shapes.py) and the sample of it shipped with flt3d."""

import importlib.util
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from flt3d.datasets import SHAPES_SAMPLE_PATH, ModelNetFolder, pointclouds, shapes_sample_root

trimesh = pytest.importorskip("trimesh")

SCRIPT = Path(__file__).resolve().parents[2] / "datasets" / "make_shapes.py"
CLASSES = (
    "annulus", "box", "capsule", "cone", "cylinder",
    "ellipsoid", "octahedron", "pyramid", "tetrahedron", "torus",
)  # fmt: skip


@pytest.fixture(scope="module")
def make_shapes():
    spec = importlib.util.spec_from_file_location("make_shapes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(folder):
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_generator_writes_the_modelnet_layout(make_shapes, tmp_path):
    files = make_shapes.generate(tmp_path / "shapes", train=2, test=1, seed=3)
    assert tuple(make_shapes.SHAPES) == CLASSES
    assert sorted(os.listdir(tmp_path / "shapes")) == list(CLASSES)
    expected = []
    for name in CLASSES:
        expected += [f"{name}/test/{name}_0003.off"]
        expected += [f"{name}/train/{name}_0001.off", f"{name}/train/{name}_0002.off"]
    assert [file.as_posix() for file in files] == sorted(expected)
    assert sorted(_tree(tmp_path / "shapes")) == sorted(expected)
    mesh = trimesh.load(tmp_path / "shapes" / "torus" / "train" / "torus_0001.off", process=False)
    assert len(mesh.vertices) >= make_shapes.MIN_VERTICES and mesh.area > 0
    train = ModelNetFolder(tmp_path / "shapes", tmp_path / "cache", num_points=64)
    assert train.classes == CLASSES
    assert torch.bincount(train._data.y).tolist() == [2] * 10


def test_generator_is_byte_identical_for_a_seed(make_shapes, tmp_path):
    make_shapes.generate(tmp_path / "a", train=2, test=1, seed=5)
    make_shapes.generate(tmp_path / "b", train=2, test=1, seed=5)
    make_shapes.generate(tmp_path / "c", train=2, test=1, seed=6)
    first, second, other = (_tree(tmp_path / name) for name in "abc")
    assert first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_more_shapes_leave_the_others_unchanged(make_shapes, tmp_path):
    make_shapes.generate(tmp_path / "few", train=1, test=1, seed=0)
    make_shapes.generate(tmp_path / "many", train=3, test=2, seed=0)
    few, many = _tree(tmp_path / "few"), _tree(tmp_path / "many")
    for name in CLASSES:
        assert few[f"{name}/train/{name}_0001.off"] == many[f"{name}/train/{name}_0001.off"]
        # The first test shape keeps its draws; only its number follows the training count.
        assert few[f"{name}/test/{name}_0002.off"] == many[f"{name}/test/{name}_0004.off"]


def test_shapes_are_deformed(make_shapes):
    # Two boxes of one class differ beyond proportions: sheared, noisy, randomly turned.
    a = make_shapes.make_shape("box", np.random.default_rng([0, 1, 0, 0]))
    b = make_shapes.make_shape("box", np.random.default_rng([0, 1, 0, 1]))
    np.testing.assert_allclose(a.vertices.mean(axis=0), 0, atol=1e-12)
    assert not np.allclose(np.sort(np.abs(a.vertices), axis=0), np.sort(np.abs(b.vertices), axis=0))
    # A sheared box is no longer a box: the edges from a corner are not perpendicular
    # (subdivision keeps the corners first, in trimesh's order: 1, 2 and 4 are 0's neighbours).
    edges = a.vertices[[1, 2, 4]] - a.vertices[0]
    unit = edges / np.linalg.norm(edges, axis=1, keepdims=True)
    cosines = unit @ unit.T
    assert np.abs(cosines[np.triu_indices(3, 1)]).max() > 0.02
    corner = trimesh.creation.box().subdivide().vertices
    np.testing.assert_allclose(
        corner[[0, 1, 2, 4]], [[-0.5] * 3, [-0.5, -0.5, 0.5], [-0.5, 0.5, -0.5], [0.5, -0.5, -0.5]]
    )


def test_archive_is_reproducible_and_unpacks_to_the_layout(make_shapes, tmp_path):
    make_shapes.main(["--output", str(tmp_path / "one.tar.gz"), "--train", "1", "--test", "1"])
    make_shapes.main(["--output", str(tmp_path / "two.tar.gz"), "--train", "1", "--test", "1"])
    make_shapes.main(["--output", str(tmp_path / "folder"), "--train", "1", "--test", "1"])
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "one.tar.gz") as archive:
        members = archive.getmembers()
        archive.extractall(tmp_path / "unpacked")
    assert {member.mtime for member in members} == {0}
    assert _tree(tmp_path / "unpacked" / "shapes") == _tree(tmp_path / "folder")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".make_shapes")]
    with pytest.raises(SystemExit, match="exists"):
        make_shapes.main(["--output", str(tmp_path / "folder")])


def test_shipped_sample_loads_through_the_dataset(tmp_path):
    root = shapes_sample_root(tmp_path / "data")
    assert os.path.getsize(SHAPES_SAMPLE_PATH) < 2 * 1024**2
    assert sorted(os.listdir(root)) == list(CLASSES)
    train = ModelNetFolder(root, tmp_path / "cache", split="train", num_points=128)
    test = ModelNetFolder(root, tmp_path / "cache", split="test", num_points=128)
    assert train.classes == test.classes == CLASSES
    assert torch.bincount(train._data.y).tolist() == [40] * 10
    assert torch.bincount(test._data.y).tolist() == [10] * 10
    assert train[0].pos.shape == (128, 3) and "normal" in train[0]


def test_sample_is_unpacked_once_and_atomically(tmp_path, monkeypatch):
    root = shapes_sample_root(tmp_path)
    assert Path(root).name == "shapes" and Path(root).parent.parent == tmp_path
    assert [name for name in os.listdir(tmp_path)] == [Path(root).parent.name]

    def fail(*args, **kwargs):
        raise AssertionError("unpacked again")

    monkeypatch.setattr(pointclouds.shapes_sample.tarfile, "open", fail)
    assert shapes_sample_root(tmp_path) == root
    # An unpacking that fails leaves neither the folder nor a temporary one behind.
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(AssertionError, match="unpacked again"):
        shapes_sample_root(elsewhere)
    assert os.listdir(elsewhere) == []


def test_shipped_sample_is_what_the_generator_writes(make_shapes, tmp_path):
    # The first training and test shape of every class, regenerated with the default seed.
    make_shapes.generate(tmp_path / "regenerated", train=1, test=1, seed=0)
    regenerated = _tree(tmp_path / "regenerated")
    root = Path(shapes_sample_root(tmp_path / "data"))
    for name in CLASSES:
        shipped_train = (root / name / "train" / f"{name}_0001.off").read_bytes()
        shipped_test = (root / name / "test" / f"{name}_0041.off").read_bytes()
        assert regenerated[f"{name}/train/{name}_0001.off"] == shipped_train
        assert regenerated[f"{name}/test/{name}_0002.off"] == shipped_test
