r"""Write water droplets with Na+ and Cl- ions from Langevin MD, labelled with OpenMM, as extxyz.

Each MD run carves an isolated droplet out of OpenMM's pre-equilibrated TIP3P water box
(``Modeller.addSolvent``): the ``n_water + n_ion`` whole water molecules whose oxygens lie
nearest to a random point, of which ``n_ion`` (chosen at random, at least 4.5 Å apart where
possible) are then replaced by ions at their oxygen's position. The droplet's atom count
:math:`N = 3 n_\mathrm{water} + n_\mathrm{ion}` is drawn between ``--min-atoms`` and
``--max-atoms`` with density proportional to :math:`N^{-2}`, so that small droplets dominate,
and rounded down to whole water molecules once the ions are counted;
``n_ion`` is drawn from 2 to :math:`\max(3, \lfloor n_\mathrm{water} / 15 \rfloor)` (up to
about 2 M salt) and the net charge :math:`q = n_\mathrm{Na} - n_\mathrm{Cl}` uniformly from the
values in :math:`[-3, 3]` that ``n_ion`` allows, so most droplets are charged and the
energies and forces depend on charges far away.

Force field: Amber14 (``amber14-all.xml``) with TIP3P water and the Joung-Cheatham ions
(``amber14/tip3p.xml``); flexible water (``rigidWater=False``, no constraints) and
``NoCutoff``, i.e. exact Coulomb and Lennard-Jones between all pairs, the right choice for an
isolated cluster. Per run: energy minimisation, velocities at 300 K, 400 steps (200 fs) of
``LangevinMiddleIntegrator`` (300 K, friction 1/ps, 0.5 fs steps) on the CPU platform with
one thread (deterministic forces), then a snapshot every 40 steps, four per run. A run in
which an ion or a molecule leaves the droplet (its O, Na and Cl atoms no longer connected by
gaps under 5 Å) is discarded and another droplet drawn. Positions are rounded to the 8
decimals (Å) that extxyz stores before the labels are computed on the double-precision
Reference platform, so recomputing on the file's coordinates reproduces them to float
rounding.

Energies go to ``info["energy"]`` (eV), forces to ``arrays["forces"]`` (eV/Å), with 1 kJ/mol
= 1000 / (e N_A) eV as in OpenMM (0.01036426966 eV); each frame also has ``info["charge"]``
(net charge, e), ``info["n_water"]``, ``info["n_na"]``, ``info["n_cl"]``, ``info["run"]`` (the
MD run, for splits that keep correlated snapshots together) and ``info["md_step"]``. Atoms are
ordered water by water (O, H, H), then Na, then Cl. No cell, ``pbc`` False.

Long-range diagnostic: on an evenly spaced subset of snapshots the forces and energies are
recomputed with the nonbonded interactions cut at 5 Å, with OpenMM's ``CutoffNonPeriodic``
(reaction field, dielectric 78.3, Lennard-Jones cut), with a plain truncation of Coulomb and
Lennard-Jones and with a shifted-force Coulomb (both ``CustomNonbondedForce``), and the RMS of
the differences to the full labels is printed relative to the RMS of the full forces and of
the per-atom energies (``--diagnostic-json`` also writes it next to the output, as
``NAME.long_range.json``).

Everything random comes from one ``numpy.random.default_rng(--seed)``, which also seeds
OpenMM's integrator and velocities, so a rerun with the same OpenMM, ASE and NumPy on the same
CPU writes the same file.

Usage (from the repository root, with ``pip install 'flt3d[molecules]' openmm``)::

    python datasets/make_ion_water.py
    python datasets/make_ion_water.py --structures 2000 --max-atoms 3000 --seed 1 \
        --output ion_water_2000.extxyz --diagnostic-json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import write

try:
    import openmm
    from openmm import app, unit
except ImportError:  # pragma: no cover - depends on the environment
    raise SystemExit("make_ion_water.py needs OpenMM: pip install openmm") from None

from flt3d.datasets.atoms import ION_WATER_SAMPLE_PATH

FORCE_FIELD = ("amber14-all.xml", "amber14/tip3p.xml")
AVOGADRO = 6.02214076e23
ELEMENTARY_CHARGE = 1.602176634e-19  # C
EV_PER_KJ_MOL = 1e3 / (ELEMENTARY_CHARGE * AVOGADRO)
"""1 kJ/mol in eV, from the exact SI constants OpenMM uses."""
ONE_4PI_EPS0 = 1.0 / (4 * math.pi * 1e-6 * 8.8541878128e-12 / (ELEMENTARY_CHARGE**2 * AVOGADRO))
"""Coulomb's constant in kJ/mol nm / e^2, as OpenMM defines it."""

TEMPERATURE_K = 300.0
TIMESTEP_FS = 0.5
FRICTION_PER_PS = 1.0
MINIMISE_ITERATIONS = 1000
EQUILIBRATION_STEPS = 400
SNAPSHOT_INTERVAL = 40  # MD steps between snapshots
SNAPSHOTS_PER_RUN = 4
MAX_NET_CHARGE = 3
MIN_IONS = 2
WATERS_PER_ION = 15  # at most one ion per this many waters (about 2 M salt)
ION_SEPARATION_NM = 0.45
WATER_PER_NM3 = 33.4  # number density of liquid water
CUTOFF_NM = 0.5
DECIMALS = 8  # extxyz writes coordinates with %16.8f
CONTACT_A = 5.0  # a droplet whose O, Na and Cl atoms are not connected within this is split

WATER_Z = (8, 1, 1)
NA_Z = 11
CL_Z = 17


def _force_field() -> app.ForceField:
    return app.ForceField(*FORCE_FIELD)


def _cpu_platform() -> tuple[openmm.Platform, dict[str, str]]:
    return openmm.Platform.getPlatformByName("CPU"), {"Threads": "1", "DeterministicForces": "true"}


def _reference_platform() -> openmm.Platform:
    return openmm.Platform.getPlatformByName("Reference")


def droplet_topology(n_water: int, n_na: int, n_cl: int) -> app.Topology:
    """An OpenMM topology of ``n_water`` TIP3P waters (O, H1, H2), then Na+, then Cl- ions.

    Args:
        n_water: number of water molecules.
        n_na: number of sodium ions.
        n_cl: number of chloride ions.

    Returns:
        The topology, with the O-H bonds the force field's water template needs.
    """
    topology = app.Topology()
    water = topology.addChain()
    oxygen, hydrogen = app.element.oxygen, app.element.hydrogen
    for _ in range(n_water):
        residue = topology.addResidue("HOH", water)
        o = topology.addAtom("O", oxygen, residue)
        topology.addBond(o, topology.addAtom("H1", hydrogen, residue))
        topology.addBond(o, topology.addAtom("H2", hydrogen, residue))
    ions = topology.addChain()
    for name, element, count in (
        ("NA", app.element.sodium, n_na),
        ("CL", app.element.chlorine, n_cl),
    ):
        for _ in range(count):
            topology.addAtom(name, element, topology.addResidue(name, ions))
    return topology


def create_system(
    force_field: app.ForceField,
    topology: app.Topology,
    *,
    nonbonded_method: Any = app.NoCutoff,
    cutoff_nm: float | None = None,
) -> openmm.System:
    """The OpenMM system of a droplet: flexible water, no constraints, given nonbonded method."""
    options: dict[str, Any] = {}
    if cutoff_nm is not None:
        options["nonbondedCutoff"] = cutoff_nm * unit.nanometer
    return force_field.createSystem(
        topology,
        nonbondedMethod=nonbonded_method,
        constraints=None,
        rigidWater=False,
        **options,
    )


def truncated_system(
    system: openmm.System, cutoff_nm: float, *, shifted_force: bool = False
) -> openmm.System:
    r"""A copy of ``system`` with Coulomb and Lennard-Jones between particles cut at ``cutoff_nm``.

    .. math::
        E_{ij} = \Big[k_e q_i q_j \Big(\frac{1}{r} - s \big(\tfrac{1}{r_c}
        - \tfrac{r - r_c}{r_c^2}\big)\Big) + 4 \epsilon_{ij}
        \Big(\big(\tfrac{\sigma_{ij}}{r}\big)^{12} - \big(\tfrac{\sigma_{ij}}{r}\big)^{6}\Big)\Big]
        \, \Theta(r_c - r)

    with Lorentz-Berthelot combination and no switch: :math:`s = 0` is the plain truncation,
    whose forces are exactly the full ones less the pairs beyond :math:`r_c`; :math:`s = 1`
    (``shifted_force``) shifts the Coulomb energy and force of each pair to zero at :math:`r_c`,
    the usual local stand-in for electrostatics of neutral matter. The excluded pairs of the
    ``NonbondedForce`` stay excluded and its exceptions (all zero for water and ions) are kept
    exactly.

    Args:
        system: a system with one ``NonbondedForce``.
        cutoff_nm: :math:`r_c` in nm.
        shifted_force: shift the Coulomb term (:math:`s = 1`). Default ``False``.

    Returns:
        A new system; ``system`` is not changed.
    """
    truncated = openmm.XmlSerializer.clone(system)
    (nonbonded,) = [f for f in truncated.getForces() if isinstance(f, openmm.NonbondedForce)]
    shift = f" - {1 / cutoff_nm!r} + (r - {cutoff_nm!r})/{cutoff_nm**2!r}" if shifted_force else ""
    custom = openmm.CustomNonbondedForce(
        f"{ONE_4PI_EPS0!r}*q1*q2*(1/r{shift}) + 4*epsilon*((sigma/r)^12 - (sigma/r)^6);"
        "sigma = 0.5*(sigma1 + sigma2); epsilon = sqrt(epsilon1*epsilon2)"
    )
    for name in ("q", "sigma", "epsilon"):
        custom.addPerParticleParameter(name)
    for k in range(nonbonded.getNumParticles()):
        charge, sigma, epsilon = nonbonded.getParticleParameters(k)
        custom.addParticle([charge, sigma, epsilon])
        nonbonded.setParticleParameters(k, 0.0, sigma, 0.0)
    for k in range(nonbonded.getNumExceptions()):
        i, j, *_ = nonbonded.getExceptionParameters(k)
        custom.addExclusion(i, j)
    custom.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    custom.setCutoffDistance(cutoff_nm * unit.nanometer)
    custom.setUseSwitchingFunction(False)
    custom.setUseLongRangeCorrection(False)
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    truncated.addForce(custom)
    return truncated


def _reference_context(system: openmm.System) -> openmm.Context:
    return openmm.Context(system, openmm.VerletIntegrator(0.001), _reference_platform())


def label(context: openmm.Context, positions_a: np.ndarray) -> tuple[float, np.ndarray]:
    """Potential energy (eV) and forces (eV/Å) at ``positions_a`` (Å, ``[N, 3]``), in float64."""
    context.setPositions(np.asarray(positions_a, dtype=np.float64) / 10.0 * unit.nanometer)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return float(energy) * EV_PER_KJ_MOL, np.asarray(forces, dtype=np.float64) * EV_PER_KJ_MOL / 10


def _water_box(force_field: app.ForceField, side_nm: float) -> np.ndarray:
    # Positions [n_water, 3 (O, H1, H2), 3] in nm of OpenMM's equilibrated TIP3P box.
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(force_field, model="tip3p", boxSize=openmm.Vec3(side_nm, side_nm, side_nm))
    positions = modeller.getPositions().value_in_unit(unit.nanometer)
    return np.asarray(positions, dtype=np.float64).reshape(-1, 3, 3)


def _ion_counts(n_water: int, rng: np.random.Generator) -> tuple[int, int]:
    n_ion = int(rng.integers(MIN_IONS, max(MIN_IONS + 1, n_water // WATERS_PER_ION) + 1))
    charges = [q for q in range(-MAX_NET_CHARGE, MAX_NET_CHARGE + 1) if (n_ion - q) % 2 == 0]
    charge = int(rng.choice([q for q in charges if abs(q) <= n_ion]))
    return (n_ion + charge) // 2, (n_ion - charge) // 2


def _draw_atoms(min_atoms: int, max_atoms: int, rng: np.random.Generator) -> int:
    # Inverse CDF of the density ~ N^-2 on [min_atoms, max_atoms].
    u = rng.random()
    return round(1.0 / (1.0 / min_atoms - u * (1.0 / min_atoms - 1.0 / max_atoms)))


def droplet(
    force_field: app.ForceField, natoms: int, rng: np.random.Generator
) -> tuple[int, int, int, np.ndarray]:
    """Carve a droplet of about ``natoms`` atoms with ions out of a TIP3P box.

    Returns:
        ``(n_water, n_na, n_cl, positions)``, positions ``[N, 3]`` in nm, ordered as
        :func:`droplet_topology`; :math:`N = 3 n_\\mathrm{water} + n_\\mathrm{Na} + n_\\mathrm{Cl}`.
    """
    n_water = max(1, (natoms - MIN_IONS) // 3)
    n_na, n_cl = _ion_counts(n_water, rng)
    n_ion = n_na + n_cl
    n_water = max(1, (natoms - n_ion) // 3)
    radius = (3 * (n_water + n_ion) / (4 * math.pi * WATER_PER_NM3)) ** (1 / 3)
    jitter = 0.5  # nm the centre may move from the box centre
    side = 2 * (radius + jitter) + 0.6
    box = _water_box(force_field, side)
    centre = side / 2 + rng.uniform(-jitter, jitter, size=3)
    order = np.argsort(np.linalg.norm(box[:, 0] - centre, axis=1), kind="stable")
    molecules = box[order[: n_water + n_ion]]
    sites: list[int] = []
    for k in rng.permutation(len(molecules)).tolist():
        if len(sites) == n_ion:
            break
        gaps = [np.linalg.norm(molecules[k, 0] - molecules[s, 0]) for s in sites]
        if min(gaps, default=np.inf) >= ION_SEPARATION_NM:
            sites.append(k)
    if len(sites) < n_ion:  # too crowded to keep ions apart: take the rest at random
        rest = [k for k in rng.permutation(len(molecules)).tolist() if k not in sites]
        sites += rest[: n_ion - len(sites)]
    waters = np.delete(molecules, sites, axis=0).reshape(-1, 3)
    ions = molecules[sites, 0]
    return n_water, n_na, n_cl, np.concatenate([waters, ions])


def _numbers(n_water: int, n_na: int, n_cl: int) -> np.ndarray:
    return np.array(list(WATER_Z) * n_water + [NA_Z] * n_na + [CL_Z] * n_cl)


def generate(
    structures: int, min_atoms: int, max_atoms: int, seed: int, *, log: bool = False
) -> list[Atoms]:
    """Run the MD and return the labelled snapshots.

    Args:
        structures: number of snapshots.
        min_atoms: smallest droplet, in atoms (at least 9).
        max_atoms: largest droplet, in atoms (at least ``min_atoms``).
        seed: seed of ``numpy.random.default_rng``.
        log: print one line per MD run.

    Returns:
        ``structures`` frames with ``info["energy"]`` (eV) and ``arrays["forces"]`` (eV/Å).
    """
    force_field = _force_field()
    platform, properties = _cpu_platform()
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    run = 0
    while len(frames) < structures:
        start = time.perf_counter()
        n_water, n_na, n_cl, positions = droplet(
            force_field, _draw_atoms(min_atoms, max_atoms, rng), rng
        )
        topology = droplet_topology(n_water, n_na, n_cl)
        system = create_system(force_field, topology)
        integrator = openmm.LangevinMiddleIntegrator(
            TEMPERATURE_K * unit.kelvin,
            FRICTION_PER_PS / unit.picosecond,
            TIMESTEP_FS * unit.femtosecond,
        )
        integrator.setRandomNumberSeed(int(rng.integers(1, 2**31 - 1)))
        simulation = app.Simulation(topology, system, integrator, platform, properties)
        simulation.context.setPositions(positions * unit.nanometer)
        simulation.minimizeEnergy(maxIterations=MINIMISE_ITERATIONS)
        simulation.context.setVelocitiesToTemperature(
            TEMPERATURE_K * unit.kelvin, int(rng.integers(1, 2**31 - 1))
        )
        simulation.step(EQUILIBRATION_STEPS)
        step = EQUILIBRATION_STEPS
        reference = _reference_context(create_system(force_field, topology))
        numbers = _numbers(n_water, n_na, n_cl)
        heavy = numbers != 1
        kept: list[Atoms] = []
        for _ in range(min(SNAPSHOTS_PER_RUN, structures - len(frames))):
            simulation.step(SNAPSHOT_INTERVAL)
            step += SNAPSHOT_INTERVAL
            state = simulation.context.getState(getPositions=True)
            positions_a = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
            positions_a = np.round(np.asarray(positions_a, dtype=np.float64), DECIMALS)
            if not _connected(positions_a[heavy], CONTACT_A):
                break
            energy, forces = label(reference, positions_a)
            frame = Atoms(numbers, positions=positions_a)
            frame.info.update(
                charge=n_na - n_cl, n_water=n_water, n_na=n_na, n_cl=n_cl, run=run, md_step=step
            )
            frame.info["energy"] = energy
            frame.arrays["forces"] = forces
            kept.append(frame)
        description = f"{len(numbers)} atoms ({n_water} H2O, {n_na} Na+, {n_cl} Cl-)"
        if len(kept) < min(SNAPSHOTS_PER_RUN, structures - len(frames)):
            print(f"discarded a run of {description}: a molecule or ion left the droplet")
            continue
        frames += kept
        if log:
            print(f"run {run}: {description}, {time.perf_counter() - start:.1f} s")
        run += 1
    return frames


def _connected(positions: np.ndarray, contact: float) -> bool:
    # Whether the graph of points closer than `contact` to each other is connected.
    reached = np.zeros(len(positions), dtype=bool)
    reached[0] = True
    frontier = positions[:1]
    while len(frontier) and not reached.all():
        rest = np.flatnonzero(~reached)
        nearest = np.full(len(rest), np.inf)
        for chunk in range(0, len(frontier), 256):
            gaps = positions[rest, None] - frontier[None, chunk : chunk + 256]
            nearest = np.minimum(nearest, np.square(gaps).sum(axis=-1).min(axis=1))
        new = rest[nearest < contact**2]
        reached[new] = True
        frontier = positions[new]
    return bool(reached.all())


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def method_figures(
    rows: list[dict[str, Any]],
    method: str,
    groups: dict[str, np.ndarray],
    energy: np.ndarray,
    natoms: np.ndarray,
    residual_per_atom: Callable[[np.ndarray], np.ndarray] | None,
) -> dict[str, dict[str, Any]]:
    """The diagnostic's figures of one cut ``method`` for each group of frames (a mask over
    ``rows``): RMS of the full forces and of the force difference, of the per-atom energies and
    of their difference, and, with ``residual_per_atom`` (the per-species reference fit), the
    same for the energies' residuals (``None`` without)."""
    delta = energy - np.array([row[method][0] for row in rows])
    if residual_per_atom is not None:
        resid_full, resid_delta = residual_per_atom(energy), residual_per_atom(delta)
    figures = {}
    for group, mask in groups.items():
        subset = [row for row, keep in zip(rows, mask) if keep]
        forces = np.concatenate([row["full"][1] for row in subset])
        delta_f = np.concatenate([row["full"][1] - row[method][1] for row in subset])
        per_atom, delta_per_atom = energy[mask] / natoms[mask], delta[mask] / natoms[mask]
        values = {
            "structures": len(subset),
            "force_rms_eV_A": _rms(forces),
            "force_diff_rms_eV_A": _rms(delta_f),
            "force_relative": _rms(delta_f) / _rms(forces),
            "energy_per_atom_rms_eV": _rms(per_atom),
            "energy_per_atom_diff_rms_eV": _rms(delta_per_atom),
            "energy_relative": _rms(delta_per_atom) / _rms(per_atom),
            "energy_per_atom_residual_rms_eV": None,
            "energy_per_atom_diff_residual_rms_eV": None,
            "energy_residual_relative": None,
        }
        if residual_per_atom is not None:
            values["energy_per_atom_residual_rms_eV"] = _rms(resid_full[mask])
            values["energy_per_atom_diff_residual_rms_eV"] = _rms(resid_delta[mask])
            values["energy_residual_relative"] = _rms(resid_delta[mask]) / _rms(resid_full[mask])
        figures[group] = values
    return figures


def long_range_diagnostic(
    frames: list[Atoms], *, structures: int = 40, cutoff_nm: float = CUTOFF_NM
) -> dict[str, Any]:
    r"""How much of the energies and forces comes from beyond ``cutoff_nm``.

    For ``structures`` evenly spaced frames, the labels are recomputed with the nonbonded
    interactions cut at ``cutoff_nm`` in three ways: OpenMM's ``CutoffNonPeriodic`` (reaction
    field with dielectric 78.3, Lennard-Jones cut), a plain truncation and a shifted-force
    Coulomb (:func:`truncated_system`), and compared with the full (``NoCutoff``) labels:

    .. math::
        \mathrm{force\_relative} = \frac{\mathrm{RMS}(F - F_\mathrm{cut})}{\mathrm{RMS}(F)},
        \qquad
        \mathrm{energy\_relative} = \frac{\mathrm{RMS}_i\big((E_i - E_{\mathrm{cut},i}) / N_i\big)}
        {\mathrm{RMS}_i(E_i / N_i)}

    over all force components and structures :math:`i`, and
    ``energy_residual_relative``, the same ratio for :math:`r_i(E - E_\mathrm{cut})` and
    :math:`r_i(E)`, the residuals of least-squares fits of per-species reference energies (per
    water, Na+ and Cl-) over the chosen frames: a per-species offset is absorbed by the
    reference energies a model is trained with, so only the rest is left to learn (``None``
    when the frames have too few distinct compositions for such a fit).

    Returns:
        A JSON-ready dict: the settings, and for each method the figures over all chosen
        frames (``"all"``) and by absolute net charge (``"|charge|=k"``).
    """
    force_field = _force_field()
    chosen = np.unique(np.linspace(0, len(frames) - 1, min(structures, len(frames))).round())
    chosen = chosen.astype(int).tolist()
    rows: list[dict[str, Any]] = []
    for position in chosen:
        frame = frames[position]
        info = frame.info
        topology = droplet_topology(info["n_water"], info["n_na"], info["n_cl"])
        full = create_system(force_field, topology)
        systems = {
            "reaction_field": create_system(
                force_field, topology, nonbonded_method=app.CutoffNonPeriodic, cutoff_nm=cutoff_nm
            ),
            "plain": truncated_system(full, cutoff_nm),
            "shifted_force": truncated_system(full, cutoff_nm, shifted_force=True),
        }
        row: dict[str, Any] = {"charge": int(info["charge"]), "natoms": len(frame)}
        row["counts"] = [info["n_water"], info["n_na"], info["n_cl"]]
        row["full"] = (info["energy"], frame.arrays["forces"])
        for method, system in systems.items():
            row[method] = label(_reference_context(system), frame.positions)
        rows.append(row)
    methods = list(systems)
    counts = np.array([row["counts"] for row in rows], dtype=np.float64)
    natoms = np.array([row["natoms"] for row in rows], dtype=np.float64)

    def residual_per_atom(energies: np.ndarray) -> np.ndarray:
        solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
        return (energies - counts @ solution) / natoms

    # The references leave a residual only with more compositions than they have parameters.
    fit_references = len(np.unique(counts, axis=0)) > np.linalg.matrix_rank(counts)
    energy = np.array([row["full"][0] for row in rows])
    result: dict[str, Any] = {
        "cutoff_A": cutoff_nm * 10,
        "frames": chosen,
        "atoms": int(natoms.sum()),
    }
    groups = {"all": np.ones(len(rows), dtype=bool)}
    for charge in sorted({abs(row["charge"]) for row in rows}):
        groups[f"|charge|={charge}"] = np.array([abs(r["charge"]) == charge for r in rows])
    for method in methods:
        result[method] = method_figures(
            rows, method, groups, energy, natoms, residual_per_atom if fit_references else None
        )
    return result


def _print_diagnostic(diagnostic: dict[str, Any]) -> None:
    print(
        f"long-range diagnostic, cutoff {diagnostic['cutoff_A']:.1f} A, "
        f"{len(diagnostic['frames'])} structures, {diagnostic['atoms']:,} atoms:"
    )
    print_figures(diagnostic, ("reaction_field", "plain", "shifted_force"))


def print_figures(diagnostic: dict[str, Any], methods: Sequence[str]) -> None:
    """One line per method and group of :func:`method_figures`' figures."""
    width = max(len(method) for method in methods)
    for method in methods:
        groups = diagnostic[method]
        group_width = max(len(group) for group in groups)
        for group, values in groups.items():
            print(
                f"  {method:{width}s} {group:{group_width}s} ({values['structures']:3d}): forces "
                f"{values['force_diff_rms_eV_A']:.4f} / {values['force_rms_eV_A']:.4f} eV/A "
                f"= {values['force_relative']:.3f}; E/N "
                f"{values['energy_per_atom_diff_rms_eV'] * 1e3:.1f} / "
                f"{values['energy_per_atom_rms_eV'] * 1e3:.1f} meV "
                f"= {values['energy_relative']:.3f}"
                + (
                    ", after references "
                    f"{values['energy_per_atom_diff_residual_rms_eV'] * 1e3:.1f} / "
                    f"{values['energy_per_atom_residual_rms_eV'] * 1e3:.1f} meV "
                    f"= {values['energy_residual_relative']:.3f}"
                    if values["energy_residual_relative"] is not None
                    else ""
                )
            )


def generator_parser(
    description: str, output: Path, structures: int, min_atoms: int, max_atoms: int, what: str
) -> argparse.ArgumentParser:
    """The command line the OpenMM generators share, with their defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", type=Path, default=output, help="extxyz file to write")
    parser.add_argument("--structures", type=int, default=structures, help="snapshots to write")
    parser.add_argument("--min-atoms", type=int, default=min_atoms, help=f"smallest {what}")
    parser.add_argument("--max-atoms", type=int, default=max_atoms, help=f"largest {what}")
    parser.add_argument("--seed", type=int, default=0, help="seed of numpy.random.default_rng")
    parser.add_argument(
        "--diagnostic-structures",
        type=int,
        default=40,
        help="snapshots for the long-range diagnostic (0: skip it)",
    )
    parser.add_argument(
        "--diagnostic-json",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="write the diagnostic to OUTPUT's name with .long_range.json",
    )
    parser.add_argument("--log", action=argparse.BooleanOptionalAction, default=False)
    return parser


def print_labels(frames: list[Atoms], elements: Sequence[tuple[int, str]]) -> None:
    """Print the energies' and forces' statistics, and the force std per element."""
    natoms = np.array([len(frame) for frame in frames])
    energies = np.array([frame.info["energy"] for frame in frames])
    forces = np.concatenate([frame.arrays["forces"] for frame in frames])
    per_atom = energies / natoms
    print(
        f"energy {energies.mean():.4f} +- {energies.std():.4f} eV "
        f"[{energies.min():.4f}, {energies.max():.4f}]; per atom {per_atom.mean():.4f} "
        f"+- {per_atom.std():.4f} eV [{per_atom.min():.4f}, {per_atom.max():.4f}]"
    )
    norms = np.linalg.norm(forces, axis=1)
    print(
        f"force components {forces.mean():.2e} +- {forces.std():.4f} eV/A, "
        f"mean |F| {norms.mean():.4f}, max |F| {norms.max():.4f} eV/A"
    )
    for z, symbol in elements:
        mask = np.concatenate([frame.numbers == z for frame in frames])
        print(f"  {symbol}: {mask.sum():,} atoms, force std {forces[mask].std():.4f} eV/A")


def write_diagnostic(diagnostic: dict[str, Any], output: Path, digest: str) -> None:
    """Write the diagnostic as JSON next to ``output``, as ``NAME.long_range.json``."""
    path = output.with_name(output.name.split(".")[0] + ".long_range.json")
    diagnostic["output"] = output.name
    diagnostic["sha256"] = digest
    path.write_text(json.dumps(diagnostic, indent=2) + "\n")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    """Generate the structures, write them and print statistics and the long-range diagnostic.

    Args:
        argv: command-line arguments; default ``sys.argv[1:]``.
    """
    parser = generator_parser(
        __doc__.split("\n\n")[0], Path(ION_WATER_SAMPLE_PATH), 116, 90, 300, "droplet"
    )
    args = parser.parse_args(argv)
    if args.structures < 1:
        raise SystemExit(f"--structures must be positive, got {args.structures}")
    if not 9 <= args.min_atoms <= args.max_atoms:
        raise SystemExit(
            f"need 9 <= --min-atoms <= --max-atoms, got {args.min_atoms} and {args.max_atoms}"
        )
    if args.diagnostic_structures < 0:
        raise SystemExit(
            f"--diagnostic-structures must be non-negative, got {args.diagnostic_structures}"
        )

    start = time.perf_counter()
    frames = generate(args.structures, args.min_atoms, args.max_atoms, args.seed, log=args.log)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write(args.output, frames, format="extxyz")
    print(f"generated in {time.perf_counter() - start:.1f} s")

    natoms = np.array([len(frame) for frame in frames])
    charges = np.array([frame.info["charge"] for frame in frames])
    ions = np.array([frame.info["n_na"] + frame.info["n_cl"] for frame in frames])
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"wrote {args.output}: {os.path.getsize(args.output):,} bytes, sha256 {digest}")
    print(
        f"{len(frames)} structures from {len({f.info['run'] for f in frames})} runs, "
        f"{natoms.sum():,} atoms, {natoms.min()}-{natoms.max()} per structure "
        f"(mean {natoms.mean():.1f}, median {np.median(natoms):.0f}); "
        f"{ions.min()}-{ions.max()} ions per structure"
    )
    values, counts = np.unique(charges, return_counts=True)
    print("net charge: " + ", ".join(f"{v:+d} e: {c}" for v, c in zip(values, counts)))
    print_labels(frames, ((8, "O"), (1, "H"), (NA_Z, "Na"), (CL_Z, "Cl")))
    if args.diagnostic_structures:
        diagnostic = long_range_diagnostic(frames, structures=args.diagnostic_structures)
        _print_diagnostic(diagnostic)
        if args.diagnostic_json:
            write_diagnostic(diagnostic, args.output, digest)


if __name__ == "__main__":
    main()
