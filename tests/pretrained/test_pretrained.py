"""Pretrained QM9 models: loaded by name offline, cards that match the files, exports that
reproduce their own figures, and the command line's ``--model`` and ``models``."""

import re
from contextlib import redirect_stdout
from io import StringIO

import pytest
import torch

from flt3d import pretrained
from flt3d.cli import main
from flt3d.datasets.molecules import from_smiles
from flt3d.models import FLTNet
from flt3d.pretrained.export import card_text, export_run, overrides
from flt3d.training.checkpoint import read_checkpoint
from flt3d.training.config import apply_overrides, load_config
from flt3d.training.run import evaluate

HARTREE_EV = 27.211386245988
# ethanol (QM9 index 14, SMILES CCO) in QM9's units: the value and how far a prediction on an
# RDKit geometry may be from it (a few times the models' test MAE, geometry included)
ETHANOL = {
    "gap": (0.3417 * HARTREE_EV, 0.5),
    "U0": (-154.972731 * HARTREE_EV, 0.5),
    "mu": (1.4131, 0.6),
    "alpha": (27.87, 1.5),
}
REQUIRED = {"qm9-gap", "qm9-U0", "qm9-mu", "qm9-alpha"}
NUMBER = r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?"


def _out(argv):
    buffer = StringIO()
    with redirect_stdout(buffer):
        code = main(argv)
    return code, buffer.getvalue()


def test_the_required_models_ship():
    assert REQUIRED <= set(pretrained.names())


@pytest.mark.parametrize("name", pretrained.names())
def test_load_gives_an_fltnet_in_eval_mode_that_predicts_ethanol(name):
    model = pretrained.load(name)
    assert isinstance(model, FLTNet) and not model.training
    facts = pretrained.card(name)
    assert model.target == facts["target"]
    value, tolerance = ETHANOL[facts["target"]]
    molecule = from_smiles("CCO")
    with torch.no_grad():
        out = model(molecule.z, molecule.pos, torch.zeros(len(molecule.z), dtype=torch.long))
    assert out.shape == (1, 1)
    assert abs(out.item() - value) < tolerance


@pytest.mark.parametrize("name", pretrained.names())
def test_the_card_is_written_from_the_file(name):
    facts = pretrained.card(name)
    with open(pretrained.path(name)[: -len(".pt")] + ".md", encoding="utf-8") as file:
        assert file.read() == card_text(name, facts)
    assert facts["split"] == {"seed": 0, "train": 110_000, "val": 10_000, "test": 10_831}
    assert facts["config"]["data"]["sample"] is False
    checkpoint = read_checkpoint(pretrained.path(name))
    assert "optimizer_states" not in checkpoint
    assert checkpoint["flt3d"]["data"]["root"] is None


def test_shipped_gap_and_u0_meet_their_error_bars():
    assert pretrained.card("qm9-gap")["metrics"]["test_mae"] <= 120.0  # meV
    assert pretrained.card("qm9-U0")["metrics"]["test_mae"] <= 50.0


def test_an_unknown_name_lists_the_shipped_models(capsys):
    with pytest.raises(ValueError, match="no pretrained model 'qm9-nope'.*qm9-gap"):
        pretrained.load("qm9-nope")
    assert main(["predict", "--model", "qm9-nope", "--smiles", "C"]) == 1
    assert "qm9-gap" in capsys.readouterr().err


def test_models_lists_each_model_with_its_test_mae():
    code, out = _out(["models"])
    assert code == 0
    for name in pretrained.names():
        mae = pretrained.card(name)["metrics"]["test_mae"]
        assert re.search(rf"^{name}\t.*\t{mae:.4g} ", out, re.M)


def test_predict_with_a_model_name():
    code, out = _out(["predict", "--model", "qm9-gap", "--smiles", "CCO"])
    assert code == 0
    match = re.fullmatch(rf"CCO\tgap = ({NUMBER}) eV\n", out)
    assert match and abs(float(match.group(1)) - ETHANOL["gap"][0]) < ETHANOL["gap"][1]


def test_checkpoint_and_model_exclude_each_other():
    with pytest.raises(SystemExit) as error:
        main(["predict", "--model", "qm9-gap", "--checkpoint", "x.ckpt", "--smiles", "C"])
    assert error.value.code == 2


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_eval_with_a_model_name_reproduces_the_card(name):
    facts = pretrained.card(name)
    code, out = _out(["eval", "--model", name])
    assert code == 0
    match = re.search(
        rf"^test MAE {facts['target']}: ({NUMBER}) {re.escape(facts['metrics_unit'])}$", out, re.M
    )
    assert match
    assert float(match.group(1)) == pytest.approx(facts["metrics"]["test_mae"], rel=0.01)


TINY = [
    "model.hidden_channels=8", "model.num_layers=1", "model.heads=2", "model.num_frequencies=4",
    "data.batch_size=16", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu", "optim.warmup_steps=2",
]  # fmt: skip


def test_export_writes_a_model_whose_card_evaluate_reproduces(tmp_path):
    run = tmp_path / "run"
    code, _ = _out(["train", "--output", str(run), "--set", *TINY])
    assert code == 0
    target = export_run(run, "qm9-tiny", folder=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qm9-tiny.md", "qm9-tiny.pt", "run"]
    checkpoint = torch.load(target, weights_only=True)
    facts = checkpoint[pretrained.MODEL_KEY]
    assert "optimizer_states" not in checkpoint
    assert facts["split"]["test"] == 332 and facts["training"]["steps"] == 3
    assert facts["metrics"]["test_mae"] == pytest.approx(evaluate(target, "test").metrics["mae"])
    assert (tmp_path / "qm9-tiny.md").read_text() == card_text("qm9-tiny", facts)
    # the card's command rebuilds the run's configuration from the shipped one
    command = facts["command"].split(" --set ", 1)[1].split()
    assert apply_overrides(load_config("qm9"), command) == facts["config"]


def test_overrides_of_nested_settings():
    base = {"model": {"a": 1, "b": True}, "trainer": {"max_time": "00:00:04:00"}}
    config = {"model": {"a": 1, "b": False, "c": None}, "trainer": {"max_time": "00:02:00:00"}}
    assert overrides(config, base) == [
        "model.b=false",
        "model.c=null",
        "trainer.max_time=00:02:00:00",
    ]
    assert overrides(base, base) == []
