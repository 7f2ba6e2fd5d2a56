r"""Character-level language modelling on the Python documentation that ships with CPython.

CPython carries the English text of its language reference topics in
``pydoc_data.topics.topics`` (a dict topic → text, used by ``help()``). It is real prose with
code, about half a million characters, and needs no download. The corpus is built
deterministically: topic texts in sorted key order, joined with ``"\n"``. The exact text differs
between Python versions (3.11.7: 79 topics, 465,048 characters joined, 103 distinct
characters), so record the Python version next to any result.

Tokens are characters. Sequence position ``i`` becomes the coordinate ``i`` (one step per
character, see :mod:`flt3d.datasets.grid`), so a causal FLT model reads windows of ``L``
characters with ``pos = 0 .. L-1``.

Example:
    >>> corpus = CharCorpus.from_pydoc()
    >>> train = corpus.dataset("train", 64, num_windows=10, seed=0)
    >>> x, y = train[0]
    >>> x.shape, y.shape, bool((x[1:] == y[:-1]).all())
    (torch.Size([64]), torch.Size([64]), True)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "SPLITS",
    "CharCorpus",
    "CharVocab",
    "CharWindowDataset",
    "load_pydoc_corpus",
    "split_spans",
]

SPLITS = ("train", "val", "test")


def load_pydoc_corpus() -> str:
    r"""The text of CPython's ``pydoc_data.topics.topics``, as one string.

    Topic texts are taken in sorted key order and joined with ``"\n"`` (each text already ends
    with a newline, so topics are separated by a blank line). The result depends only on the
    running Python version.

    Returns:
        The corpus (465,048 characters on Python 3.11.7).

    Raises:
        ImportError: when the interpreter was installed without ``pydoc_data`` (some minimal
            distributions strip it).
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as err:
        raise ImportError(
            "the pydoc text corpus needs the standard-library module pydoc_data, which this "
            "Python installation lacks; install the full CPython standard library"
        ) from err
    return "\n".join(topics[key] for key in sorted(topics))


class CharVocab:
    r"""A fixed character vocabulary with an ``<unk>`` id.

    Id ``0`` is ``<unk>``; the ``k``-th character of ``chars`` (sorted, unique) has id ``k + 1``.
    Encoding maps any character outside the vocabulary to ``<unk>``; decoding writes ``<unk>``
    as ``unk`` (default U+FFFD, the Unicode replacement character), one character per id, so
    ``len(decode(encode(s))) == len(s)`` always holds.

    Build it once from the full corpus (:meth:`from_text`) and keep it with the model: save
    :attr:`chars` and rebuild with ``CharVocab(chars)``. A vocabulary rebuilt from another
    Python version's corpus can assign different ids.

    Args:
        chars: the characters of the vocabulary, unique; they are sorted by code point.

    Example:
        >>> vocab = CharVocab.from_text("hello")
        >>> len(vocab), vocab.encode("hole!").tolist()
        (5, [2, 4, 3, 1, 0])
        >>> vocab.decode(vocab.encode("hole!"), unk="?")
        'hole?'
    """

    unk_id = 0
    unk_token = "<unk>"

    def __init__(self, chars: str | Sequence[str]) -> None:
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("chars must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be unique")
        self.chars = "".join(sorted(chars))
        self._index = {c: i + 1 for i, c in enumerate(self.chars)}
        codes = [ord(c) for c in self.chars]
        table = torch.full((max(codes, default=-1) + 1,), self.unk_id, dtype=torch.long)
        if codes:
            table[torch.tensor(codes)] = torch.arange(1, len(codes) + 1)
        self._table = table

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of every distinct character in ``text``."""
        return cls(set(text))

    def __len__(self) -> int:
        """Number of ids, ``<unk>`` included."""
        return len(self.chars) + 1

    def __contains__(self, char: object) -> bool:
        return char in self._index

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(size={len(self)})"

    def encode(self, text: str) -> Tensor:
        """Ids of the characters of ``text`` (unknown characters → ``0``).

        Returns:
            Long tensor ``[len(text)]``.
        """
        raw = text.encode("utf-32-le", "surrogatepass")
        codes = torch.from_numpy(np.frombuffer(raw, dtype="<u4").astype(np.int64))
        known = codes < self._table.numel()
        ids = torch.full_like(codes, self.unk_id)
        ids[known] = self._table[codes[known]]
        return ids

    def decode(self, ids: Tensor | Sequence[int], *, unk: str = "\ufffd") -> str:
        """The text of ``ids`` (1D); ``<unk>`` is written as ``unk``.

        Raises:
            ValueError: for ids outside ``[0, len(self))`` or input that is not 1D.
        """
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1D [L], got {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(self)):
            raise ValueError(f"ids must lie in [0, {len(self)}), got {ids.min()}..{ids.max()}")
        lookup = unk + self.chars
        return "".join(lookup[i] for i in ids.tolist())


def split_spans(
    num_chars: int,
    *,
    train_fraction: float = 0.9,
    val_fraction: float = 0.05,
) -> dict[str, tuple[int, int]]:
    r"""Contiguous ``[start, stop)`` spans of train, val and test, in that order.

    Train is the first ``floor(train_fraction * n)`` characters, val the next
    ``floor(val_fraction * n)``, test the rest. Contiguous spans (rather than random windows)
    keep neighbouring text out of the other splits, apart from the one boundary between spans.

    Args:
        num_chars: corpus length ``n``.
        train_fraction: share of the training span (default ``0.9``).
        val_fraction: share of the validation span (default ``0.05``); test gets the rest.

    Returns:
        ``{"train": (0, a), "val": (a, b), "test": (b, n)}``.

    Example:
        >>> split_spans(1000)
        {'train': (0, 900), 'val': (900, 950), 'test': (950, 1000)}
    """
    n = operator.index(num_chars)
    for name, value in (("train_fraction", train_fraction), ("val_fraction", val_fraction)):
        if not math.isfinite(value) or not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    if train_fraction + val_fraction >= 1.0:
        raise ValueError(
            f"train_fraction + val_fraction must be < 1 to leave a test span, got "
            f"{train_fraction} + {val_fraction}"
        )
    a = math.floor(train_fraction * n)
    b = a + math.floor(val_fraction * n)
    if a < 1 or b == a or b == n:
        raise ValueError(f"num_chars={n} is too small for non-empty train, val and test spans")
    return {"train": (0, a), "val": (a, b), "test": (b, n)}


class CharWindowDataset(Dataset):
    r"""Next-character windows from a 1D id tensor.

    Item ``k`` is ``(ids[o_k : o_k + L], ids[o_k + 1 : o_k + L + 1])``: the target is the input
    shifted by one character.

    - ``random_offsets=False`` (evaluation): ``o_k = k L`` for ``k = 0 .. floor((n - 1) / L) - 1``.
      Inputs do not overlap and every character after the first of the span is predicted
      exactly once, up to the last incomplete window, which is dropped.
    - ``random_offsets=True`` (training): ``num_windows`` offsets drawn uniformly from
      ``[0, n - L - 1]`` with a generator seeded by ``(seed, epoch)``. Call :meth:`set_epoch`
      before each epoch for fresh offsets; the same ``(seed, epoch)`` always gives the same
      windows.

    Args:
        ids: token ids ``[n]`` (long), with ``n >= L + 1``.
        length: window length ``L``.
        random_offsets: draw offsets at random (training) instead of tiling (default ``False``).
        num_windows: windows per epoch with ``random_offsets``; default ``floor((n - 1) / L)``,
            about one pass over the span. Must be left unset for tiled windows.
        seed: seed of the offsets with ``random_offsets`` (default ``0``).

    Shapes:
        - **input**: ``[L]``, long
        - **target**: ``[L]``, long
    """

    def __init__(
        self,
        ids: Tensor,
        length: int,
        *,
        random_offsets: bool = False,
        num_windows: int | None = None,
        seed: int = 0,
    ) -> None:
        if ids.dim() != 1 or ids.dtype != torch.long:
            raise ValueError(
                f"ids must be a 1D long tensor [n], got {ids.dtype} {tuple(ids.shape)}"
            )
        length = operator.index(length)
        if length < 1:
            raise ValueError(f"length must be a positive integer, got {length}")
        n = ids.numel()
        if n < length + 1:
            raise ValueError(f"ids must hold at least length + 1 = {length + 1} ids, got {n}")
        self.ids = ids
        self.length = length
        self.random_offsets = bool(random_offsets)
        self.seed = operator.index(seed)
        tiles = (n - 1) // length
        if self.random_offsets:
            num_windows = tiles if num_windows is None else operator.index(num_windows)
            if num_windows < 1:
                raise ValueError(f"num_windows must be a positive integer, got {num_windows}")
            self.num_windows = num_windows
            self.set_epoch(0)
        else:
            if num_windows is not None:
                raise ValueError("num_windows applies to random_offsets=True only")
            self.num_windows = tiles
            self.epoch = 0
            self.offsets = torch.arange(tiles) * length

    def set_epoch(self, epoch: int) -> None:
        """Redraw the random offsets for ``epoch`` (no effect on tiled windows)."""
        self.epoch = operator.index(epoch)
        if not self.random_offsets:
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        high = self.ids.numel() - self.length  # exclusive: the target needs one more id
        self.offsets = torch.from_numpy(rng.integers(0, high, size=self.num_windows))

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        o = int(self.offsets[index])
        window = self.ids[o : o + self.length + 1]
        return window[:-1], window[1:]

    def __repr__(self) -> str:
        mode = "random" if self.random_offsets else "tiled"
        return (
            f"{self.__class__.__name__}({self.num_windows} windows, length={self.length}, {mode})"
        )


class CharCorpus:
    r"""A text corpus, its character vocabulary and its contiguous train/val/test splits.

    The vocabulary is built from the whole text (all three splits), so no split has unknown
    characters; ``<unk>`` only appears for text from elsewhere (another Python version's
    documentation, a user prompt).

    Args:
        text: the corpus.
        train_fraction: share of the training span (default ``0.9``).
        val_fraction: share of the validation span (default ``0.05``); test gets the rest.
        vocab: a vocabulary to reuse (for example the one a model was trained with); built
            from ``text`` when ``None``.

    Attributes:
        text: the corpus.
        vocab: the :class:`CharVocab`.
        spans: ``{split: (start, stop)}`` from :func:`split_spans`.
        ids: ``{split: long tensor}``, the encoded span of each split.
    """

    def __init__(
        self,
        text: str,
        *,
        train_fraction: float = 0.9,
        val_fraction: float = 0.05,
        vocab: CharVocab | None = None,
    ) -> None:
        self.text = text
        self.vocab = CharVocab.from_text(text) if vocab is None else vocab
        self.spans = split_spans(
            len(text), train_fraction=train_fraction, val_fraction=val_fraction
        )
        encoded = self.vocab.encode(text)
        self.ids = {name: encoded[start:stop] for name, (start, stop) in self.spans.items()}

    @classmethod
    def from_pydoc(cls, *, train_fraction: float = 0.9, val_fraction: float = 0.05) -> CharCorpus:
        """The corpus of :func:`load_pydoc_corpus` (90/5/5 split by default)."""
        return cls(load_pydoc_corpus(), train_fraction=train_fraction, val_fraction=val_fraction)

    def __len__(self) -> int:
        """Corpus size in characters."""
        return len(self.text)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={ids.numel()}" for name, ids in self.ids.items())
        return f"{self.__class__.__name__}({len(self)} chars, vocab={len(self.vocab)}, {sizes})"

    def split_text(self, split: str) -> str:
        """The raw text of one split."""
        start, stop = self.spans[self._check_split(split)]
        return self.text[start:stop]

    def dataset(
        self,
        split: str,
        length: int,
        *,
        num_windows: int | None = None,
        seed: int = 0,
    ) -> CharWindowDataset:
        """Windows of ``length`` characters: random seeded offsets for ``"train"``, tiled
        non-overlapping windows for ``"val"`` and ``"test"`` (see :class:`CharWindowDataset`).
        """
        split = self._check_split(split)
        if split == "train":
            return CharWindowDataset(
                self.ids[split], length, random_offsets=True, num_windows=num_windows, seed=seed
            )
        return CharWindowDataset(self.ids[split], length, num_windows=num_windows)

    @staticmethod
    def _check_split(split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return split
