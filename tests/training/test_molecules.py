import lightning as L
import pytest
import torch

from flt3d.datasets import from_smiles
from flt3d.models.fltnet import fit_statistics
from flt3d.training.molecules import MoleculeRegression, QM9DataModule, report_unit

TINY = {"hidden_channels": 8, "num_layers": 1, "heads": 2, "num_frequencies": 4}


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory):
    dm = QM9DataModule(str(tmp_path_factory.mktemp("qm9")), batch_size=16)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("U0", ("U0", "meV", 1000.0)),
        ("gap", ("gap", "meV", 1000.0)),
        ("zpve", ("zpve", "meV", 1000.0)),
        ("mu", ("mu", "D", 1.0)),
        ("alpha", ("alpha", "a0^3", 1.0)),
        ("Cv", ("Cv", "cal/(mol K)", 1.0)),
        (7, ("U0", "meV", 1000.0)),
    ],
)
def test_report_unit_uses_mev_for_energies(target, expected):
    assert report_unit(target) == expected


def test_datamodule_standard_split(datamodule):
    sizes = [len(datamodule.split(name)) for name in ("train", "val", "test")]
    assert sizes == [3363, 305, 332]
    ids = [set(datamodule.split(name).idx.tolist()) for name in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    batch = next(iter(datamodule.val_dataloader()))
    assert batch.num_graphs == 64  # eval batches default to 4 x batch_size
    again = QM9DataModule(**datamodule.settings())
    assert again.settings() == datamodule.settings()


def test_datamodule_split_follows_seed(datamodule):
    other = QM9DataModule(datamodule.root, split_seed=1)
    assert set(other.split("test").idx.tolist()) != set(datamodule.split("test").idx.tolist())


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"batch_size": 0}, "data.batch_size must be a positive integer"),
        ({"num_workers": -1}, "data.num_workers must be a non-negative integer"),
        ({"sample": "yes"}, "data.sample must be true or false"),
        ({"eval_batch_size": 1.5}, "data.eval_batch_size"),
    ],
)
def test_datamodule_rejects_bad_settings(options, match):
    with pytest.raises(ValueError, match=match):
        QM9DataModule(**options)


def test_module_rejects_unknown_loss():
    with pytest.raises(ValueError, match="module.loss must be one of"):
        MoleculeRegression(TINY, loss="huber")


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_fit_fits_statistics_and_standardises_the_loss(datamodule, loss):
    module = MoleculeRegression({**TINY, "target": "U0"}, loss=loss, optim={"lr": 1e-3})
    trainer = L.Trainer(
        max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    expected = fit_statistics(module.model, datamodule.train_dataset)
    head = module.model.head
    assert torch.allclose(head.atomref.double(), expected.atomref, rtol=1e-5, atol=1e-3)
    assert head.std.item() == pytest.approx(expected.std.item(), rel=1e-5)
    assert head.atomref[6, 0].item() < -1000  # eV per carbon: the references are in place
    # loss scale: spread of U0 about the sum of per-atom references and means
    train = datamodule.train_dataset
    baseline = torch.zeros(len(train), dtype=torch.float64)
    per_atom = (head.mean + head.atomref[train.z]).double()[:, 0]
    baseline.index_add_(0, _graph_ids(train), per_atom)
    spread = (train.y[:, 7].double() - baseline).std().item()
    assert module.loss_scale.item() == pytest.approx(spread, rel=1e-4)
    assert 0.1 < spread < 5.0  # eV: far below the spread of U0 itself (about 1,100 eV)
    metrics = trainer.callback_metrics
    error = metrics["train/mae"].item() / 1000 / module.loss_scale.item()  # standardised
    if loss == "l1":
        assert metrics["train/loss"].item() == pytest.approx(error, rel=1e-4)
    else:
        assert metrics["train/loss"].item() >= error**2 * (1 - 1e-4)


def _graph_ids(dataset):
    sizes = torch.tensor([data.num_nodes for data in dataset])
    return torch.repeat_interleave(torch.arange(len(dataset)), sizes)


def test_predict_molecules_in_target_unit_and_checks_elements(datamodule):
    module = MoleculeRegression({**TINY, "target": "U0"})
    module.fit_statistics(datamodule.train_dataset)
    ethanol = from_smiles("CCO")
    value = module.predict_molecules([ethanol, from_smiles("C")])
    assert value.shape == (2,) and torch.isfinite(value).all()
    # an untrained head predicts about the per-element references, in eV
    assert -5000 < value[0].item() < -3000
    with pytest.raises(ValueError, match="Cl"):
        module.predict_molecules([from_smiles("ClCCl")])
    assert module.training  # mode restored


def test_report_line_names_target_and_unit():
    module = MoleculeRegression({**TINY, "target": "gap"})
    assert module.report({"mae": 123.456}, "test") == ["test MAE gap: 123.5 meV"]
    assert module.model_unit == "eV"
