"""Element rows: which elements a model embeds, in which embedding row, and the check of ``z``
that names the elements a model does not know."""

from __future__ import annotations

import operator
from collections.abc import Iterable

import torch
from torch import Tensor

from flt3d.atomistic import MAX_Z, SYMBOLS, atomic_number, element_symbol


def element_numbers(elements: Iterable[int | str]) -> list[int]:
    """Atomic numbers of ``elements`` (numbers or symbols), non-empty and without repeats."""
    if isinstance(elements, (str, bytes)):
        raise ValueError(f"elements must be a sequence of elements, got {elements!r}")
    numbers = []
    for element in elements:
        if isinstance(element, str):
            numbers.append(atomic_number(element))
        else:
            element_symbol(element)  # raises ValueError outside 1..118
            numbers.append(operator.index(element))
    if not numbers or len(set(numbers)) != len(numbers):
        raise ValueError(f"elements must be non-empty and without repeats, got {list(elements)}")
    return numbers


def element_rows(numbers: list[int]) -> Tensor:
    """Embedding row per atomic number ``[MAX_Z + 1]``, ``-1`` for elements not embedded."""
    rows = torch.full((MAX_Z + 1,), -1, dtype=torch.long)
    rows[torch.tensor(numbers)] = torch.arange(len(numbers))
    return rows


def row_elements(rows: Tensor) -> list[int]:
    """Atomic numbers with a row in ``rows`` (from :func:`element_rows`), in row order."""
    numbers = torch.nonzero(rows >= 0).flatten()
    return numbers[torch.argsort(rows[numbers])].tolist()


def embedding_rows(rows: Tensor, z: Tensor) -> Tensor:
    """Embedding row of every atom of ``z`` ``[N]``; raises naming unknown elements."""
    if not isinstance(z, Tensor) or z.dim() != 1 or z.dtype != torch.long:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"z must be [N] long atomic numbers, got {shape}")
    valid = (z >= 1) & (z <= MAX_Z)
    atom_rows = rows[z.clamp(0, MAX_Z)]
    bad = ~valid | (atom_rows < 0)
    if bool(bad.any()):
        unknown = sorted(set(z[bad].tolist()))
        names = ", ".join(f"{SYMBOLS[n]} (Z={n})" if 1 <= n <= MAX_Z else f"Z={n}" for n in unknown)
        allowed = ", ".join(SYMBOLS[n] for n in row_elements(rows))
        raise ValueError(f"element(s) {names} not in the model's elements {allowed}")
    return atom_rows
