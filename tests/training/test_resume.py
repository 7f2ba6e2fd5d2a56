"""Exact resume: a run killed with SIGKILL, then resumed, ends as the same run uninterrupted.

The killed runs are real processes: this file, run as a script (``python test_resume.py
SPEC.json``), trains the runs SPEC lists and sends its own process SIGKILL at a seeded point: the
start of a training step or an epoch, or half-way through writing a checkpoint. The models use
linear attention, whose random features are redrawn from torch's generator at every step, so a
resume that did not restore the generators (or the data order) would train on other numbers.
The killed runs start together in the background (one of them with two DDP processes) when the
first test that needs them does; the uninterrupted references and the resumed runs are compared
on the weights of ``last.ckpt`` and ``best.ckpt`` and on every value the resumed run logged.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import random
import signal
import subprocess
import sys

import lightning as L
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, DistributedSampler

from flt3d.cli import main
from flt3d.training.checkpoint import read_checkpoint
from flt3d.training.config import ConfigError, apply_overrides, load_config
from flt3d.training.molecules import QM9DataModule
from flt3d.training.resume import ResumableSampler, rng_states, set_rng_states
from flt3d.training.run import prepare_fit

EPOCHS, BATCHES, EVERY = 3, 5, 2  # epochs, training batches per epoch, steps between checkpoints
TOLERANCE = 1e-6


def _overrides(root, *extra: str) -> list[str]:
    return [
        "model.hidden_channels=8", "model.num_layers=1", "model.heads=2",
        "model.num_frequencies=4", "model.attention=linear", "model.num_features=8",
        "data.batch_size=16", f"data.root={root}", f"trainer.max_epochs={EPOCHS}",
        f"trainer.limit_train_batches={BATCHES}", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "trainer.log_every_n_steps=1",
        "trainer.accelerator=cpu", "trainer.max_time=null", "optim.anneal_to_max_time=false",
        "optim.warmup_steps=2", "num_threads=1", f"checkpoint_every_n_steps={EVERY}", *extra,
    ]  # fmt: skip


# --- the killed process ------------------------------------------------------------------------


class _Kill(L.Callback):
    """Sends its own process SIGKILL at the start of optimiser step ``step`` or of ``epoch``."""

    def __init__(self, *, step: int | None = None, epoch: int | None = None) -> None:
        self.step, self.epoch = step, epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def _kill_while_writing(step: int) -> None:
    """Make the write of the checkpoint of optimiser step ``step`` stop half-way, by SIGKILL."""
    save = torch.save

    def half_then_kill(obj, file, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == step:
            buffer = io.BytesIO()
            save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            file.write(data[: len(data) // 2])
            file.flush()
            os.fsync(file.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return save(obj, file, *args, **kwargs)

    torch.save = half_then_kill


class _Record(L.Callback):
    """Writes each process's weights, generator state and epoch metrics to ``folder/rank{r}.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_fit_end(self, trainer, pl_module):
        os.makedirs(self.folder, exist_ok=True)
        record = {
            "state": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
            "rng": torch.get_rng_state(),
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        }
        torch.save(record, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))


def _train_runs(spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as file:
        runs = json.load(file)
    for run in runs:
        callbacks: list[L.Callback] = []
        kill = run.get("kill", {})
        if "writing" in kill:
            _kill_while_writing(kill["writing"])
        elif kill:
            callbacks.append(_Kill(**kill))
        if "record" in run:
            callbacks.append(_Record(run["record"]))
        resume = run.get("resume", False)
        base = os.path.join(run["output"], "config.yaml") if resume else "qm9"
        config = apply_overrides(load_config(base), run.get("overrides", []))
        fit = prepare_fit(config, run["output"], resume=resume, callbacks=callbacks)
        fit.run(evaluate_best=run.get("evaluate", True))


class _Launch:
    """``runs`` trained by this file run as a script, in a process of its own (which starts a
    second one for DDP), in the background: :meth:`wait` for it."""

    def __init__(self, folder, runs: list[dict]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        spec, self.log = folder / "spec.json", folder / "log.txt"
        spec.write_text(json.dumps(runs))
        with open(self.log, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), str(spec)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, *, killed: bool) -> None:
        try:
            self.process.wait(timeout=300)
        finally:
            self.stop()
        expected = -signal.SIGKILL if killed else 0
        assert self.process.returncode == expected, self.log.read_text()[-4000:]

    def stop(self) -> None:
        try:  # with a DDP process its killed peer left behind
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


# --- comparisons -------------------------------------------------------------------------------


def _max_difference(first: dict, second: dict) -> float:
    assert first.keys() == second.keys()
    return max(
        (first[k].double() - second[k].double()).abs().max().item() if first[k].numel() else 0.0
        for k in first
    )


def _logged(path) -> dict[tuple[str, int], float]:
    """``{(metric, step): value}`` of a CSV log."""
    values = {}
    with open(path, encoding="utf-8") as file:
        for row in csv.DictReader(file):
            for key, value in row.items():
                if value and key not in ("epoch", "step"):
                    values[key, int(row["step"])] = float(value)
    return values


def _assert_same_run(reference, resumed, *, from_step: int) -> dict[str, float]:
    """The resumed run folder ends as the reference one; returns the largest differences."""
    ref_last = read_checkpoint(reference / "checkpoints" / "last.ckpt")
    last = read_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert last["global_step"] == ref_last["global_step"] == EPOCHS * BATCHES
    differences = {"weights": _max_difference(last["state_dict"], ref_last["state_dict"])}
    if "current_model_state" in ref_last:  # with a weight average, the weights it averages
        current = last["current_model_state"]
        differences["current"] = _max_difference(current, ref_last["current_model_state"])
    ref_best = read_checkpoint(reference / "checkpoints" / "best.ckpt")
    best = read_checkpoint(resumed / "checkpoints" / "best.ckpt")
    assert best["global_step"] == ref_best["global_step"]
    differences["best"] = _max_difference(best["state_dict"], ref_best["state_dict"])
    assert max(differences.values()) <= TOLERANCE, differences

    # every value the resumed run logged (each step's training loss, the interrupted epoch's
    # means, validation) is the one the uninterrupted run logged at that step
    expected = _logged(reference / "logs" / "version_0" / "metrics.csv")
    got = _logged(resumed / "logs" / "version_1" / "metrics.csv")
    assert {step for key, step in got if key == "train/loss_step"} == set(
        range(from_step, EPOCHS * BATCHES)
    )
    assert {key for key, _ in got} >= {"train/loss_epoch", "train/mae_epoch", "val/mae"}
    for key, value in got.items():
        assert value == pytest.approx(expected[key], rel=TOLERANCE, abs=TOLERANCE), key
    return differences


# --- the killed runs, started together -----------------------------------------------------


CHOICES = random.Random(2024)
# a step checkpoint whose predecessor is a step checkpoint of the same epoch
WRITING = CHOICES.choice(
    [
        s
        for s in range(2 * EVERY, EPOCHS * BATCHES, EVERY)
        if s % BATCHES and (s - EVERY) % BATCHES and (s - EVERY) // BATCHES == s // BATCHES
    ]
)
EPOCH = CHOICES.randrange(1, EPOCHS)
# in the second epoch, a step after a checkpoint's, which the resumed run does again
DDP_STEP = CHOICES.choice([s for s in range(BATCHES + 1, 2 * BATCHES) if s % EVERY])
KILLS = {"mid_epoch_while_writing": {"writing": WRITING}, "between_epochs": {"epoch": EPOCH}}


def _gloo_available() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_gloo_available()


def _ddp_overrides(root) -> list[str]:
    # dropout draws as many random numbers as a batch has atoms, so the two processes'
    # generators part ways and each must get its own state back
    return _overrides(root, "model.dropout=0.1", "trainer.strategy=ddp", "trainer.devices=2")


@pytest.fixture(scope="module")
def killed(tmp_path_factory, qm9_root):
    """The runs to kill, started together in the background: ``{name: (launch, folder)}``.

    ``"ddp"`` trains its uninterrupted reference first, in ``folder / "reference"``.
    """
    QM9DataModule(qm9_root).prepare_data()  # the processed cache, before processes share it
    base = tmp_path_factory.mktemp("killed")
    launches = {}
    for name, kill in KILLS.items():
        output = base / name / "run"
        overrides = _overrides(qm9_root, "optim.ema_decay=0.9")
        run = {"output": str(output), "overrides": overrides, "kill": kill}
        launches[name] = (_Launch(base / name, [run]), output)
    if _gloo_available():
        folder = base / "ddp"
        runs = [
            {"output": str(folder / "reference"), "record": str(folder / "ref")},
            {"output": str(folder / "run"), "kill": {"step": DDP_STEP}},
        ]
        for run in runs:  # the weights and logs are compared, not results.yaml
            run.update(overrides=_ddp_overrides(qm9_root), evaluate=False)
        launches["ddp"] = (_Launch(folder, runs), folder / "run")
    yield launches
    for launch, _ in launches.values():
        launch.stop()


@pytest.fixture(scope="module")
def reference(killed, tmp_path_factory, qm9_root):
    """The uninterrupted run (with a weight average), trained here while the others run."""
    before = torch.get_num_threads()
    output = tmp_path_factory.mktemp("reference")
    config = apply_overrides(load_config("qm9"), _overrides(qm9_root, "optim.ema_decay=0.9"))
    try:
        prepare_fit(config, output).run()
    finally:
        torch.set_num_threads(before)
    return output


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif(not _gloo_available(), reason="needs torch.distributed with gloo")
def test_ddp_killed_run_resumes_exactly(killed, tmp_path):
    launch, output = killed["ddp"]
    launch.wait(killed=True)
    folder = output.parent
    saved = read_checkpoint(output / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == DDP_STEP // EVERY * EVERY
    assert saved["QM9DataModule"] == {"epoch": 1, "batches": saved["global_step"] - BATCHES}
    assert len(saved["rng_states"]) == 2  # one per process

    resume = {"output": str(output), "resume": True, "record": str(tmp_path), "evaluate": False}
    _Launch(tmp_path, [resume]).wait(killed=False)
    ref = [torch.load(folder / "ref" / f"rank{r}.pt") for r in (0, 1)]
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert not torch.equal(ref[0]["rng"], ref[1]["rng"])  # the processes' draws differ
    for rank in (0, 1):
        # the same weights and statistics on both processes, and as uninterrupted
        assert _max_difference(got[rank]["state"], got[0]["state"]) == 0.0
        assert _max_difference(got[rank]["state"], ref[rank]["state"]) <= TOLERANCE
        assert torch.equal(got[rank]["rng"], ref[rank]["rng"])
        assert got[rank]["metrics"] == pytest.approx(ref[0]["metrics"], rel=TOLERANCE)
    difference = _assert_same_run(folder / "reference", output, from_step=saved["global_step"])
    print(f"ddp: max |resumed - uninterrupted| = {max(difference.values()):.3g}")


@pytest.mark.parametrize("where", list(KILLS))
def test_killed_run_resumes_exactly(where, killed, reference, keep_threads, capsys):
    launch, output = killed[where]
    launch.wait(killed=True)
    checkpoints = output / "checkpoints"
    saved = read_checkpoint(checkpoints / "last.ckpt")  # loadable, whatever the kill hit
    if where == "mid_epoch_while_writing":
        [partial] = glob.glob(str(checkpoints / ".last.ckpt.*.tmp"))
        with pytest.raises(Exception):  # noqa: B017 - the half-written file is unreadable
            torch.load(partial, weights_only=True)
        assert saved["global_step"] == WRITING - EVERY
        position = {"epoch": (WRITING - EVERY) // BATCHES, "batches": (WRITING - EVERY) % BATCHES}
        assert position["batches"] > 0  # the resume starts in the middle of an epoch
    else:
        assert saved["global_step"] == EPOCH * BATCHES
        position = {"epoch": EPOCH, "batches": 0}
    assert saved["QM9DataModule"] == position
    assert len(saved["rng_states"]) == 1

    assert main(["train", "--output", str(output), "--resume"]) == 0
    assert "test MAE gap:" in capsys.readouterr().out
    assert not glob.glob(str(checkpoints / ".*.tmp"))  # the interrupted write is cleaned up
    differences = _assert_same_run(reference, output, from_step=saved["global_step"])
    print(f"{where}: max |resumed - uninterrupted| = {max(differences.values()):.3g}")
    results, expected = (
        yaml.safe_load((folder / "results.yaml").read_text()) for folder in (output, reference)
    )
    assert results["global_step"] == expected["global_step"]
    for split in ("val", "test"):
        assert results[split] == pytest.approx(expected[split], rel=TOLERANCE)


# --- the parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("replicas", [1, 2])
def test_sampler_is_distributed_sampler_and_starts_part_way(replicas):
    dataset = list(range(23))
    for rank in range(replicas):
        sampler = ResumableSampler(dataset, batch_size=4, seed=3, num_replicas=replicas, rank=rank)
        plain = DistributedSampler(dataset, num_replicas=replicas, rank=rank, seed=3)
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            plain.set_epoch(epoch)
            assert list(sampler) == list(plain)
        full = list(sampler)
        loader = DataLoader(dataset, batch_size=4, sampler=sampler, generator=sampler.generator)
        batches = len(loader)
        sampler.resume(1, 2)
        assert list(sampler) == full[8:] and len(loader) == batches  # the epoch keeps its length
        sampler.set_epoch(1)  # the same epoch: still part-way
        assert list(sampler) == full[8:]
        sampler.set_epoch(2)
        assert len(list(sampler)) == len(full) and list(sampler) != full
    with pytest.raises(ValueError, match="batches must be a non-negative integer"):
        sampler.resume(0, -1)


def test_loader_leaves_the_global_generator_alone():
    sampler = ResumableSampler(range(10), batch_size=4)
    loader = DataLoader(range(10), batch_size=4, sampler=sampler, generator=sampler.generator)
    state = torch.get_rng_state()
    list(loader)
    assert torch.equal(torch.get_rng_state(), state)


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    import numpy as np

    states = rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    path = tmp_path / "states.pt"
    torch.save({"rng_states": [states]}, path)
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    set_rng_states(torch.load(path, weights_only=True)["rng_states"][0])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


@pytest.mark.parametrize("value", [0, -2, True, 2.5, "2"])
def test_checkpoint_every_n_steps_must_be_a_positive_integer(value):
    from flt3d.training.tasks import validate_config

    with pytest.raises(ConfigError, match="'checkpoint_every_n_steps' must be a positive integer"):
        validate_config({"checkpoint_every_n_steps": value})
    assert "checkpoint_every_n_steps" not in validate_config({})
    assert validate_config({"checkpoint_every_n_steps": None})["checkpoint_every_n_steps"] is None


if __name__ == "__main__":
    _train_runs(sys.argv[1])
