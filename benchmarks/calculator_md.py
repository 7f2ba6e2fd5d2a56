"""FLTNet energies and forces on copper clusters it has never seen: accuracy, NVE, relaxation.

1. Two fresh EMT copper files are generated with ``datasets/make_emt_copper.py`` under seeds
   the shipped sample does not use (training file and a separate evaluation file).
2. ``flt3d train --data TRAIN`` trains with its defaults (four CPU minutes), unless
   ``--checkpoint`` gives a run; ``flt3d eval --data EVAL`` then measures energy and force MAE
   on the other file; the bar: force MAE ≤ 0.25 × the std of its force components.
3. NVE with :class:`flt3d.calculators.FLTCalculator`: velocity Verlet, 0.5 fs, 1,000 steps, a
   55-atom icosahedron at 300 K; the total-energy drift (max |E(t) - E(0)| per atom) beside
   the same run with EMT itself. Bar: ≤ 1 meV/atom.
4. BFGS on a distorted 55-atom cluster to fmax 0.05 eV/Å with the FLT calculator; the EMT
   forces and energy at the relaxed geometry against an EMT relaxation from the same start.
5. Rotation: forces of a rotated cluster against the rotated forces, in exact and linear mode.

    python benchmarks/calculator_md.py                        # ~6 minutes
    python benchmarks/calculator_md.py --checkpoint runs/atoms/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, environment, format_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FORCE_BAR = 0.25  # × std of the force components
DRIFT_BAR_MEV = 1.0  # per atom
FMAX = 0.05


def generate(path: Path, seed: int, structures: int) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "datasets" / "make_emt_copper.py"), "--seed", str(seed),
         "--structures", str(structures), "--output", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def cli(*argv: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "flt3d.cli", *argv], check=True, capture_output=True, text=True
    )
    return out.stdout


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if f"MAE {name}:" in line:
            return float(line.split(":")[1].split()[0])
    raise RuntimeError(f"no {name} MAE in:\n{text}")


def nve(calc, *, steps: int, seed: int = 0) -> dict:
    from ase import units
    from ase.cluster import Icosahedron
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = Icosahedron("Cu", 3)  # 55 atoms
    atoms.rattle(0.02, seed=seed)
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    Stationary(atoms)
    start = atoms.get_total_energy()
    totals, temperatures = [], []
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)

    def record():
        totals.append(atoms.get_total_energy())
        temperatures.append(atoms.get_temperature())

    dyn.attach(record, interval=5)
    begin = time.process_time()
    dyn.run(steps)
    return {
        "atoms": len(atoms),
        "steps": steps,
        "drift_mev_per_atom": 1000 * float(np.abs(np.array(totals) - start).max()) / len(atoms),
        "mean_temperature_K": float(np.mean(temperatures)),
        "cpu_seconds": time.process_time() - begin,
    }


def relax(calc, *, seed: int = 1) -> dict:
    from ase.calculators.emt import EMT
    from ase.cluster import Icosahedron
    from ase.optimize import BFGS

    start = Icosahedron("Cu", 3)
    start.rattle(0.15, seed=seed)
    atoms = start.copy()
    atoms.calc = calc
    opt = BFGS(atoms, logfile=None)
    converged = bool(opt.run(fmax=FMAX, steps=1000))
    reference = start.copy()
    reference.calc = EMT()
    BFGS(reference, logfile=None).run(fmax=FMAX, steps=1000)
    check = atoms.copy()
    check.calc = EMT()
    return {
        "converged": converged,
        "steps": opt.get_number_of_steps(),
        "fmax_model": float(np.linalg.norm(atoms.get_forces(), axis=1).max()),
        "fmax_emt_at_result": float(np.linalg.norm(check.get_forces(), axis=1).max()),
        "emt_energy_at_result": float(check.get_potential_energy()),
        "emt_relaxed_energy": float(reference.get_potential_energy()),
    }


def rotation(model) -> dict:
    import torch
    from ase.cluster import Icosahedron

    from flt3d.nn import set_attention
    from flt3d.testing import random_rotation

    atoms = Icosahedron("Cu", 3)
    atoms.rattle(0.05, seed=2)
    z = torch.as_tensor(atoms.numbers)
    pos = torch.as_tensor(atoms.positions, dtype=torch.float64)
    out = {}
    net = model.double().eval()
    for mode in ("exact", "linear"):
        set_attention(net, mode)
        worst = 0.0
        _, f = net.energy_and_forces(z, pos)
        for seed in range(3):
            rot = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
            _, f_rot = net.energy_and_forces(z, pos @ rot.T)
            worst = max(worst, float((f_rot - f @ rot.T).abs().max() / f.abs().max()))
        out[mode] = worst
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="a run trained on EMT copper")
    parser.add_argument("--structures", type=int, default=300)
    parser.add_argument("--steps", type=int, default=1000, help="NVE steps")
    parser.add_argument("--quick", action="store_true", help="seconds: tiny run, 100 steps")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from ase.calculators.emt import EMT
    from ase.io import read

    from flt3d.calculators import FLTCalculator
    from flt3d.training.run import load_module

    work = Path(tempfile.mkdtemp(prefix="flt3d-md-"))
    train_file, eval_file = work / "train.extxyz", work / "eval.extxyz"
    structures = 40 if args.quick else args.structures
    generate(train_file, seed=11, structures=structures)
    generate(eval_file, seed=12, structures=max(structures // 3, 10))
    checkpoint = args.checkpoint
    if checkpoint is None:
        overrides = ["trainer.enable_progress_bar=false"]
        if args.quick:
            overrides.append("trainer.max_time=00:00:00:20")
        cli("train", "--data", str(train_file), "--output", str(work / "run"), "--set", *overrides)
        checkpoint = str(work / "run" / "checkpoints" / "best.ckpt")
    printed = cli("eval", "--checkpoint", checkpoint, "--data", str(eval_file))
    forces = np.concatenate([a.get_forces().ravel() for a in read(eval_file, ":")])
    force_std = float(forces.std()) * 1000
    force_mae, energy_mae = metric(printed, "forces"), metric(printed, "energy")
    steps = 100 if args.quick else args.steps
    _, module, _ = load_module(checkpoint)
    md = {"FLTNet": nve(FLTCalculator(module.model), steps=steps), "EMT": nve(EMT(), steps=steps)}
    relaxed = relax(FLTCalculator(module.model))
    rotated = rotation(module.model)
    rows = [
        ["force MAE / std (eval file)", f"{force_mae:.4g} / {force_std:.4g} meV/Å",
         force_mae / force_std, f"<= {FORCE_BAR}", force_mae <= FORCE_BAR * force_std],
        ["energy MAE (eval file)", f"{energy_mae:.4g} meV", "", "", ""],
        [f"NVE drift, {steps} x 0.5 fs", f"{md['FLTNet']['drift_mev_per_atom']:.4g} meV/atom",
         f"EMT {md['EMT']['drift_mev_per_atom']:.4g}", f"<= {DRIFT_BAR_MEV}",
         md["FLTNet"]["drift_mev_per_atom"] <= DRIFT_BAR_MEV],
        [f"BFGS to fmax {FMAX}", f"{relaxed['steps']} steps",
         f"EMT fmax there {relaxed['fmax_emt_at_result']:.3g} eV/Å", "converged",
         relaxed["converged"]],
        ["EMT energy at FLT minimum", f"{relaxed['emt_energy_at_result']:.4f} eV",
         f"EMT minimum {relaxed['emt_relaxed_energy']:.4f} eV", "", ""],
        ["rotated forces, exact", f"{rotated['exact']:.3g}", "", "<= 1e-5",
         rotated["exact"] <= 1e-5],
        ["rotated forces, linear", f"{rotated['linear']:.3g}", "", "reported", ""],
    ]  # fmt: skip
    for row in rows:
        if isinstance(row[-1], bool):
            row[-1] = "MET" if row[-1] else "NOT MET"
    table = format_table(["check", "FLTNet", "peer / ratio", "bar", ""], rows)
    print(table)
    payload = {
        "benchmark": "calculator_md",
        "checkpoint": checkpoint,
        "quick": args.quick,
        "force_mae_mev_per_A": force_mae,
        "force_std_mev_per_A": force_std,
        "energy_mae_mev": energy_mae,
        "nve": md,
        "relax": relaxed,
        "rotation_relative_error": rotated,
        "table": table,
        "environment": environment(1),
    }
    default = RESULTS_DIR / ("calculator_md_quick.json" if args.quick else "calculator_md.json")
    print(f"wrote {write_json(args.json or default, payload)}")
    return payload


if __name__ == "__main__":
    main()
