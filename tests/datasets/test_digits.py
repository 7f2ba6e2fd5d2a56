import sys

import pytest
import torch

from flt3d.datasets.digits import NUM_CLASSES, load_digits, load_digits_splits, stratified_split

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_digits_shapes_range_and_labels(digits):
    images, labels = digits
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.long
    assert images.min() == 0.0 and images.max() == 1.0
    # pixel counts 0..16 divided by 16
    assert torch.equal(images * 16, (images * 16).round())
    assert labels.min() == 0 and labels.max() == NUM_CLASSES - 1
    assert torch.bincount(labels).min() > 150


def test_digits_dtype():
    images, _ = load_digits(dtype=torch.float64)
    assert images.dtype == torch.float64


def test_stratified_split_disjoint_covering_and_deterministic(digits):
    _, labels = digits
    split = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=0)
    everything = torch.cat(list(split.values()))
    assert everything.numel() == 1797
    assert torch.equal(everything.sort().values, torch.arange(1797))
    again = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=0)
    other = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=1)
    for name in split:
        assert torch.equal(split[name], again[name])
    assert not torch.equal(split["test"], other["test"])
    # stratified: each class holds ~20 % of its samples in test
    counts = torch.bincount(labels, minlength=NUM_CLASSES)
    test_counts = torch.bincount(labels[split["test"]], minlength=NUM_CLASSES)
    assert ((test_counts - 0.2 * counts).abs() <= 0.5).all()


def test_load_digits_splits_sizes():
    splits = load_digits_splits()
    sizes = {name: len(ds) for name, ds in splits.items()}
    assert sizes == {"train": 1259, "val": 179, "test": 359}
    image, label = splits["val"][0]
    assert image.shape == (1, 8, 8) and 0 <= int(label) < NUM_CLASSES


@pytest.mark.parametrize(
    "kwargs",
    [{"val_fraction": -0.1}, {"test_fraction": 1.0}, {"val_fraction": 0.5, "test_fraction": 0.5}],
)
def test_stratified_split_rejects_bad_fractions(kwargs):
    with pytest.raises(ValueError):
        stratified_split(torch.arange(10), **kwargs)


def test_stratified_split_rejects_float_labels():
    with pytest.raises(ValueError):
        stratified_split(torch.zeros(10))


def test_missing_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"flt3d\[grid\]"):
        load_digits()
