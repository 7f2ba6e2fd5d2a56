"""The keys, index and labels of a structure file: checks and the lookup in ASE's stores.

Checks of ``energy_key``, ``forces_key``, ``properties`` and ``index`` (an int, a slice, an ASE
index string or a database query), and the lookup of a label in ``atoms.info`` or
``atoms.arrays`` and then the calculator's results, with messages that list what is there.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._optional import import_optional


def _key(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _property_names(properties: Sequence[str] | None) -> tuple[str, ...]:
    if properties is None:
        return ()
    if isinstance(properties, str):
        raise ValueError(
            f"properties must be a sequence of names, got the string {properties!r}; "
            f"write properties=[{properties!r}]"
        )
    names = tuple(properties)
    for name in names:
        _key(name, "each entry of properties")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"properties lists {', '.join(repeated)} more than once")
    return names


def _selection(index: int | slice | str) -> int | slice | str:
    if isinstance(index, bool):
        raise ValueError(f"index must be an int, a slice or an ASE index string, got {index!r}")
    if isinstance(index, slice):
        return _checked_slice(index, index)
    if isinstance(index, str):
        formats = import_optional("ase.io.formats", "reading atomistic structures")
        try:
            selection = formats.string2index(index)
        except (TypeError, ValueError):  # "1:2:3:4" is a TypeError
            return index  # an ASE database query such as "natoms<20"
        return _checked_slice(selection, index) if isinstance(selection, slice) else selection
    try:
        return operator.index(index)
    except TypeError:
        raise ValueError(
            f"index must be an int, a slice or an ASE index string, got {index!r}"
        ) from None


def _checked_slice(selection: slice, index: slice | str) -> slice:
    parts = (selection.start, selection.stop, selection.step)
    if any(part is not None and (isinstance(part, bool) or not hasattr(part, "__index__"))
           for part in parts):  # fmt: skip
        raise ValueError(f"index {index!r} must be a slice of integers")
    if selection.step == 0:
        raise ValueError(f"index {index!r} has step 0; expected a non-zero step")
    return selection


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lookup(atoms: Any, key: str, arrays: bool = False) -> tuple[Any, bool]:
    store = atoms.arrays if arrays else atoms.info
    if key in store:
        return store[key], True
    results = getattr(atoms.calc, "results", None) or {}
    if key in results:
        return results[key], True
    return None, False


def _available(atoms: Any, arrays: bool = False) -> str:
    store = atoms.arrays if arrays else atoms.info
    name = "atoms.arrays" if arrays else "atoms.info"
    keys = sorted(str(key) for key in store)
    if arrays:
        keys = [key for key in keys if key not in ("numbers", "positions")]
    if atoms.calc is None:
        calc = "there is no calculator"
    else:
        results = sorted(str(key) for key in (getattr(atoms.calc, "results", None) or {}))
        calc = f"the calculator's results have {', '.join(results) or 'no keys'}"
    return f"{name} has {', '.join(keys) or 'no keys'}, {calc}"


def _scalar(value: Any, what: str, where: str) -> float:
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or array.size != 1:
        raise ValueError(f"{where}: {what} must be one real number, got {_describe(value)}")
    number = float(array.reshape(()))
    if not math.isfinite(number):
        raise ValueError(f"{where}: {what} is {number}; expected a finite number")
    return number
