"""The check that molecules hold only allowed elements: :func:`check_elements`."""

from __future__ import annotations

import operator
from collections.abc import Iterable

import torch
from torch_geometric.data import Data

from flt3d.atomistic.elements import SYMBOLS, atomic_number, element_symbol


def _as_atomic_number(element: int | str) -> int:
    if isinstance(element, str):
        return atomic_number(element)
    element_symbol(element)  # raises ValueError unless an integer in [1, 118]
    return operator.index(element)


def check_elements(
    data: Data | Iterable[Data], allowed_z: Iterable[int | str], *, source: str | None = None
) -> None:
    """Check that molecules contain only allowed elements.

    Args:
        data: one ``Data`` (or a batch) with ``z``, or an iterable of them.
        allowed_z: the allowed elements, as atomic numbers or symbols, e.g.
            ``flt3d.datasets.QM9_Z``.
        source: the file they come from; the message then names it and the structure (its
            ``idx`` where the ``Data`` has one, as :func:`~flt3d.datasets.read_structures`
            sets, else its position).

    Raises:
        ValueError: naming the element symbol(s) outside the allowed set and the first
            molecule that has them.

    Example:
        >>> import torch
        >>> check_elements(Data(z=torch.tensor([6, 1, 1, 1, 1])), [1, 6, 7, 8, 9])
    """
    allowed = {_as_atomic_number(element) for element in allowed_z}
    allowed_text = ", ".join(SYMBOLS[z] for z in sorted(allowed)) or "(empty)"
    molecules = [data] if isinstance(data, Data) else data
    for number, molecule in enumerate(molecules):
        present = set(torch.as_tensor(molecule.z).unique().tolist())
        outside = sorted(present - allowed)
        if outside:
            symbols = ", ".join(
                element_symbol(z) if 1 <= z < len(SYMBOLS) else f"Z={z}" for z in outside
            )
            smiles = getattr(molecule, "smiles", None)
            label = f"molecule {number}" + (f" ({smiles!r})" if isinstance(smiles, str) else "")
            if source is not None:
                index = int(molecule.idx) if "idx" in molecule else number
                label = f"{source!r}, structure {index}"
            raise ValueError(
                f"{label} contains element(s) {symbols} outside the allowed set {allowed_text}"
            )
