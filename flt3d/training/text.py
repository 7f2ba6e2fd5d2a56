r"""Character language modelling on CPython's pydoc text: data module and ``LightningModule``.

The model (:class:`~flt3d.models.sequence.SequenceModel`, causal) reads windows of ``length``
characters and predicts each next character. The metric is bits per character,

.. math::
    \mathrm{bpc} = \frac{1}{\ln 2}\,\frac{1}{|T|}\sum_{t \in T} -\ln p(x_{t+1} \mid x_{\le t}),

over every predicted character of the split (validation and test windows tile their spans).
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from flt3d.datasets.text import CharCorpus, CharVocab, load_pydoc_corpus
from flt3d.nn.checks import check_int
from flt3d.training.base import TaskModule
from flt3d.training.datamodule import ResumableDataModule

__all__ = ["CharLanguageModel", "PydocDataModule"]


class PydocDataModule(ResumableDataModule):
    """The pydoc corpus (:class:`~flt3d.datasets.text.CharCorpus`) as window loaders.

    Args:
        length: characters per window ``L`` (default ``128``).
        batch_size: windows per batch (default ``32``).
        train_windows: random training windows per epoch (default: about one pass over the
            training span).
        train_fraction: share of the training span (default ``0.9``).
        val_fraction: share of the validation span (default ``0.05``); test gets the rest.
        seed: seed of the training windows (default ``0``).
        vocab: the characters of the vocabulary (default: built from the corpus); stored in
            checkpoints so that evaluation uses the training ids.
        num_workers: loader worker processes (default ``0``).
    """

    setting_names = (
        "length", "batch_size", "train_windows", "train_fraction", "val_fraction", "seed",
        "vocab", "num_workers",
    )  # fmt: skip

    def __init__(
        self,
        length: int = 128,
        *,
        batch_size: int = 32,
        train_windows: int | None = None,
        train_fraction: float = 0.9,
        val_fraction: float = 0.05,
        seed: int = 0,
        vocab: str | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.length = check_int(length, "data.length")
        self.batch_size = check_int(batch_size, "data.batch_size")
        self.train_windows = (
            None if train_windows is None else check_int(train_windows, "data.train_windows")
        )
        self.seed = check_int(seed, "data.seed", minimum=0)
        self.num_workers = check_int(num_workers, "data.num_workers", minimum=0)
        self.corpus = CharCorpus(
            load_pydoc_corpus(),
            train_fraction=train_fraction,
            val_fraction=val_fraction,
            vocab=None if vocab is None else CharVocab(vocab),
        )
        self.train_fraction = train_fraction
        self.val_fraction = val_fraction

    @property
    def vocab(self) -> CharVocab:
        return self.corpus.vocab

    def model_options(self) -> dict[str, Any]:
        """Model arguments that come from the data: ``vocab_size``."""
        return {"vocab_size": len(self.vocab)}

    def settings(self) -> dict[str, Any]:
        """The constructor arguments, the vocabulary's characters included, as stored in
        checkpoints."""
        return {**super().settings(), "vocab": self.vocab.chars}

    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        if split == "train":
            dataset = self.corpus.dataset(
                "train", self.length, num_windows=self.train_windows, seed=self.seed
            )
        else:
            dataset = self.corpus.dataset(split, self.length)
        # no persistent workers: the training windows are redrawn in the main process each
        # epoch (TaskModule.on_train_epoch_start) and workers must pick up the new offsets
        return self.tensor_loader(dataset, shuffle=shuffle, persistent_workers=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def loader(self, split: str) -> DataLoader:
        """An unshuffled loader over any split (random windows for ``"train"``)."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return self._loader(split, shuffle=False)


class CharLanguageModel(TaskModule):
    """Next-character prediction with :class:`~flt3d.models.sequence.SequenceModel`.

    Logged metrics: ``{stage}/loss`` (cross-entropy, nats) and ``{stage}/bpc`` (bits per
    character).

    Args:
        model: :class:`~flt3d.models.sequence.SequenceModel` keyword arguments, ``vocab_size``
            included.
        optim: the ``optim`` section (see :func:`flt3d.training.optim.configure_optimizers`).
    """

    task = "pydoc_lm"
    monitor = "val/bpc"
    monitor_mode = "min"

    def __init__(self, model: dict[str, Any], *, optim: dict[str, Any] | None = None) -> None:
        super().__init__(model, optim=optim)
        self.save_hyperparameters()

    def loss_and_metric(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, str, Tensor, int]:
        tokens, target = batch
        logits = self(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        size = tokens.shape[0]
        return loss, "bpc", loss.detach() / math.log(2), size

    def report(self, metrics: dict[str, float], split: str) -> list[str]:
        """``"{split} bits per character: {bpc}"``."""
        return [f"{split} bits per character: {metrics['bpc']:.4f}"]
