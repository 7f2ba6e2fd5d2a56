import glob
import os

import lightning as L
import pytest
import torch
import yaml

from flt3d.training.checkpoint import read_checkpoint
from flt3d.training.config import ConfigError, apply_overrides, load_config, shipped_configs
from flt3d.training.molecules import MoleculeRegression
from flt3d.training.run import evaluate, load_module, prepare_fit


def _config(name, overrides):
    return apply_overrides(load_config(name), overrides)


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_trains_a_few_steps(name, tiny, tmp_path):
    run = prepare_fit(_config(name, tiny(name)), tmp_path)
    evaluations = run.run()
    assert run.trainer.global_step == 3
    assert [e.split for e in evaluations] == ["val", "test"]
    for path in (run.best_checkpoint, run.last_checkpoint):
        checkpoint = read_checkpoint(path)
        assert checkpoint["flt3d"]["task"] == name
        assert checkpoint["global_step"] == 3
        # Lightning's route: the hyper-parameters hold the full model config and rebuild
        hparams = checkpoint["hyper_parameters"]
        assert hparams["model"] == checkpoint["flt3d"]["model"] == run.module.model.config
        assert {k: v for k, v in hparams.items() if k != "model"} == checkpoint["flt3d"]["module"]
    rebuilt = type(run.module).load_from_checkpoint(run.last_checkpoint, weights_only=True)
    weights = run.module.state_dict()
    assert rebuilt.state_dict().keys() == weights.keys()
    assert all(torch.equal(t, weights[key].cpu()) for key, t in rebuilt.state_dict().items())
    results = yaml.safe_load((tmp_path / "results.yaml").read_text())
    assert results["global_step"] == 3 and set(results) >= {"val", "test"}
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["task"] == name and saved["trainer"]["limit_train_batches"] == 3
    assert glob.glob(str(tmp_path / "logs" / "version_0" / "metrics.csv"))
    for figure in ("rpe_profile.png", "rpe_spectrum.png"):  # every shipped model has an RPE
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert glob.glob(str(tmp_path / "tensorboard" / "version_0" / "events.out.tfevents.*"))
    metric = {
        "qm9": "mae", "digits": "acc", "pydoc_lm": "bpc", "atoms": "force_mae", "pointcloud": "acc",
    }[name]  # fmt: skip
    for evaluation in evaluations:
        assert metric in evaluation.metrics
        assert evaluation.lines and evaluation.lines[0].startswith(evaluation.split)


def test_checkpoint_rebuilds_model_without_the_yaml(tiny, tmp_path):
    run = prepare_fit(_config("qm9", tiny("qm9")), tmp_path)
    run.run()
    entry = read_checkpoint(run.last_checkpoint)["flt3d"]
    assert entry["model"] == run.module.model.config
    assert entry["model"]["hidden_channels"] == 8 and entry["model"]["target"] == "gap"
    assert entry["data"] == run.datamodule.settings() and entry["data"]["sample"] is True
    assert entry["module"] == {"loss": "l1", "optim": run.config["optim"]}
    assert entry["config"]["task"] == "qm9"
    _, module, _ = load_module(run.last_checkpoint)
    batch = next(iter(run.datamodule.test_dataloader()))
    run.module.eval()
    with torch.no_grad():
        expected = run.module(batch.z, batch.pos, batch.batch)
        got = module(batch.z, batch.pos, batch.batch)
    assert torch.equal(got, expected)
    # evaluation from the checkpoint alone matches what the run recorded
    results = yaml.safe_load((tmp_path / "results.yaml").read_text())
    evaluation = evaluate(
        run.best_checkpoint, "test", trainer={"limit_test_batches": 2}, quiet=True
    )
    assert evaluation.metrics["mae"] == pytest.approx(results["test"]["mae"])


def test_checkpoint_whose_hyper_parameters_are_partial_rebuilds_from_the_flt3d_entry(
    tiny, tmp_path
):
    # files written when "hyper_parameters" held the arguments as given (defaults left out):
    # the flt3d entry's full config rebuilds the same model, not today's defaults
    run = prepare_fit(_config("qm9", tiny("qm9")), tmp_path)
    run.run(evaluate_best=False)
    checkpoint = torch.load(run.last_checkpoint, weights_only=True)
    full = checkpoint["flt3d"]["model"]
    partial = {"hidden_channels": full["hidden_channels"], "target": full["target"]}
    checkpoint["hyper_parameters"] = {"model": partial, "loss": "l1"}
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    _, module, _ = load_module(old)
    assert full != {**MoleculeRegression(partial).model.config, **partial}  # defaults would differ
    assert module.model.config == full
    weights = run.module.state_dict()
    assert all(torch.equal(t, weights[key]) for key, t in module.state_dict().items())


class _RecordStart(L.Callback):
    """What a (resumed) run starts from."""

    def on_train_start(self, trainer, pl_module):
        optimizer = trainer.optimizers[0]
        first = next(iter(optimizer.state.values()), {})
        scheduler = trainer.lr_scheduler_configs[0].scheduler
        self.start = {
            "global_step": trainer.global_step,
            "adam_step": float(first["step"]) if "step" in first else 0.0,
            "exp_avg": first["exp_avg"].clone() if "exp_avg" in first else None,
            "scheduler_step": scheduler.last_epoch,
        }


def test_resume_continues_step_optimizer_and_scheduler(tiny, tmp_path):
    config = _config("qm9", tiny("qm9"))
    prepare_fit(config, tmp_path).run(evaluate_best=False)
    first = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert first["global_step"] == 3

    record = _RecordStart()
    again = apply_overrides(config, ["trainer.max_epochs=2"])
    run = prepare_fit(again, tmp_path, resume=True, callbacks=[record])
    run.run(evaluate_best=False)
    assert record.start["global_step"] == 3
    assert record.start["adam_step"] == 3.0
    assert record.start["scheduler_step"] == 3
    saved_exp_avg = next(iter(first["optimizer_states"][0]["state"].values()))["exp_avg"]
    assert torch.equal(record.start["exp_avg"], saved_exp_avg)

    last = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 6 and last["epoch"] >= 1
    assert float(next(iter(last["optimizer_states"][0]["state"].values()))["step"]) == 6.0
    assert last["lr_schedulers"][0]["last_epoch"] == 6
    # each (re)start logs to its own version; the resumed one continues the step count
    steps = (tmp_path / "logs" / "version_1" / "metrics.csv").read_text().splitlines()
    header = steps[0].split(",")
    logged = {int(line.split(",")[header.index("step")]) for line in steps[1:]}
    assert min(logged) >= 3 and max(logged) == 5


def test_fresh_run_into_a_used_folder_and_resume_without_checkpoint_fail(tiny, tmp_path):
    config = _config("qm9", tiny("qm9"))
    with pytest.raises(ConfigError, match="holds no checkpoint checkpoints/last.ckpt"):
        prepare_fit(config, tmp_path, resume=True)
    prepare_fit(config, tmp_path).run(evaluate_best=False)
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        prepare_fit(config, tmp_path)
    with pytest.raises(ConfigError, match="is a 'qm9' run, the config a 'digits' one"):
        prepare_fit(_config("digits", tiny("digits")), tmp_path, resume=True)


def test_ema_checkpoint_holds_the_average(tiny, tmp_path):
    config = _config("qm9", tiny("qm9", "optim.ema_decay=0.5"))
    run = prepare_fit(config, tmp_path)
    run.run(evaluate_best=False)
    checkpoint = read_checkpoint(run.last_checkpoint)
    averaged, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    key = "model.embedding.weight"
    assert not torch.equal(averaged[key], current[key])
    _, module, _ = load_module(run.last_checkpoint)
    assert torch.equal(module.state_dict()[key], averaged[key])


def test_bad_ema_decay_is_rejected(tiny, tmp_path):
    with pytest.raises(ValueError, match="optim.ema_decay must be in"):
        prepare_fit(_config("qm9", tiny("qm9", "optim.ema_decay=1.5")), tmp_path)


def test_num_threads_is_applied(tiny, tmp_path):
    before = torch.get_num_threads()
    try:
        prepare_fit(_config("qm9", tiny("qm9", "num_threads=1")), tmp_path)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert not os.path.exists(tmp_path / "checkpoints")


def test_time_budget_stops_the_run_and_anneals_the_rate(tiny, tmp_path, monkeypatch):
    # Lightning's Timer reads a clock that advances 5 ms per reading, so the run and the
    # rate follow the budget the same way on a loaded machine as on an idle one
    import types

    import lightning.pytorch.callbacks.timer as timer_module

    clock = [0.0]

    def monotonic():
        clock[0] += 5e-3
        return clock[0]

    monkeypatch.setattr(timer_module, "time", types.SimpleNamespace(monotonic=monotonic))
    config = _config(
        "qm9",
        tiny(
            "qm9", "trainer.max_epochs=1000", "trainer.max_time={seconds: 3}",
            "optim.anneal_to_max_time=true", "optim.lr=1.0e-2", "optim.min_lr_ratio=0.1",
            "trainer.limit_val_batches=1",
        ),
    )  # fmt: skip
    run = prepare_fit(config, tmp_path)
    run.run(evaluate_best=False)
    last = read_checkpoint(run.last_checkpoint)
    assert run.trainer.current_epoch < 1000  # the clock, not the epochs, ended the run
    planned = 1000 * 3
    assert last["global_step"] < planned / 4
    # by steps the cosine would barely have moved (factor > 0.99); by time it neared the floor
    # (the rate of the last step is set from the clock at that step's start)
    [final_lr] = last["lr_schedulers"][0]["_last_lr"][:1]
    assert 1e-3 <= final_lr < 0.5e-2
