r"""Write copper clusters from Langevin MD, labelled with ASE's EMT potential, as extxyz.

Each MD run starts from a copper cluster built by ``ase.cluster`` (icosahedra, decahedra,
octahedra, a Wulff construction and a cubic cluster of 13 to 147 atoms, more with a larger
``--max-atoms``), drawn with probability proportional to :math:`1 / N` so that small clusters
dominate, with up to three random vacancies in clusters above 13 atoms. The cluster is
rattled, given Maxwell-Boltzmann velocities and thermalised with ``ase.md.langevin.Langevin``
(centre of mass fixed with ``ase.constraints.FixCom``) at a temperature drawn from 300, 500, 700 and 1000 K (2 fs steps up to 500 K, 1 fs above) for
200 fs; then a snapshot is taken every 10 steps, five per run. Positions are rounded to the
8 decimals that extxyz stores before the EMT energy and forces are computed, so recomputing
EMT on the file's coordinates reproduces its labels to float rounding.

Energies go to ``info["energy"]`` (eV), forces to ``arrays["forces"]`` (eV/Å); each frame also
has ``info["cluster"]`` (the starting shape), ``info["run"]`` (the MD run, for splits that keep
correlated snapshots together), ``info["temperature_K"]`` and ``info["md_step"]``. Everything
is drawn from one ``numpy.random.default_rng(--seed)``, so a rerun with the same ASE and NumPy
writes the same file.

Usage (from the repository root, with ``pip install 'flt3d[molecules]'``)::

    python datasets/make_emt_copper.py
    python datasets/make_emt_copper.py --structures 2000 --max-atoms 400 --seed 1 \
        --output emt_copper_2000.extxyz
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.emt import EMT
from ase.cluster import Decahedron, Icosahedron, Octahedron, wulff_construction
from ase.cluster.cubic import FaceCenteredCubic
from ase.constraints import FixCom
from ase.io import write
from ase.md.langevin import Langevin

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ASE < 3.29
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

from flt3d.datasets.atoms import EMT_COPPER_SAMPLE_PATH

TEMPERATURES_K = (300.0, 500.0, 700.0, 1000.0)
EQUILIBRATION_FS = 200.0
SNAPSHOT_INTERVAL = 10  # MD steps between snapshots
SNAPSHOTS_PER_RUN = 5
FRICTION = 0.01 / units.fs
RATTLE_A = 0.05
MAX_VACANCIES = 3
DECIMALS = 8  # extxyz writes coordinates with %16.8f

_FACETS = [(1, 0, 0), (1, 1, 0), (1, 1, 1)]

CLUSTERS: dict[str, Callable[[], Atoms]] = {
    "icosahedron-13": lambda: Icosahedron("Cu", 2),
    "octahedron-19": lambda: Octahedron("Cu", 3),
    "decahedron-23": lambda: Decahedron("Cu", 3, 1, 0),
    "truncated-octahedron-38": lambda: Octahedron("Cu", 4, 1),
    "wulff-43": lambda: wulff_construction(
        "Cu", _FACETS, [1.0, 1.1, 0.9], 45, "fcc", rounding="closest"
    ),
    "octahedron-44": lambda: Octahedron("Cu", 4),
    "icosahedron-55": lambda: Icosahedron("Cu", 3),
    "cubic-63": lambda: FaceCenteredCubic("Cu", [(1, 0, 0), (1, 1, 1)], [2, 3]),
    "decahedron-75": lambda: Decahedron("Cu", 2, 2, 1),
    "truncated-octahedron-79": lambda: Octahedron("Cu", 5, 1),
    "truncated-octahedron-116": lambda: Octahedron("Cu", 6, 2),
    "decahedron-146": lambda: Decahedron("Cu", 3, 2, 1),
    "icosahedron-147": lambda: Icosahedron("Cu", 4),
    "decahedron-192": lambda: Decahedron("Cu", 3, 3, 1),
    "truncated-octahedron-201": lambda: Octahedron("Cu", 7, 2),
    "icosahedron-309": lambda: Icosahedron("Cu", 5),
}
"""Starting clusters, by name; the number is the atom count before vacancies."""


def _cluster(name: str, rng: np.random.Generator) -> Atoms:
    atoms = CLUSTERS[name]()
    atoms = Atoms(atoms.numbers, positions=atoms.positions)  # drop tags, cell and constraints
    vacancies = int(rng.integers(0, MAX_VACANCIES + 1)) if len(atoms) > 13 else 0
    if vacancies:
        del atoms[sorted(rng.choice(len(atoms), size=vacancies, replace=False).tolist())]
    atoms.positions += rng.normal(scale=RATTLE_A, size=atoms.positions.shape)
    return atoms


def _snapshot(atoms: Atoms, **info: object) -> Atoms:
    frame = Atoms(atoms.numbers, positions=np.round(atoms.positions, DECIMALS))
    frame.calc = EMT()
    energy = frame.get_potential_energy()
    forces = frame.get_forces()
    frame.calc = None
    frame.info.update(info)
    frame.info["energy"] = float(energy)
    frame.arrays["forces"] = np.array(forces, dtype=np.float64)
    return frame


def generate(structures: int, max_atoms: int, seed: int) -> list[Atoms]:
    """Run the MD and return the labelled snapshots.

    Args:
        structures: number of snapshots.
        max_atoms: largest starting cluster, in atoms (at least 13).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``structures`` frames with ``info["energy"]`` and ``arrays["forces"]``.
    """
    names = [name for name, build in CLUSTERS.items() if len(build()) <= max_atoms]
    if not names:
        raise SystemExit(f"--max-atoms must be at least 13, got {max_atoms}")
    sizes = np.array([len(CLUSTERS[name]()) for name in names], dtype=np.float64)
    weights = (1.0 / sizes) / (1.0 / sizes).sum()
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = []
    run = 0
    while len(frames) < structures:
        name = names[int(rng.choice(len(names), p=weights))]
        temperature = float(rng.choice(TEMPERATURES_K))
        timestep_fs = 2.0 if temperature <= 500 else 1.0
        atoms = _cluster(name, rng)
        atoms.calc = EMT()
        atoms.set_constraint(FixCom())
        thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
        dynamics = Langevin(
            atoms,
            timestep_fs * units.fs,
            temperature_K=temperature,
            friction=FRICTION,
            fixcm=False,
            rng=rng,
        )
        step = round(EQUILIBRATION_FS / timestep_fs)
        dynamics.run(step)
        for _ in range(min(SNAPSHOTS_PER_RUN, structures - len(frames))):
            dynamics.run(SNAPSHOT_INTERVAL)
            step += SNAPSHOT_INTERVAL
            frames.append(
                _snapshot(atoms, cluster=name, run=run, temperature_K=temperature, md_step=step)
            )
        run += 1
    return frames


def main(argv: list[str] | None = None) -> None:
    """Generate the structures and write them.

    Args:
        argv: command-line arguments; default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output", type=Path, default=Path(EMT_COPPER_SAMPLE_PATH), help="extxyz file to write"
    )
    parser.add_argument("--structures", type=int, default=300, help="snapshots to write")
    parser.add_argument("--max-atoms", type=int, default=150, help="largest starting cluster")
    parser.add_argument("--seed", type=int, default=0, help="seed of numpy.random.default_rng")
    args = parser.parse_args(argv)
    if args.structures < 1:
        raise SystemExit(f"--structures must be positive, got {args.structures}")

    frames = generate(args.structures, args.max_atoms, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write(args.output, frames, format="extxyz")

    natoms = np.array([len(frame) for frame in frames])
    energies = np.array([frame.info["energy"] for frame in frames])
    forces = np.concatenate([frame.arrays["forces"] for frame in frames])
    per_atom = energies / natoms
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"wrote {args.output}: {os.path.getsize(args.output):,} bytes, sha256 {digest}")
    print(
        f"{len(frames)} structures from {len({f.info['run'] for f in frames})} runs, "
        f"{natoms.sum():,} atoms, {natoms.min()}-{natoms.max()} per structure "
        f"(mean {natoms.mean():.1f}, median {np.median(natoms):.0f})"
    )
    print(
        f"energy {energies.mean():.4f} +- {energies.std():.4f} eV "
        f"[{energies.min():.4f}, {energies.max():.4f}]; per atom {per_atom.mean():.4f} "
        f"+- {per_atom.std():.4f} eV [{per_atom.min():.4f}, {per_atom.max():.4f}]"
    )
    print(
        f"force components {forces.mean():.2e} +- {forces.std():.4f} eV/A, "
        f"max |F| {np.linalg.norm(forces, axis=1).max():.4f} eV/A"
    )
    for temperature in TEMPERATURES_K:
        chosen = [f for f in frames if f.info["temperature_K"] == temperature]
        if chosen:
            std = np.concatenate([f.arrays["forces"] for f in chosen]).std()
            print(f"  {temperature:.0f} K: {len(chosen)} structures, force std {std:.4f} eV/A")
    for name in CLUSTERS:
        count = sum(frame.info["cluster"] == name for frame in frames)
        if count:
            print(f"  {name}: {count}")


if __name__ == "__main__":
    main()
