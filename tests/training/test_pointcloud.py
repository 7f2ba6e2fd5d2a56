import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from flt3d.training.pointcloud import PointCloudClassification, PointCloudDataModule

trimesh = pytest.importorskip("trimesh")

TINY_MODEL = dict(hidden_channels=8, num_layers=1, heads=2, num_features=8, num_frequencies=4)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The shipped shapes at 32 points each, cached in a folder of this module."""
    module = PointCloudDataModule(root=str(tmp_path_factory.mktemp("cache")), num_points=32)
    module.setup()
    return module


def _folder(path, classes, *, train, test=1, points=False):
    # ModelNet-style folder of boxes (or of OBJ files with vertices only: points, no normals)
    rng = np.random.default_rng(0)
    for name in classes:
        for split, count in (("train", train), ("test", test)):
            (path / name / split).mkdir(parents=True)
            for k in range(count):
                mesh = trimesh.creation.box(extents=rng.uniform(0.5, 1.5, 3))
                if points:
                    lines = "".join(f"v {x} {y} {z}\n" for x, y, z in rng.random((20, 3)))
                    (path / name / split / f"{k}.obj").write_text(lines)
                else:
                    mesh.export(path / name / split / f"{k}.off")
    return str(path)


def _module(classes=None, **model):
    torch.manual_seed(0)
    config = {**TINY_MODEL, "num_classes": len(classes or "abc"), "classes": classes, **model}
    return PointCloudClassification(config)


def test_validation_is_a_stratified_seeded_part_of_train(sample):
    assert sample.path is None and len(sample.classes) == 10
    sizes = [len(sample.split(name)) for name in ("train", "val", "test")]
    assert sizes == [360, 40, 100]
    val = torch.cat([d.y for d in sample.val_dataset])
    assert torch.bincount(val).tolist() == [4] * 10
    train_idx = {int(d.idx) for d in sample.train_dataset}
    val_idx = {int(d.idx) for d in sample.val_dataset}
    assert not train_idx & val_idx and len(train_idx | val_idx) == 400
    again = PointCloudDataModule(**sample.settings())
    again.setup()
    assert [int(d.idx) for d in again.val_dataset] == [int(d.idx) for d in sample.val_dataset]
    other = PointCloudDataModule(**{**sample.settings(), "split_seed": 1})
    other.setup()
    assert {int(d.idx) for d in other.val_dataset} != val_idx
    assert sample.model_options() == {"num_classes": 10, "classes": list(sample.classes)}


def test_only_the_training_shapes_are_augmented(sample):
    first, second = sample.train_dataset[0], sample.train_dataset[0]
    assert not torch.allclose(first.pos, second.pos)
    for dataset in (sample.val_dataset, sample.test_dataset):
        assert torch.equal(dataset[0].pos, dataset[0].pos)
    plain = PointCloudDataModule(**{**sample.settings(), "augment": False})
    plain.setup()
    original = plain.train_dataset[0]
    assert torch.equal(plain.train_dataset[0].pos, original.pos)
    # turned about z, normals with the points: the normals' z components stay, heights are
    # only scaled (one factor in [0.8, 1.25]) and jittered (by at most 0.01)
    assert int(first.idx) == int(original.idx)
    assert torch.allclose(first.normal[:, 2], original.normal[:, 2], atol=1e-6)
    assert torch.allclose(first.normal.norm(dim=1), torch.ones(32), atol=1e-5)
    assert not torch.allclose(first.normal, original.normal, atol=1e-3)
    scale = (first.pos[:, 2] * original.pos[:, 2]).sum() / original.pos[:, 2].pow(2).sum()
    assert 0.79 < scale < 1.26
    assert (first.pos[:, 2] - scale * original.pos[:, 2]).abs().max() < 0.02


@pytest.mark.parametrize(
    "options, message",
    [
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1}, "val_fraction"),
        ({"num_points": 0}, "num_points"),
        ({"augment": "yes"}, "augment"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_data_settings_raise(options, message):
    with pytest.raises(ValueError, match=message):
        PointCloudDataModule(**options)


def test_too_few_training_shapes_for_validation(tmp_path):
    path = _folder(tmp_path / "shapes", ["a", "b"], train=1)
    module = PointCloudDataModule(path, root=str(tmp_path / "cache"), num_points=16)
    with pytest.raises(ValueError, match="leaves no validation shapes"):
        module.setup()


def test_check_data_names_classes_and_missing_normals(tmp_path):
    path = _folder(tmp_path / "boxes", ["a", "b", "c"], train=10)
    data = PointCloudDataModule(path, root=str(tmp_path / "cache"), num_points=16)
    _module(["a", "b", "c"]).check_data(data, "all")
    with pytest.raises(ValueError, match=r"has the classes \['a', 'b', 'c'\], but the model"):
        _module(["a", "b", "x"]).check_data(data, "test")
    points = _folder(tmp_path / "points", ["a", "b", "c"], train=10, points=True)
    data = PointCloudDataModule(points, root=str(tmp_path / "cache"), num_points=16)
    with pytest.raises(ValueError, match="have no normals.*model.in_channels=0"):
        _module(["a", "b", "c"]).check_data(data, "all")
    _module(["a", "b", "c"], in_channels=0, spectral_filter=True).check_data(data, "all")


def test_module_options_loss_and_report(sample):
    with pytest.raises(ValueError, match="in_channels must be 3"):
        _module(in_channels=5)
    with pytest.raises(ValueError, match="label_smoothing"):
        PointCloudClassification({**TINY_MODEL, "num_classes": 3}, label_smoothing=1.0)
    module = _module(list(sample.classes))
    assert module.classes == list(sample.classes)
    assert _module(None).classes == ["class 0", "class 1", "class 2"]
    batch = Batch.from_data_list([sample.test_dataset[k] for k in range(4)])
    module.eval()  # the stored random features: two passes, one function
    with torch.no_grad():
        loss, name, acc, size = module.loss_and_metric(batch)
        logits = module(batch.normal, batch.pos, batch.batch)
    assert name == "acc" and size == 4
    assert float(acc) == (logits.argmax(-1) == batch.y).float().mean()
    assert float(loss) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, batch.y)))
    assert module.report({"acc": 0.4567, "loss": 1.0}, "test") == ["test accuracy: 45.67 %"]


def test_predict_clouds_gives_probabilities_and_names_bad_clouds(sample):
    module = _module(list(sample.classes))
    clouds = [sample.test_dataset[k] for k in range(5)]
    probabilities = module.predict_clouds(clouds, batch_size=2)
    assert probabilities.shape == (5, 10)
    assert torch.allclose(probabilities.sum(-1), torch.ones(5))
    assert torch.allclose(module.predict_clouds(clouds[3:4]), probabilities[3:4], atol=1e-6)
    assert module.training  # left as it was
    bare = Data(pos=clouds[0].pos)
    with pytest.raises(ValueError, match="'points.ply' has no normals"):
        module.predict_clouds([clouds[0], bare], sources=["a.off", "points.ply"])
