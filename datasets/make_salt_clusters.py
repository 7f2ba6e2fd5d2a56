r"""Write net-charged Na+/Cl- clusters from Langevin MD, labelled with OpenMM, as extxyz.

The clusters hold no water, so the Coulomb field of far ions is not screened: the forces
depend strongly on charges 10 to 30 Å away, beyond the receptive field of a local model with a
5 Å cutoff and two or three message-passing layers.

Each MD run cuts a cluster out of a rock-salt lattice (:math:`a` = 5.64 Å, ions :math:`a/2`
apart, Na+ on the sites with even :math:`i + j + k`), randomly rotated and shifted: the
``N`` sites nearest, in the metric of an ellipsoid, to a point. The ellipsoid's semi-axes are
stretched by factors drawn log-uniformly from 1 to 1.5 and rescaled to keep its volume, so a
cluster is up to 1.5 times longer along one axis than along another. The atom count ``N`` is
drawn between ``--min-atoms`` and ``--max-atoms`` with density proportional to :math:`1/N`
(log-uniform), so that small clusters dominate and the file stays small. The net charge
:math:`q = n_\mathrm{Na} - n_\mathrm{Cl}` has :math:`|q|` drawn from 0 to 4 e in shuffled
blocks of the five values (the same number of runs at every :math:`|q|`) and a random sign;
ions of the species in excess, chosen at random anywhere in the cluster, are then removed until
the charge is :math:`q`, so a cluster has ``N`` atoms less a few.

Force field: the Joung-Cheatham Na+ and Cl- of ``amber14/tip3p.xml`` (OpenMM's
``ForceField("amber14-all.xml", "amber14/tip3p.xml")``, ions only: one residue ``NA`` or
``CL`` per ion), charges :math:`\pm 1` e, ``NoCutoff``, i.e. exact Coulomb and Lennard-Jones
between all pairs, the right choice for an isolated cluster. Per run: at most 200 iterations
of energy minimisation, velocities at 800 K (small clusters lose their lattice, large ones
keep a partly crystalline core under a disordered surface), 1500 steps (3 ps) of
``LangevinMiddleIntegrator`` (800 K, friction 1/ps, 2 fs steps) on the CPU platform with one
thread (deterministic forces), then a snapshot every 25 steps (50 fs), four per run. A run in
which an ion leaves the cluster (the ions no longer connected by gaps under 4.5 Å, so also a
pair or a fragment that leaves) is discarded and another cluster drawn with the same charge.
Positions are rounded to the 8 decimals (Å) that extxyz stores before the labels are computed
on the double-precision Reference platform, so recomputing on the file's coordinates
reproduces them to float rounding.

Energies go to ``info["energy"]`` (eV), forces to ``arrays["forces"]`` (eV/Å), with 1 kJ/mol
= 1000 / (e N_A) eV as in OpenMM (0.01036426966 eV); each frame also has ``info["charge"]``
(net charge, e), ``info["n_na"]``, ``info["n_cl"]``, ``info["run"]`` (the MD run, for splits
that keep correlated snapshots together) and ``info["md_step"]``. Atoms are ordered Na first,
then Cl. No cell, ``pbc`` False.

Long-range diagnostic: on an evenly spaced subset of snapshots the forces and energies are
recomputed with Coulomb and Lennard-Jones truncated at 5, 10 and 15 Å, plainly (the force
differences are exactly the forces from the pairs beyond the cutoff) and with a shifted-force
Coulomb (the usual local stand-in for electrostatics), and the RMS of the differences to the
full labels is printed relative to the RMS of the full forces and of the per-atom energies,
over all snapshots, by :math:`|q|` and by size (``--diagnostic-json`` also writes it next to
the output, as ``NAME.long_range.json``).

Everything random comes from one ``numpy.random.default_rng(--seed)``, which also seeds
OpenMM's integrator and velocities, so a rerun with the same OpenMM, ASE and NumPy on the same
CPU writes the same file. The OpenMM helpers (force field, topology, systems, labels, the
truncated systems of the diagnostic) are those of ``make_ion_water.py``.

Usage (from the repository root, with ``pip install 'flt3d[molecules]' openmm``)::

    python datasets/make_salt_clusters.py
    python datasets/make_salt_clusters.py --structures 2000 --max-atoms 5000 --seed 1 \
        --output salt_clusters_2000.extxyz --diagnostic-json
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import write

try:
    import openmm
    from openmm import app, unit
except ImportError:  # pragma: no cover - depends on the environment
    raise SystemExit("make_salt_clusters.py needs OpenMM: pip install openmm") from None

from flt3d.datasets.atoms import SALT_CLUSTERS_SAMPLE_PATH

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_ion_water import (  # noqa: E402
    CL_Z,
    DECIMALS,
    NA_Z,
    _connected,
    _cpu_platform,
    _force_field,
    _numbers,
    _reference_context,
    create_system,
    droplet_topology,
    generator_parser,
    label,
    method_figures,
    print_figures,
    print_labels,
    truncated_system,
    write_diagnostic,
)

LATTICE_A = 5.64  # Å, rock-salt NaCl
MAX_STRETCH = 1.5  # largest ratio of an ellipsoid's semi-axis to its shortest
MAX_NET_CHARGE = 4
TEMPERATURE_K = 800.0
TIMESTEP_FS = 2.0
FRICTION_PER_PS = 1.0
MINIMISE_ITERATIONS = 200
EQUILIBRATION_STEPS = 1500
SNAPSHOT_INTERVAL = 25  # MD steps between snapshots
SNAPSHOTS_PER_RUN = 4
CONTACT_A = 4.5  # a cluster whose ions are not connected within this has lost an ion
MAX_ATTEMPTS = 50  # clusters drawn in a row for one run before giving up
CUTOFFS_A = (5.0, 10.0, 15.0)  # of the diagnostic, plain and shifted force
COORDINATION_A = 3.5  # counterions closer than this are an ion's first shell (6 in rock salt)
SIZE_EDGES = (120, 240, 480)  # atom counts that bound the size groups of the diagnostic


def _draw_atoms(min_atoms: int, max_atoms: int, rng: np.random.Generator) -> int:
    # Inverse CDF of the density ~ 1/N on [min_atoms, max_atoms].
    return round(min_atoms * (max_atoms / min_atoms) ** rng.random())


def _rotation(rng: np.random.Generator) -> np.ndarray:
    # A uniformly random orthogonal matrix (QR of a Gaussian matrix, signs fixed). An improper
    # one is a rotation times the inversion, which maps the rock-salt lattice onto itself.
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def cluster(natoms: int, charge: int, rng: np.random.Generator) -> tuple[int, int, np.ndarray]:
    r"""Cut ``natoms`` lattice sites out of rock salt and give the cluster net charge ``charge``.

    The sites are those nearest to a random point in the metric of a randomly stretched
    ellipsoid, on a randomly rotated lattice; then randomly chosen ions of the species in
    excess are removed until :math:`n_\mathrm{Na} - n_\mathrm{Cl}` = ``charge``.

    Args:
        natoms: lattice sites cut out (at least ``2 |charge| + 2``).
        charge: the net charge, e.
        rng: the random generator.

    Returns:
        ``(n_na, n_cl, positions)``, positions ``[n_na + n_cl, 3]`` in Å, Na first.

    Raises:
        ValueError: if ``natoms`` is below ``2 |charge| + 2``.
    """
    if natoms < 2 * abs(charge) + 2:
        raise ValueError(
            f"natoms must be at least 2 |charge| + 2 = {2 * abs(charge) + 2}, got {natoms}"
        )
    half = LATTICE_A / 2
    log_stretch = rng.uniform(0.0, math.log(MAX_STRETCH), size=3)
    stretch = np.exp(log_stretch - log_stretch.mean())
    radius = (3 * natoms * half**3 / (4 * math.pi)) ** (1 / 3)
    extent = math.ceil(radius * stretch.max() / half) + 3
    grid = np.arange(-extent, extent + 1)
    sites = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    positions = (sites * half) @ _rotation(rng).T
    centre = rng.uniform(0.0, LATTICE_A, size=3)
    order = np.argsort(np.linalg.norm((positions - centre) / stretch, axis=1), kind="stable")
    chosen = order[:natoms]
    sodium = sites[chosen].sum(axis=1) % 2 == 0
    na, cl = positions[chosen][sodium], positions[chosen][~sodium]
    excess = len(na) - len(cl) - charge
    if excess > 0:
        na = np.delete(na, rng.choice(len(na), excess, replace=False), axis=0)
    elif excess < 0:
        cl = np.delete(cl, rng.choice(len(cl), -excess, replace=False), axis=0)
    return len(na), len(cl), np.concatenate([na, cl])


def generate(
    structures: int, min_atoms: int, max_atoms: int, seed: int, *, log: bool = False
) -> list[Atoms]:
    """Run the MD and return the labelled snapshots.

    Args:
        structures: number of snapshots.
        min_atoms: smallest cluster, in lattice sites before the charge is set (at least 10).
        max_atoms: largest cluster, in lattice sites (at least ``min_atoms``).
        seed: seed of ``numpy.random.default_rng``.
        log: print one line per MD run.

    Returns:
        ``structures`` frames with ``info["energy"]`` (eV) and ``arrays["forces"]`` (eV/Å).

    Raises:
        RuntimeError: if :data:`MAX_ATTEMPTS` clusters in a row for one run lose an ion (too
            small for their charge).
    """
    force_field = _force_field()
    platform, properties = _cpu_platform()
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    run = 0
    charge: int | None = None
    attempts = 0
    while len(frames) < structures:
        start = time.perf_counter()
        if charge is None:
            if run % (MAX_NET_CHARGE + 1) == 0:
                magnitudes = rng.permutation(MAX_NET_CHARGE + 1)
            charge = int(magnitudes[run % (MAX_NET_CHARGE + 1)]) * int(rng.choice((-1, 1)))
        if attempts == MAX_ATTEMPTS:
            raise RuntimeError(
                f"{MAX_ATTEMPTS} clusters in a row with charge {charge:+d} e lost an ion "
                f"at {TEMPERATURE_K:g} K; raise min_atoms (got {min_atoms})"
            )
        attempts += 1
        n_na, n_cl, positions = cluster(_draw_atoms(min_atoms, max_atoms, rng), charge, rng)
        topology = droplet_topology(0, n_na, n_cl)
        system = create_system(force_field, topology)
        integrator = openmm.LangevinMiddleIntegrator(
            TEMPERATURE_K * unit.kelvin,
            FRICTION_PER_PS / unit.picosecond,
            TIMESTEP_FS * unit.femtosecond,
        )
        integrator.setRandomNumberSeed(int(rng.integers(1, 2**31 - 1)))
        simulation = app.Simulation(topology, system, integrator, platform, properties)
        simulation.context.setPositions(positions / 10.0 * unit.nanometer)
        simulation.minimizeEnergy(maxIterations=MINIMISE_ITERATIONS)
        simulation.context.setVelocitiesToTemperature(
            TEMPERATURE_K * unit.kelvin, int(rng.integers(1, 2**31 - 1))
        )
        simulation.step(EQUILIBRATION_STEPS)
        step = EQUILIBRATION_STEPS
        reference = _reference_context(create_system(force_field, topology))
        numbers = _numbers(0, n_na, n_cl)
        kept: list[Atoms] = []
        for _ in range(min(SNAPSHOTS_PER_RUN, structures - len(frames))):
            simulation.step(SNAPSHOT_INTERVAL)
            step += SNAPSHOT_INTERVAL
            state = simulation.context.getState(getPositions=True)
            positions_a = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
            positions_a = np.round(np.asarray(positions_a, dtype=np.float64), DECIMALS)
            if not _connected(positions_a, CONTACT_A):
                break
            energy, forces = label(reference, positions_a)
            frame = Atoms(numbers, positions=positions_a)
            frame.info.update(charge=n_na - n_cl, n_na=n_na, n_cl=n_cl, run=run, md_step=step)
            frame.info["energy"] = energy
            frame.arrays["forces"] = forces
            kept.append(frame)
        description = f"{len(numbers)} atoms ({n_na} Na+, {n_cl} Cl-, {charge:+d} e)"
        if len(kept) < min(SNAPSHOTS_PER_RUN, structures - len(frames)):
            print(f"discarded a run of {description}: an ion left the cluster")
            continue
        frames += kept
        if log:
            print(f"run {run}: {description}, {time.perf_counter() - start:.1f} s")
        run += 1
        charge = None
        attempts = 0
    return frames


def _diameters(frames: list[Atoms]) -> np.ndarray:
    # Largest distance between two atoms of each frame, Å.
    return np.array([np.sqrt(_squared_distances(frame).max()) for frame in frames])


def _squared_distances(frame: Atoms) -> np.ndarray:
    return np.square(frame.positions[:, None] - frame.positions).sum(axis=-1)


def _neighbours(frame: Atoms) -> tuple[np.ndarray, np.ndarray]:
    # Each ion's distance to its nearest other ion (Å) and its counterions within COORDINATION_A.
    squared = _squared_distances(frame)
    np.fill_diagonal(squared, np.inf)
    counter = (frame.numbers == NA_Z)[:, None] != (frame.numbers == NA_Z)[None]
    return np.sqrt(squared.min(axis=1)), ((squared < COORDINATION_A**2) & counter).sum(axis=1)


def _size_name(low: float, high: float) -> str:
    if low == 0:
        return f"N<{high}"
    return f"N>={low}" if high == math.inf else f"{low}<=N<{high}"


def long_range_diagnostic(frames: list[Atoms], *, structures: int = 40) -> dict[str, Any]:
    r"""How much of the energies and forces comes from beyond 5, 10 and 15 Å.

    For ``structures`` evenly spaced frames, the labels are recomputed with Coulomb and
    Lennard-Jones truncated at each cutoff of :data:`CUTOFFS_A` (5, 10 and 15 Å), plainly
    (``"plain_5A"``, ...; the force difference is exactly the force from the pairs beyond the
    cutoff) and with a shifted-force Coulomb (``"shifted_force_5A"``, ...), both
    :func:`truncated_system`, and compared with the full (``NoCutoff``) labels:

    .. math::
        \mathrm{force\_relative} = \frac{\mathrm{RMS}(F - F_\mathrm{cut})}{\mathrm{RMS}(F)},
        \qquad
        \mathrm{energy\_relative} = \frac{\mathrm{RMS}_i\big((E_i - E_{\mathrm{cut},i}) / N_i\big)}
        {\mathrm{RMS}_i(E_i / N_i)}

    over all force components and structures :math:`i`, and ``energy_residual_relative``, the
    same ratio for the residuals of least-squares fits of per-species reference energies (Na+
    and Cl-) over the chosen frames, which a model is trained with and which absorb a
    per-species offset.

    Returns:
        A JSON-ready dict: the settings, and for each method the figures over all chosen
        frames (``"all"``), by absolute net charge (``"|charge|=k"``) and by atom count
        (``"N<120"``, ``"120<=N<240"``, ...).
    """
    force_field = _force_field()
    chosen = np.unique(np.linspace(0, len(frames) - 1, min(structures, len(frames))).round())
    chosen = chosen.astype(int).tolist()
    methods = [f"{kind}_{cutoff:g}A" for kind in ("plain", "shifted_force") for cutoff in CUTOFFS_A]
    rows: list[dict[str, Any]] = []
    for position in chosen:
        frame = frames[position]
        info = frame.info
        full = create_system(force_field, droplet_topology(0, info["n_na"], info["n_cl"]))
        systems = [
            truncated_system(full, cutoff / 10, shifted_force=shifted)
            for shifted in (False, True)
            for cutoff in CUTOFFS_A
        ]
        row: dict[str, Any] = {"charge": int(info["charge"]), "natoms": len(frame)}
        row["counts"] = [info["n_na"], info["n_cl"]]
        row["full"] = (info["energy"], frame.arrays["forces"])
        for method, system in zip(methods, systems):
            row[method] = label(_reference_context(system), frame.positions)
        rows.append(row)
    counts = np.array([row["counts"] for row in rows], dtype=np.float64)
    natoms = np.array([row["natoms"] for row in rows], dtype=np.float64)

    def residual_per_atom(energies: np.ndarray) -> np.ndarray:
        solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
        return (energies - counts @ solution) / natoms

    # The references leave a residual only with more compositions than they have parameters.
    fit_references = len(np.unique(counts, axis=0)) > np.linalg.matrix_rank(counts)
    energy = np.array([row["full"][0] for row in rows])
    groups = {"all": np.ones(len(rows), dtype=bool)}
    for charge in sorted({abs(row["charge"]) for row in rows}):
        groups[f"|charge|={charge}"] = np.array([abs(row["charge"]) == charge for row in rows])
    edges = (0, *SIZE_EDGES, math.inf)
    for low, high in zip(edges[:-1], edges[1:]):
        if ((natoms >= low) & (natoms < high)).any():
            groups[_size_name(low, high)] = (natoms >= low) & (natoms < high)
    result: dict[str, Any] = {
        "cutoffs_A": list(CUTOFFS_A),
        "methods": methods,
        "frames": chosen,
        "atoms": int(natoms.sum()),
    }
    for method in methods:
        result[method] = method_figures(
            rows, method, groups, energy, natoms, residual_per_atom if fit_references else None
        )
    return result


def _print_diagnostic(diagnostic: dict[str, Any]) -> None:
    print(
        f"long-range diagnostic, {len(diagnostic['frames'])} structures, "
        f"{diagnostic['atoms']:,} atoms:"
    )
    print_figures(diagnostic, diagnostic["methods"])


def main(argv: list[str] | None = None) -> None:
    """Generate the structures, write them and print statistics and the long-range diagnostic.

    Args:
        argv: command-line arguments; default ``sys.argv[1:]``.
    """
    parser = generator_parser(
        __doc__.split("\n\n")[0], Path(SALT_CLUSTERS_SAMPLE_PATH), 100, 60, 700, "cluster"
    )
    args = parser.parse_args(argv)
    if args.structures < 1:
        raise SystemExit(f"--structures must be positive, got {args.structures}")
    smallest = 2 * MAX_NET_CHARGE + 2
    if not smallest <= args.min_atoms <= args.max_atoms:
        raise SystemExit(
            f"need {smallest} <= --min-atoms <= --max-atoms, "
            f"got {args.min_atoms} and {args.max_atoms}"
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
    diameters = _diameters(frames)
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"wrote {args.output}: {os.path.getsize(args.output):,} bytes, sha256 {digest}")
    print(
        f"{len(frames)} structures from {len({f.info['run'] for f in frames})} runs, "
        f"{natoms.sum():,} atoms, {natoms.min()}-{natoms.max()} per structure "
        f"(mean {natoms.mean():.1f}, median {np.median(natoms):.0f})"
    )
    print(
        f"diameter (largest distance between two ions) {diameters.min():.1f}-"
        f"{diameters.max():.1f} A (mean {diameters.mean():.1f}, median "
        f"{np.median(diameters):.1f}); {(diameters > 15).sum()} structures wider than 15 A, "
        f"{(diameters > 25).sum()} wider than 25 A"
    )
    nearest, coordination = (np.concatenate(v) for v in zip(*map(_neighbours, frames)))
    print(
        f"nearest other ion within {nearest.max():.2f} A of every ion (min {nearest.min():.2f} A); "
        f"counterions within {COORDINATION_A} A: mean {coordination.mean():.2f}, "
        f"{(coordination == 6).mean():.1%} of the ions have 6 (rock salt), "
        f"{(coordination <= 3).mean():.1%} have 3 or fewer"
    )
    values, counts = np.unique(charges, return_counts=True)
    print("net charge: " + ", ".join(f"{v:+d} e: {c}" for v, c in zip(values, counts)))
    print_labels(frames, ((NA_Z, "Na"), (CL_Z, "Cl")))
    if args.diagnostic_structures:
        diagnostic = long_range_diagnostic(frames, structures=args.diagnostic_structures)
        _print_diagnostic(diagnostic)
        if args.diagnostic_json:
            write_diagnostic(diagnostic, args.output, digest)

if __name__ == "__main__":
    main()
