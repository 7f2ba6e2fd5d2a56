"""QM9's 12 targets: names and units, the qm9pack columns they come from, aliases, and heads.

:data:`TARGETS` and :data:`UNITS` follow PyTorch Geometric's order and units;
:func:`target_index` reads a name, alias or index, :func:`head_for_target` names the
atomistic head that suits each target.
"""

from __future__ import annotations

from flt3d.nn.checks import check_index

__all__ = ["HARTREE_TO_EV", "TARGETS", "UNITS", "head_for_target", "target_index"]

HARTREE_TO_EV = 27.211386246
"""eV per Hartree (CODATA 2018), the factor PyTorch Geometric uses."""

TARGETS: tuple[str, ...] = (
    "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv",
)  # fmt: skip
"""Target names, in the order of the columns of ``data.y``."""

UNITS: tuple[str, ...] = (
    "D", "a0^3", "eV", "eV", "eV", "a0^2", "eV", "eV", "eV", "eV", "eV", "cal/(mol K)",
)  # fmt: skip
"""Units of :data:`TARGETS`."""

# qm9pack column and factor to PyG's unit, for each target in TARGETS order.
_TARGET_COLUMNS: tuple[tuple[str, float], ...] = (
    ("Dipole_debye", 1.0),
    ("Polarizability_bohr3", 1.0),
    ("HOMO_au", HARTREE_TO_EV),
    ("LUMO_au", HARTREE_TO_EV),
    ("HOMO_LUMO_gap_au", HARTREE_TO_EV),
    ("R2_bohr2", 1.0),
    ("ZPVE_au", HARTREE_TO_EV),
    ("InternalEnergy_0K_au", HARTREE_TO_EV),
    ("InternalEnergy_298K_au", HARTREE_TO_EV),
    ("Enthalphy_298K_au", HARTREE_TO_EV),
    ("GibbsFreeEnergy_298K_au", HARTREE_TO_EV),
    ("Heatcapacity_Cv_cal_mol_K", 1.0),
)

_ALIASES: dict[str, int] = {
    **{name.lower(): i for i, name in enumerate(TARGETS)},
    "dipole": 0,
    "dipole_moment": 0,
    "polarizability": 1,
    "homo_lumo_gap": 4,
    "zero_point_energy": 6,
    "enthalpy": 9,
    "free_energy": 10,
    "heat_capacity": 11,
}


def target_index(target: str | int) -> int:
    """Column of ``data.y`` that holds a target.

    Args:
        target: a name from :data:`TARGETS` or an alias (case-insensitive: ``"u0"``,
            ``"HOMO"``, ``"dipole"``, ``"heat_capacity"``, ...), or a column index in
            ``[0, 12)``.

    Returns:
        The column index.

    Raises:
        ValueError: naming ``target`` if it is neither a known name nor an index in range.

    Example:
        >>> target_index("u0"), target_index("HOMO"), target_index(11)
        (7, 2, 11)
    """
    if isinstance(target, str):
        index = _ALIASES.get(target.strip().lower())
        if index is None:
            raise ValueError(
                f"unknown QM9 target {target!r}; expected one of {', '.join(TARGETS)} "
                f"(case-insensitive) or an index in [0, {len(TARGETS)})"
            )
        return index
    index = check_index(target, "QM9 target", "a name or an integer index")
    if not 0 <= index < len(TARGETS):
        raise ValueError(f"QM9 target index must be in [0, {len(TARGETS)}), got {target!r}")
    return index


_INTENSIVE = {"homo", "lumo", "gap"}


def head_for_target(target: str | int) -> str:
    """Name of the head (see :data:`flt3d.atomistic.HEADS`) that suits a QM9 target.

    ``mu`` → ``"dipole"``, ``r2`` → ``"spatial_extent"``, ``homo``/``lumo``/``gap`` →
    ``"intensive"``, every other target (energies, ``zpve``, ``alpha``, ``Cv``) →
    ``"extensive"``; ``"energy"`` (a total energy of one's own data) → ``"extensive"``.

    Args:
        target: QM9 target name (case-insensitive) or index in ``[0, 12)``, or ``"energy"``.

    Example:
        >>> head_for_target("mu"), head_for_target("GAP"), head_for_target(7)
        ('dipole', 'intensive', 'extensive')
    """
    if isinstance(target, str) and target.lower() == "energy":
        return "extensive"
    name = TARGETS[target_index(target)].lower()
    if name == "mu":
        return "dipole"
    if name == "r2":
        return "spatial_extent"
    return "intensive" if name in _INTENSIVE else "extensive"
