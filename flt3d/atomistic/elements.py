r"""Chemical element symbols and atomic numbers, without RDKit or ASE.

``SYMBOLS[z]`` is the symbol of atomic number ``z`` (``SYMBOLS[0]`` is ``"X"``, a placeholder for
"no element"), so element names can be printed in error messages and parsed from text files even
when the optional molecule extras are not installed.

Example:
    >>> atomic_number("C"), element_symbol(8)
    (6, 'O')
"""

from __future__ import annotations

import operator

__all__ = ["MAX_Z", "SYMBOLS", "atomic_number", "element_symbol"]

SYMBOLS: tuple[str, ...] = (
    "X",
    "H", "He",
    "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
    "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr",
    "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
    "In", "Sn", "Sb", "Te", "I", "Xe",
    "Cs", "Ba",
    "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu",
    "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn",
    "Fr", "Ra",
    "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr",
    "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn",
    "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
)  # fmt: skip

MAX_Z = len(SYMBOLS) - 1
"""Largest atomic number, 118; tables indexed by atomic number have ``MAX_Z + 1`` rows."""

_NUMBERS = {symbol.lower(): z for z, symbol in enumerate(SYMBOLS) if z > 0}


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (case-insensitive, surrounding blanks ignored).

    Args:
        symbol: element symbol such as ``"C"`` or ``"cl"``.

    Returns:
        The atomic number, between 1 and 118.

    Raises:
        ValueError: if ``symbol`` is not an element symbol.
    """
    if not isinstance(symbol, str):
        raise ValueError(f"element symbol must be a string, got {symbol!r}")
    z = _NUMBERS.get(symbol.strip().lower())
    if z is None:
        raise ValueError(f"unknown element symbol {symbol!r}")
    return z


def element_symbol(z: int) -> str:
    """Symbol of an atomic number.

    Args:
        z: atomic number, between 1 and 118 (a Python or NumPy integer, or a 0-dim tensor).

    Returns:
        The element symbol, e.g. ``"C"`` for 6.

    Raises:
        ValueError: if ``z`` is not an integer between 1 and 118.
    """
    try:
        if isinstance(z, bool):
            raise TypeError
        number = operator.index(z)
    except TypeError:
        raise ValueError(f"atomic number must be an integer, got {z!r}") from None
    if not 1 <= number <= MAX_Z:
        raise ValueError(f"atomic number must be between 1 and {MAX_Z}, got {number}")
    return SYMBOLS[number]
