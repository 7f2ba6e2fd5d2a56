"""Fixtures of the training tests: a shared QM9 cache and tiny-run overrides."""

from __future__ import annotations

import pytest

TINY_MODEL = {
    "qm9": ["model.hidden_channels=8", "model.num_layers=1", "model.heads=2",
            "model.num_frequencies=4", "data.batch_size=16"],
    "digits": ["model.hidden_channels=8", "model.num_layers=1", "model.heads=2",
               "model.num_features=8", "model.num_frequencies=4", "data.batch_size=16"],
    "pydoc_lm": ["model.hidden_channels=8", "model.num_layers=1", "model.heads=2",
                 "model.num_features=8", "model.num_frequencies=4", "data.length=16",
                 "data.batch_size=8", "data.train_windows=64", "data.train_fraction=0.98",
                 "data.val_fraction=0.01"],
    "atoms": ["model.hidden_channels=8", "model.num_layers=1", "model.heads=2",
              "model.num_frequencies=4", "data.batch_size=4"],
    "pointcloud": ["model.hidden_channels=8", "model.num_layers=1", "model.heads=2",
                   "model.num_features=8", "model.num_frequencies=4", "data.num_points=32",
                   "data.batch_size=8"],
}  # fmt: skip

TINY_TRAINER = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "trainer.accelerator=cpu",
    "optim.warmup_steps=2",
]


@pytest.fixture(scope="session")
def qm9_root(tmp_path_factory) -> str:
    """A processed-data cache shared by all tests (the sample is processed once)."""
    return str(tmp_path_factory.mktemp("qm9"))


@pytest.fixture
def tiny(qm9_root):
    """Overrides that shrink a shipped config to a few CPU steps: ``tiny("qm9")``."""

    def overrides(task: str, *extra: str) -> list[str]:
        data = [f"data.root={qm9_root}"] if task in ("qm9", "atoms", "pointcloud") else []
        return [*TINY_MODEL[task], *TINY_TRAINER, *data, *extra]

    return overrides
