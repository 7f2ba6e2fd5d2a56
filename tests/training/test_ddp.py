"""Data-parallel training with two CPU processes and the gloo backend.

The same code path runs several GPUs or nodes (``trainer.strategy=ddp``, ``trainer.devices``,
``trainer.num_nodes``); here two CPU processes stand in for two GPUs.
"""

import math
import os
import subprocess
import sys

import lightning as L
import torch

from flt3d.training.checkpoint import read_checkpoint
from flt3d.training.config import apply_overrides, load_config
from flt3d.training.run import prepare_fit

BATCH = 64
TRAIN = 3363  # training molecules of the sample's standard split


class RecordMolecules(L.Callback):
    """Writes the QM9 ids each rank trained on to ``folder/rank{r}.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.seen: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(batch.idx.cpu())

    def on_train_end(self, trainer, pl_module):
        path = os.path.join(self.folder, f"rank{trainer.global_rank}.pt")
        torch.save(torch.cat(self.seen), path)


def _overrides(root):
    return [
        "model.hidden_channels=8", "model.num_layers=1", "model.heads=2",
        "model.num_frequencies=4", f"data.batch_size={BATCH}", f"data.root={root}",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=1",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "num_threads=1",
    ]  # fmt: skip


def test_ddp_spawn_two_processes_see_disjoint_halves(tmp_path):
    folder = tmp_path / "seen"
    folder.mkdir()
    config = apply_overrides(load_config("qm9"), _overrides(tmp_path / "qm9"))
    config = apply_overrides(config, ["trainer.strategy=ddp_spawn"])
    before = torch.get_num_threads()
    try:
        run = prepare_fit(config, tmp_path / "run", callbacks=[RecordMolecules(str(folder))])
        evaluations = run.run()
    finally:
        torch.set_num_threads(before)
    ranks = [torch.load(folder / f"rank{r}.pt") for r in (0, 1)]
    per_rank = math.ceil(TRAIN / 2)  # DistributedSampler pads to equal halves
    assert [len(ids) for ids in ranks] == [per_rank, per_rank]
    first, second = (set(ids.tolist()) for ids in ranks)
    assert len(first & second) <= 1  # at most the one padding duplicate
    assert len(first | second) == TRAIN
    checkpoint = read_checkpoint(run.last_checkpoint)
    assert checkpoint["global_step"] == math.ceil(per_rank / BATCH)  # steps of half the data
    assert [e.split for e in evaluations] == ["val", "test"]


def test_cli_ddp_two_processes(tmp_path):
    # strategy=ddp launches the second process by running the same command again, as on GPUs
    output = tmp_path / "run"
    argv = [sys.executable, "-m", "flt3d.cli", "train", "--output", str(output), "--set",
            *_overrides(tmp_path / "qm9"), "trainer.strategy=ddp",
            "trainer.limit_train_batches=3"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr + result.stdout
    assert result.stdout.count("test MAE gap:") == 1  # printed by rank 0 only
    checkpoint = read_checkpoint(output / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 3
