"""Mesh and point readers, the ModelNet-style folder dataset and its augmentation."""

import os
import struct

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from flt3d.datasets import (
    MESH_EXTENSIONS,
    ModelNetFolder,
    pointclouds,
    read_point_cloud,
    shape_augmentation,
)

trimesh = pytest.importorskip("trimesh")


def _write(mesh, path):
    mesh.export(path)
    return path


def _noisy_sphere(seed=0):
    rng = np.random.default_rng(seed)
    mesh = trimesh.creation.icosphere(subdivisions=1)
    vertices = mesh.vertices * rng.uniform(0.5, 2.0, size=3) + rng.normal(0, 0.05, (42, 3))
    return trimesh.Trimesh(vertices=vertices + [3.0, -1.0, 2.0], faces=mesh.faces, process=False)


def _ply_points(path, points, normals=None):
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals is not None else [])
    header = ["ply", "format ascii 1.0", f"element vertex {len(points)}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    rows = points if normals is None else np.hstack([points, normals])
    lines = [" ".join(f"{v:.6f}" for v in row) for row in rows]
    path.write_text("\n".join(header + lines) + "\n")
    return path


# -- read_point_cloud ----------------------------------------------------------------------


@pytest.mark.parametrize("extension", MESH_EXTENSIONS)
def test_mesh_formats_sample_the_surface(tmp_path, extension):
    path = _write(trimesh.creation.box(extents=[1.0, 2.0, 3.0]), tmp_path / f"box{extension}")
    data = read_point_cloud(path, num_points=300, seed=1)
    assert data.pos.shape == (300, 3) and data.pos.dtype == torch.float32
    assert data.normal.shape == (300, 3) and data.normal.dtype == torch.float32
    assert data.num_nodes == 300 and "y" not in data
    # Every point lies on a face of the box: one coordinate at its half-extent.
    half = torch.tensor([0.5, 1.0, 1.5])
    assert (data.pos.abs() <= half + 1e-6).all()
    on_face = ((data.pos.abs() - half).abs() < 1e-5).any(dim=1)
    assert on_face.all()


def test_box_normals_point_out_of_the_face_they_lie_on(tmp_path):
    path = _write(trimesh.creation.box(extents=[1.0, 2.0, 3.0]), tmp_path / "box.off")
    data = read_point_cloud(path, num_points=500, seed=2)
    half = torch.tensor([0.5, 1.0, 1.5])
    axis = ((data.pos.abs() - half).abs()).argmin(dim=1)
    expected = torch.zeros(500, 3)
    expected[torch.arange(500), axis] = torch.sign(data.pos[torch.arange(500), axis])
    torch.testing.assert_close(data.normal, expected)


def test_normals_are_unit_and_perpendicular_to_their_face(tmp_path):
    mesh = _noisy_sphere()
    path = _write(mesh, tmp_path / "blob.ply")
    data = read_point_cloud(path, num_points=200, seed=3)
    pos, normal = data.pos.double().numpy(), data.normal.double().numpy()
    np.testing.assert_allclose(np.linalg.norm(normal, axis=1), 1.0, atol=1e-6)
    # Find, for every point, the face whose plane it lies on and inside which it falls.
    corners = mesh.vertices[mesh.faces]  # [F, 3, 3]
    face_normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    face_normal /= np.linalg.norm(face_normal, axis=1, keepdims=True)
    distance = np.abs(np.einsum("fk,pfk->pf", face_normal, pos[:, None] - corners[None, :, 0]))
    barycentric = trimesh.triangles.points_to_barycentric(
        np.repeat(corners[None], len(pos), 0).reshape(-1, 3, 3), np.repeat(pos, len(corners), 0)
    ).reshape(len(pos), len(corners), 3)
    inside = (barycentric > -1e-4).all(axis=2) & (distance < 1e-5)
    assert inside.any(axis=1).all()
    face = np.where(inside, distance, np.inf).argmin(axis=1)
    np.testing.assert_allclose(normal, face_normal[face], atol=1e-5)
    # The normal is perpendicular to both edges of its face.
    edges = corners[face, 1:] - corners[face, :1]
    assert np.abs(np.einsum("pk,pek->pe", normal, edges)).max() < 1e-5


def test_area_weighting_of_two_squares(tmp_path):
    # A 1 x 1 square at z = 0 and a 1 x 3 rectangle at z = 1: a quarter of the points on the
    # first, within five binomial standard deviations.
    vertices = [
        [0, 0, 0],
        [1, 0, 0],
        [1, 1, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 0, 1],
        [1, 3, 1],
        [0, 3, 1],
    ]
    faces = [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]]
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    path = _write(mesh, tmp_path / "squares.obj")
    n = 4000
    data = read_point_cloud(path, num_points=n, seed=4)
    low = (data.pos[:, 2].abs() < 1e-6).double().mean().item()
    assert abs(low - 0.25) < 5 * (0.25 * 0.75 / n) ** 0.5
    # Uniform inside each part: the mean of y on the rectangle is 1.5.
    high = data.pos[data.pos[:, 2] > 0.5, 1].double()
    assert abs(high.mean().item() - 1.5) < 5 * (3 / 12**0.5) / high.numel() ** 0.5


def test_same_seed_same_points_and_no_global_state(tmp_path):
    path = _write(_noisy_sphere(), tmp_path / "blob.stl")
    np.random.seed(7)
    torch.manual_seed(7)
    expected_np, expected_torch = np.random.random(), torch.rand(1)
    np.random.seed(7)
    torch.manual_seed(7)
    first = read_point_cloud(path, num_points=64, seed=5)
    assert np.random.random() == expected_np and torch.equal(torch.rand(1), expected_torch)
    second = read_point_cloud(path, num_points=64, seed=5)
    other = read_point_cloud(path, num_points=64, seed=6)
    assert torch.equal(first.pos, second.pos) and torch.equal(first.normal, second.normal)
    assert not torch.allclose(first.pos, other.pos)
    generated = read_point_cloud(path, num_points=64, seed=np.random.default_rng(5))
    assert torch.equal(generated.pos, first.pos)


def test_normalize_centres_and_scales_to_the_unit_sphere(tmp_path):
    path = _write(_noisy_sphere(), tmp_path / "blob.off")
    raw = read_point_cloud(path, num_points=256, seed=0)
    data = read_point_cloud(path, num_points=256, seed=0, normalize=True, y=3)
    torch.testing.assert_close(data.pos.mean(dim=0), torch.zeros(3), atol=1e-6, rtol=0)
    assert abs(data.pos.norm(dim=1).max().item() - 1.0) < 1e-6
    centred = raw.pos - raw.pos.mean(dim=0)
    torch.testing.assert_close(data.pos, centred / centred.norm(dim=1).max(), atol=1e-5, rtol=0)
    assert torch.equal(data.normal, raw.normal)
    assert data.y.tolist() == [3] and data.y.dtype == torch.long


def test_point_files_give_their_vertices(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(10, 3))
    path = _ply_points(tmp_path / "points.ply", points)
    fewer = read_point_cloud(path, num_points=4, seed=1)
    expected = torch.tensor(points, dtype=torch.float32)
    rows = [int(torch.isclose(expected, p, atol=1e-5).all(dim=1).nonzero()) for p in fewer.pos]
    assert len(set(rows)) == 4 and rows == sorted(rows)  # a subset, in file order
    assert "normal" not in fewer
    more = read_point_cloud(path, num_points=25, seed=1)
    torch.testing.assert_close(more.pos[:10], expected, atol=1e-5, rtol=0)
    assert torch.isclose(more.pos[10:, None], expected, atol=1e-5).all(dim=2).any(dim=1).all()
    assert torch.equal(more.pos, read_point_cloud(path, num_points=25, seed=1).pos)
    assert not torch.equal(fewer.pos, read_point_cloud(path, num_points=4, seed=2).pos)


def test_point_files_with_normals_and_without_faces(tmp_path):
    points = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    normals = np.array([[0, 0, 2], [0, 3, 0], [0.5, 0, 0]])
    data = read_point_cloud(_ply_points(tmp_path / "p.ply", points, normals), num_points=3)
    torch.testing.assert_close(data.normal, torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]))
    (tmp_path / "v.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n")
    obj = read_point_cloud(tmp_path / "v.obj", num_points=4)
    assert obj.pos.shape == (4, 3) and "normal" not in obj
    (tmp_path / "v.off").write_text("OFF\n4 0 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
    off = read_point_cloud(tmp_path / "v.off", num_points=4)
    torch.testing.assert_close(off.pos, obj.pos)


def _off_text():
    return trimesh.creation.icosphere(subdivisions=1).export(file_type="off")


def _binary(file_type):
    return trimesh.creation.icosphere(subdivisions=1).export(file_type=file_type)


def _bad_files():
    off = _off_text()
    lines = off.splitlines()
    ply_bad_index = (
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n"
    )
    return {
        "empty.off": (b"", "empty"),
        "junk.off": (b"hello\n1 2 3\n", "not an OFF file"),
        "counts.off": (b"OFF\nthree 1 0\n", "counts"),
        "vertices_cut.off": ("\n".join(lines[:20]).encode(), "truncated"),
        "face_cut.off": (off.rstrip()[:-3].encode(), "truncated"),
        "faces_missing.off": ("\n".join(lines[:-5]).encode(), "truncated"),
        "nan.off": ("\n".join(lines[:2] + ["nan 0 0"] + lines[3:]).encode(), "NaN"),
        "inf.obj": (b"v 0 0 0\nv 1e999 0 0\nv 0 1 0\nf 1 2 3\n", "infinite"),
        "flat.off": (b"OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n", "area"),
        "index.off": ("\n".join(lines[:-1] + ["3 0 1 999"]).encode(), "face"),
        "index.ply": (ply_bad_index.encode(), "vertex 7"),
        "cut.ply": (_binary("ply")[:-10], "PLY"),
        "cut.stl": (_binary("stl")[:-10], "STL"),
        "cut_ascii.stl": (_binary("stl_ascii").encode()[:300], "STL"),
        "junk.obj": (b"this is not an obj\n", "no vertices"),
        "shape.xyz": (b"1\n\nC 0 0 0\n", "unknown extension"),
        "noextension": (b"OFF\n", "unknown extension"),
    }


@pytest.mark.parametrize("name", sorted(_bad_files()))
def test_bad_files_raise_one_line_naming_the_file(tmp_path, name):
    content, fragment = _bad_files()[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_point_cloud(path, num_points=16)
    message = str(info.value)
    assert repr(str(path)) in message and fragment in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file") as info:
        read_point_cloud(tmp_path / "absent.off")
    assert str(tmp_path / "absent.off") in str(info.value)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"num_points": 0}, "num_points"),
        ({"num_points": 2.5}, "num_points"),
        ({"seed": -1}, "seed"),
        ({"y": 1.5}, "y must"),
        ({"normalize": 1}, "normalize"),
    ],
)
def test_argument_checks(tmp_path, kwargs, fragment):
    path = _write(trimesh.creation.box(), tmp_path / "box.off")
    with pytest.raises(ValueError, match=fragment):
        read_point_cloud(path, **kwargs)


def test_missing_trimesh_names_the_extra(tmp_path, monkeypatch):
    path = _write(trimesh.creation.box(), tmp_path / "box.off")
    monkeypatch.setitem(__import__("sys").modules, "trimesh", None)
    with pytest.raises(ImportError, match=r"flt3d\[pointclouds\]"):
        read_point_cloud(path)


# -- ModelNetFolder ------------------------------------------------------------------------

CLASSES = ("ball", "cone", "cube")


def _shape(name, rng):
    if name == "ball":
        mesh = trimesh.creation.icosphere(subdivisions=1)
    elif name == "cone":
        mesh = trimesh.creation.cone(radius=1.0, height=2.0, sections=8)
    else:
        mesh = trimesh.creation.box()
    mesh.apply_scale(rng.uniform(0.5, 5.0))
    mesh.apply_translation(rng.uniform(-10, 10, size=3))
    return mesh


@pytest.fixture
def folder(tmp_path):
    """``<tmp>/toy/{cube,ball,cone}/{train,test}``: 3 training and 2 test meshes per class."""
    rng = np.random.default_rng(0)
    root = tmp_path / "toy"
    for name in ("cube", "ball", "cone"):
        for split, count in (("train", 3), ("test", 2)):
            (root / name / split).mkdir(parents=True)
            for i in range(count):
                extension = (".off", ".ply", ".stl")[i % 3]
                _shape(name, rng).export(root / name / split / f"{name}_{split}_{i}{extension}")
    (root / "ball" / "train" / ".DS_Store").write_bytes(b"\0")
    (root / ".hidden").mkdir()
    return root


def test_classes_splits_and_counts(folder, tmp_path):
    train = ModelNetFolder(folder, tmp_path / "cache", split="train", num_points=128)
    test = ModelNetFolder(folder, tmp_path / "cache", split="test", num_points=128)
    assert train.classes == CLASSES == test.classes
    assert (len(train), len(test)) == (9, 6)
    assert train.num_classes == 3 and train[:2].num_classes == 3
    assert torch.bincount(train._data.y).tolist() == [3, 3, 3]
    assert train.files[0] == "ball/train/ball_train_0.off" and len(train.files) == 9
    for position, data in enumerate(test):
        assert data.pos.shape == (128, 3) and data.normal.shape == (128, 3)
        assert int(data.idx) == position
        assert test.files[position].split("/")[:2] == [CLASSES[int(data.y)], "test"]
    assert repr(train) == "ModelNetFolder(9, 'toy', split='train', num_points=128)"


def test_shapes_are_in_the_unit_sphere(folder, tmp_path):
    dataset = ModelNetFolder(folder, tmp_path / "cache", num_points=256)
    for data in dataset:
        torch.testing.assert_close(data.pos.mean(dim=0), torch.zeros(3), atol=1e-5, rtol=0)
        assert abs(data.pos.norm(dim=1).max().item() - 1.0) < 1e-5
        torch.testing.assert_close(data.normal.norm(dim=1), torch.ones(256))


def test_cache_is_reused_and_invalidated(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = ModelNetFolder(folder, cache, num_points=64, seed=0)
    processed = sorted(os.listdir(cache / "processed"))
    assert not [name for name in processed if name.endswith(".tmp")]

    def fail(*args, **kwargs):
        raise AssertionError("processed again")

    monkeypatch.setattr(pointclouds.folder, "read_point_cloud", fail)
    again = ModelNetFolder(folder, cache, num_points=64, seed=0)
    assert torch.equal(again._data.pos, first._data.pos)
    for changed in ({"num_points": 32}, {"seed": 1}, {"split": "test"}):
        with pytest.raises(AssertionError, match="processed again"):
            ModelNetFolder(folder, cache, **{"num_points": 64, "seed": 0, **changed})
    with pytest.raises(AssertionError, match="processed again"):
        ModelNetFolder(folder, cache, num_points=64, force_reload=True)
    monkeypatch.undo()

    fewer = ModelNetFolder(folder, cache, num_points=32, seed=0)
    reseeded = ModelNetFolder(folder, cache, num_points=64, seed=1)
    assert fewer[0].pos.shape == (32, 3)
    assert not torch.allclose(reseeded._data.pos, first._data.pos)
    # Editing a file processes it again.
    edited = folder / "cube" / "train" / "cube_train_0.off"
    trimesh.creation.box(extents=[1.0, 1.0, 9.0]).export(edited)
    after = ModelNetFolder(folder, cache, num_points=64, seed=0)
    assert after.processed_file_names != first.processed_file_names
    position = after.files.index("cube/train/cube_train_0.off")
    assert not torch.allclose(after[position].pos, first[position].pos)


def test_points_do_not_depend_on_other_files(folder, tmp_path):
    before = ModelNetFolder(folder, tmp_path / "cache", num_points=64)
    trimesh.creation.box().export(folder / "ball" / "train" / "aaa.off")
    after = ModelNetFolder(folder, tmp_path / "cache", num_points=64)
    assert len(after) == len(before) + 1
    for position, rel in enumerate(before.files):
        assert torch.equal(after[after.files.index(rel)].pos, before[position].pos)


def test_transform_is_applied_on_access(folder, tmp_path):
    plain = ModelNetFolder(folder, tmp_path / "cache", num_points=64)
    doubled = ModelNetFolder(
        folder,
        tmp_path / "cache",
        num_points=64,
        transform=shape_augmentation(jitter=0.0, scales=(2.0, 2.0)),
    )
    data, reference = doubled[4], plain[4]
    torch.testing.assert_close(data.pos[:, 2], 2 * reference.pos[:, 2])  # turned about z
    torch.testing.assert_close(data.pos.norm(dim=1), 2 * reference.pos.norm(dim=1))
    assert not torch.allclose(data.pos[:, :2], 2 * reference.pos[:, :2], atol=1e-3)
    torch.testing.assert_close(data.normal[:, 2], reference.normal[:, 2])
    # Normals turn with the points: the angle between each point and its normal is kept.
    torch.testing.assert_close(
        (data.pos * data.normal).sum(1), 2 * (reference.pos * reference.normal).sum(1)
    )
    assert torch.equal(doubled._data.pos, plain._data.pos)


def test_augmentation_turns_normals_with_points():
    torch.manual_seed(0)
    vectors = torch.nn.functional.normalize(torch.randn(50, 3), dim=1)
    augment = shape_augmentation(degrees=90.0, axis=0, jitter=0.0, scales=(1.0, 1.0))
    data = augment(Data(pos=vectors.clone(), normal=vectors.clone()))
    torch.testing.assert_close(data.pos, data.normal)
    torch.testing.assert_close(data.pos[:, 0], vectors[:, 0])
    assert not torch.allclose(data.pos, vectors, atol=1e-3)
    jittered = shape_augmentation(jitter=0.05)(Data(pos=torch.zeros(200, 3)))
    assert 0 < jittered.pos.abs().max() <= 0.05 * 1.25 + 1e-6
    assert "RandomRotate" in repr(augment) and "RandomJitter(0.0)" in repr(augment)


@pytest.mark.parametrize(
    "kwargs", [{"axis": 3}, {"degrees": -1.0}, {"jitter": -0.1}, {"scales": (1.2, 0.8)}]
)
def test_augmentation_argument_checks(kwargs):
    with pytest.raises(ValueError):
        shape_augmentation(**kwargs)


def test_folder_errors(folder, tmp_path):
    cache = tmp_path / "cache"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no class folders") as info:
        ModelNetFolder(empty, cache)
    assert str(empty) in str(info.value)
    with pytest.raises(ValueError, match="no such folder"):
        ModelNetFolder(tmp_path / "absent", cache)
    with pytest.raises(ValueError, match="split must be"):
        ModelNetFolder(folder, cache, split="val")
    with pytest.raises(ValueError, match="lies in the dataset folder"):
        ModelNetFolder(folder, folder / "cache")

    (folder / "drum" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="has no 'test' folder") as info:
        ModelNetFolder(folder, cache)
    assert str(folder / "drum") in str(info.value)
    (folder / "drum" / "test").mkdir()
    with pytest.raises(ValueError, match="holds no mesh files") as info:
        ModelNetFolder(folder, cache)
    assert str(folder / "drum" / "train") in str(info.value)
    (folder / "drum" / "train" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown extension") as info:
        ModelNetFolder(folder, cache)
    assert "notes.txt" in str(info.value)


def test_malformed_file_names_it_and_leaves_no_cache(folder, tmp_path):
    bad = folder / "cone" / "train" / "cone_train_9.off"
    bad.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="truncated") as info:
        ModelNetFolder(folder, cache, num_points=16)
    assert str(bad) in str(info.value)
    assert not [name for name in os.listdir(cache / "processed") if name.startswith("toy")]


def test_cache_write_is_atomic(folder, tmp_path, monkeypatch):
    def crash(data_list, path):
        with open(path, "wb") as file:
            file.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelNetFolder, "save", staticmethod(crash))
    with pytest.raises(KeyboardInterrupt):
        ModelNetFolder(folder, tmp_path / "cache", num_points=16)
    assert not [n for n in os.listdir(tmp_path / "cache" / "processed") if n.startswith("toy")]


def test_normals_for_all_shapes_or_none(folder, tmp_path):
    _ply_points(
        folder / "ball" / "test" / "points.ply", np.random.default_rng(0).normal(size=(20, 3))
    )
    with pytest.raises(ValueError, match="has no normals") as info:
        ModelNetFolder(folder, tmp_path / "cache", split="test", num_points=16)
    assert "points.ply" in str(info.value)


def test_binary_stl_header_with_nan_is_rejected(tmp_path):
    triangle = struct.pack("<12fH", 0, 0, 1, 0, 0, 0, float("nan"), 0, 0, 0, 1, 0, 0)
    path = tmp_path / "nan.stl"
    path.write_bytes(b"\0" * 80 + struct.pack("<I", 1) + triangle)
    with pytest.raises(ValueError, match="NaN") as info:
        read_point_cloud(path)
    assert str(path) in str(info.value)
