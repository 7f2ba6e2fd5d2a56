"""Energies and forces where far atoms matter: FLTNet with a global part against local models.

Three data sets shipped with flt3d, split by MD run (snapshots of one run are near-copies, so
a run is never on both sides), 80 % of the runs for training:

- ``emt``: copper clusters with ASE's EMT potential (short range; ``datasets/emt_copper.md``);
- ``ion_water``: water droplets with Na+ / Cl- ions, amber14 / TIP3P with exact Coulomb in
  OpenMM (long range, but screened by the water, and the droplets, 12-18 Å across, are barely
  wider than a local model's receptive field; ``datasets/ion_water.md``);
- ``salt``: charged NaCl clusters, 15-37 Å across, Joung-Cheatham ions with exact Coulomb in
  OpenMM (long range, unscreened: 24 % of the force RMS is beyond a 5 Å shifted-force cut;
  ``datasets/salt_clusters.md``).

Models, trained for the same CPU time on the same batches with the same loss (0.01 × squared
energy error per structure over the training energies' residual std, plus squared
force-component error over the training forces' RMS, as SchNetPack weighs them; forces by
autograd) and AdamW with warm-up and cosine
decay over the budget:

- ``flt_local``: FLTNet in linear mode, local only: attention and filters within its 5 Å
  cutoff (``far_attention=False``), nothing beyond;
- ``flt_far``: FLTNet's default: the same, plus softmax attention beyond the cutoff through
  the content kernel (random features): it can average far atoms' features, but not weigh
  them by distance;
- ``flt_global``: ``flt_far`` plus the global low-rank parts: a long-range spectral filter
  (``long_range_filter``) and a long-range attention RPE (``long_range``), O(N);
- ``flt_charges``: ``flt_local`` plus latent charges (``latent_charges``,
  :class:`~flt3d.nn.LatentCharges`): per-atom charges read from the local representation,
  interacting over the whole structure through learned smooth kernels, a global FLT spectral
  filter, O(N) in linear mode. It trains with the kernel in ``--charges-attention`` mode
  (default exact: the same function, and cheaper at these sizes) and is evaluated in both;
  its kernel family is ``--charges-spectrum`` (Gaussian mixtures, or ``coulomb``: erf(r/σ)/r,
  :class:`~flt3d.nn.CoulombKernel`);
- ``schnet``: PyG's SchNet on the same vesin neighbour list (5 Å).

Then, in the same run, the cost of energy + forces of ``flt_global`` and ``flt_charges`` in
linear mode on atom
clouds of water density (0.1 atoms/Å^3) from 10^3 to 10^5 atoms: CPU time per atom and peak
resident memory, each size in a fresh process.

    python benchmarks/forces_long_range.py                  # ~45 minutes on 2 cores
    python benchmarks/forces_long_range.py --quick          # two minutes
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS_DIR,
    environment,
    format_table,
    parameter_count,
    train_for_budget,
    write_json,
)

VARIANTS = ("flt_local", "flt_far", "flt_global", "flt_charges", "schnet")
LABELS = {
    "flt_local": "FLTNet local",
    "flt_far": "FLTNet + far kernel",
    "flt_global": "FLTNet + far + long range",
    "flt_charges": "FLTNet local + latent charges",
    "schnet": "SchNet",
}
DATASETS = ("emt", "ion_water", "salt")
CUTOFF = 5.0
SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
FORCE_RATIO_BAR = 0.7
MEMORY_BAR_GB = 8.0
FLAT_BAR = 0.3
EVAL_FREQUENCIES = (128, 1024, 4096, 16384)  # the latent charges' kernel evaluated with more frequencies


def dataset_path(name: str) -> str:
    from flt3d.datasets import atoms

    return getattr(
        atoms,
        {
            "emt": "EMT_COPPER_SAMPLE_PATH",
            "ion_water": "ION_WATER_SAMPLE_PATH",
            "salt": "SALT_CLUSTERS_SAMPLE_PATH",
        }[name],
    )


def split_by_run(structures, seed: int, train_share: float = 0.8):
    runs = sorted({int(s.y[0, 0]) for s in structures})
    order = np.random.default_rng(seed).permutation(len(runs))
    cut = max(1, round(train_share * len(runs)))
    train_runs = {runs[k] for k in order[:cut]}
    train = [s for s in structures if int(s.y[0, 0]) in train_runs]
    test = [s for s in structures if int(s.y[0, 0]) not in train_runs]
    return train, test


def statistics(train) -> dict:
    """Per-element references by least squares, the per-atom residual mean and std, and the
    loss scales: residual std per structure and force RMS."""
    elements = sorted({int(z) for s in train for z in s.z.tolist()})
    column = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(train), len(elements)))
    for row, s in enumerate(train):
        for z in s.z.tolist():
            counts[row, column[z]] += 1
    energy = np.array([float(s.energy) for s in train])
    refs, *_ = np.linalg.lstsq(counts, energy, rcond=None)
    residual = energy - counts @ refs
    atoms = counts.sum(1)
    per_atom = residual / atoms
    forces = torch.cat([s.forces.reshape(-1) for s in train]).double()
    return {
        "elements": elements,
        "atomref": {z: float(refs[column[z]]) for z in elements},
        "mean": float(per_atom.mean()),
        "std": float(per_atom.std()) or 1.0,
        "energy_scale": float(residual.std()) or 1.0,
        "force_scale": float(forces.pow(2).mean().sqrt()) or 1.0,
    }


class NeighborGraph(nn.Module):
    """SchNet's ``interaction_graph`` on flt3d's vesin neighbour list (no self pairs), with
    distances differentiable in the positions (forces)."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        from flt3d.nn import neighbor_list
        from flt3d.nn.graph import distance

        neighbors = neighbor_list(pos, batch, cutoff=self.cutoff)
        return neighbors.index, distance(neighbors.displacements(pos))


def build(variant: str, stats: dict, args) -> nn.Module:
    if variant == "schnet":
        from torch_geometric.nn.models import SchNet

        atomref = torch.zeros(100, 1)
        for z, value in stats["atomref"].items():
            atomref[z, 0] = value
        return SchNet(
            hidden_channels=args.hidden,
            num_filters=args.hidden,
            num_interactions=3,
            num_gaussians=50,
            cutoff=CUTOFF,
            interaction_graph=NeighborGraph(CUTOFF),
            mean=stats["mean"],
            std=stats["std"],
            atomref=atomref,
        )
    from flt3d.models import FLTNet

    extra = {"far_attention": False} if variant == "flt_local" else {}
    if variant == "flt_global":
        extra = {"long_range_filter": "isotropic_mixture", "long_range": "isotropic_mixture"}
    if variant == "flt_charges":
        extra = {
            "far_attention": False,
            "latent_charges": args.latent_charges,
            # a local model's only low-rank part is the charges' kernel
            "num_frequencies": args.charge_frequencies,
            "charges_spectrum": getattr(args, "charges_spectrum", "isotropic_mixture"),
            "neutral_charges": getattr(args, "neutral_charges", False),
        }
    options = dict(
        hidden_channels=args.hidden,
        num_layers=getattr(args, "flt_layers", 2),
        heads=4,
        target="energy",
        attention="linear",
        cutoff=CUTOFF,
        long_range_length_scale=args.long_range_length_scale,
        elements=stats["elements"],
        mean=stats["mean"],
        std=stats["std"],
        atomref=stats["atomref"],
        **extra,
    )
    model = FLTNet(**{**options, **flt_options(getattr(args, "flt_option", None) or [])})
    if model.charges is not None:
        model.charges.kernel.attention = args.charges_attention
    return model


def flt_options(pairs: list[str]) -> dict:
    """``--flt-option KEY=VALUE`` pairs as FLTNet keyword arguments (values read as YAML)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--flt-option: expected KEY=VALUE, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


def model_lr(variant: str, args) -> float:
    """The peak learning rate of ``variant``: ``--flt-lr`` for the FLTNet variants where given,
    else ``--lr``."""
    flt_lr = getattr(args, "flt_lr", None)
    return flt_lr if flt_lr is not None and variant.startswith("flt") else args.lr


def energy_and_forces(model: nn.Module, batch, *, create_graph: bool):
    from flt3d.nn.pairs import differentiable_pair_sums

    pos = batch.pos.detach().requires_grad_(True)
    with torch.enable_grad(), differentiable_pair_sums():
        energy = model(batch.z, pos, batch.batch).reshape(-1)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
    return energy, -grad


def evaluate(model: nn.Module, structures, batch_size: int = 8) -> dict:
    from torch_geometric.data import Batch

    model.eval()
    e_err, f_err, n_forces = 0.0, 0.0, 0
    for start in range(0, len(structures), batch_size):
        batch = Batch.from_data_list(structures[start : start + batch_size])
        energy, forces = energy_and_forces(model, batch, create_graph=False)
        e_err += float((energy.detach() - batch.energy.reshape(-1)).abs().sum())
        f_err += float((forces - batch.forces).abs().sum())
        n_forces += forces.numel()
    return {
        "energy_mae_mev": 1000 * e_err / len(structures),
        "force_mae_mev_per_A": 1000 * f_err / n_forces,
    }


def run_one(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    from torch_geometric.data import Batch

    from flt3d.datasets import read_structures

    args = argparse.Namespace(**job["args"])
    structures = read_structures(dataset_path(job["dataset"]), properties=["run"])
    train, test = split_by_run(structures, seed=args.seed)
    stats = statistics(train)
    torch.manual_seed(args.seed)
    model = build(job["variant"], stats, args)
    lr = model_lr(job["variant"], args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    order: list[int] = []

    def next_batch():
        nonlocal order
        if len(order) < args.batch_size:
            order = list(rng.permutation(len(train)))
        picked, order = order[: args.batch_size], order[args.batch_size :]
        return Batch.from_data_list([train[k] for k in picked])

    def loss_fn(net, batch):
        energy, forces = energy_and_forces(net, batch, create_graph=True)
        e = (energy - batch.energy.reshape(-1).to(energy.dtype)) / stats["energy_scale"]
        f = (forces - batch.forces) / stats["force_scale"]
        return args.energy_weight * e.pow(2).mean() + f.pow(2).mean()

    result = train_for_budget(
        model,
        optimizer,
        next_batch,
        loss_fn,
        budget_seconds=args.budget_seconds,
        lr=lr,
        max_steps=getattr(args, "steps", None),
    )
    result.update(evaluate(model, test))
    if getattr(model, "charges", None) is not None:  # the latent charges' kernel in both modes
        trained_mode = model.charges.kernel.attention
        for mode in ("exact", "linear"):
            model.charges.kernel.attention = mode
            result.update({f"{k}_{mode}": v for k, v in evaluate(model, test).items()})
        # more frequencies at evaluation only: the estimator's error, at O(N R) cost
        model.charges.kernel.attention = "linear"
        for num in EVAL_FREQUENCIES:
            model.charges.kernel.spectrum.set_num_frequencies(
                num, generator=torch.Generator().manual_seed(args.seed)
            )
            result.update({f"{k}_linear_{num}": v for k, v in evaluate(model, test).items()})
        model.charges.kernel.attention = trained_mode
    forces = torch.cat([s.forces.reshape(-1) for s in test])
    result.update(
        dataset=job["dataset"],
        variant=job["variant"],
        lr=lr,
        params=parameter_count(model),
        train_structures=len(train),
        test_structures=len(test),
        test_atoms_mean=float(np.mean([s.num_nodes for s in test])),
        test_force_std_mev_per_A=1000 * float(forces.std()),
    )
    return result


LOCAL = ("flt_local", "schnet")
GLOBAL = ("flt_far", "flt_global", "flt_charges")
LONG_RANGE_SETS = ("ion_water", "salt")
RECOMMENDED = "flt_charges"


def long_range_checks(rows: list[dict]) -> list[str]:
    """Each global variant's force MAE over the best local model's on the long-range sets (bar
    <= 0.7 for the recommended one) and over each local model's on the short-range set (bar
    <= 1 against both: not worse than either)."""
    by = {(r["dataset"], r["variant"]): r["force_mae_mev_per_A"] for r in rows}
    checks = []
    for data in (*LONG_RANGE_SETS, "emt"):
        if not all((data, v) in by for v in LOCAL):
            continue
        for variant in GLOBAL:
            if (data, variant) not in by:
                continue
            recommended = variant == RECOMMENDED
            if data != "emt":
                ratio = by[data, variant] / min(by[data, v] for v in LOCAL)
                verdict = f" (bar <= {FORCE_RATIO_BAR:g}): " + (
                    "MET" if ratio <= FORCE_RATIO_BAR else "NOT MET"
                )
                checks.append(
                    f"{data}: {LABELS[variant]} / best local force MAE = {ratio:.3f}"
                    + (verdict if recommended else "")
                )
                continue
            ratios = [by[data, variant] / by[data, v] for v in LOCAL]
            verdict = " (bar <= 1 against each): " + ("MET" if max(ratios) <= 1 else "NOT MET")
            checks.append(
                f"{data}: {LABELS[variant]} / {LABELS[LOCAL[0]]}, / {LABELS[LOCAL[1]]} force MAE "
                f"= {ratios[0]:.3f}, {ratios[1]:.3f}" + (verdict if recommended else "")
            )
    return checks


COST_VARIANTS = ("flt_global", "flt_charges")


def cost_case(n: int, variant: str = "flt_global", seed: int = 0) -> dict:
    """Energy + forces of a global FLTNet in linear mode (eval mode: inference) on one cloud."""
    from flt3d.models import FLTNet

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    extra = (
        {"long_range_filter": "isotropic_mixture", "long_range": "isotropic_mixture"}
        if variant == "flt_global"
        else {"far_attention": False, "latent_charges": 8, "long_range_length_scale": 3.0}
    )
    model = FLTNet(
        hidden_channels=64, num_layers=2, heads=4, target="energy", attention="linear",
        cutoff=CUTOFF, elements=(1, 8, 11, 17), **extra,
    ).eval()  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    pos = (n / 0.1) ** (1 / 3) * torch.rand(n, 3, generator=gen)
    z = torch.tensor([1, 1, 8, 11, 17])[torch.randint(0, 5, (n,), generator=gen)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.process_time()
    energy, forces = model.energy_and_forces(z, pos)
    cpu = time.process_time() - start
    assert torch.isfinite(forces).all()
    return {
        "variant": variant,
        "n": n,
        "cpu_seconds": cpu,
        "cpu_us_per_atom": 1e6 * cpu / n,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "baseline_rss_gb": base,
    }


def cost_curve(sizes, variant: str) -> list[dict]:
    rows = []
    for n in sizes:
        code = (
            "import json, forces_long_range as b; "
            f"print(json.dumps(b.cost_case({n}, {variant!r})))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            rows.append({"variant": variant, "n": n, "error": out.stderr.strip().splitlines()[-1:]})
            break
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def cost_checks(cost: list[dict]) -> list[str]:
    """Flat time per atom (+-30 % of its median from 10^3 up) and the memory bar at 10^5."""
    checks = []
    for variant in COST_VARIANTS:
        done = [r for r in cost if r["variant"] == variant and "error" not in r]
        if not done:
            continue
        per_atom = [r["cpu_us_per_atom"] for r in done if r["n"] >= 1000] or [1.0]
        median = float(np.median(per_atom))
        spread = max(abs(x / median - 1) for x in per_atom)
        biggest = done[-1]
        checks.append(
            f"{LABELS[variant]}: time per atom within +-{FLAT_BAR:.0%} of its median from 10^3 "
            f"up: worst {spread:+.0%}: {'MET' if spread <= FLAT_BAR else 'NOT MET'}"
        )
        checks.append(
            f"{LABELS[variant]}: energy + forces, N = {biggest['n']}: "
            f"{biggest['peak_rss_gb']:.2f} GB peak RSS (bar <= {MEMORY_BAR_GB} GB at 10^5): "
            + ("MET" if biggest["n"] >= 100_000 and biggest["peak_rss_gb"] <= MEMORY_BAR_GB
               else "NOT MET" if biggest["n"] >= 100_000 else "not measured")
        )  # fmt: skip
    return checks


def report(rows: list[dict], cost: list[dict]) -> tuple[str, str, list[str]]:
    """Print and return the accuracy table, the cost table and the checks."""
    table = format_table(
        ["data", "model", "params", "steps", "CPU s", "energy MAE meV", "force MAE meV/Å",
         "force std meV/Å", "test atoms"],
        [[r["dataset"], LABELS[r["variant"]], r["params"], r["steps"], r["cpu_seconds"],
          r["energy_mae_mev"], r["force_mae_mev_per_A"], r["test_force_std_mev_per_A"],
          r["test_atoms_mean"]] for r in rows],
    )  # fmt: skip
    print(table)
    checks = long_range_checks(rows)
    for r in rows:
        if "force_mae_mev_per_A_linear" in r:
            checks.append(
                f"{r['dataset']}: {LABELS[r['variant']]}, kernel exact / linear (one stored "
                "draw): force MAE "
                f"{r['force_mae_mev_per_A_exact']:.1f} / {r['force_mae_mev_per_A_linear']:.1f} "
                f"meV/Å, energy MAE {r['energy_mae_mev_exact']:.0f} / "
                f"{r['energy_mae_mev_linear']:.0f} meV"
                + "".join(
                    f"; linear with {num} frequencies: {r[f'force_mae_mev_per_A_linear_{num}']:.1f}"
                    for num in EVAL_FREQUENCIES
                    if f"force_mae_mev_per_A_linear_{num}" in r
                )
            )
    cost_rows = [
        [LABELS[r["variant"]], r["n"], r["cpu_seconds"], r["cpu_us_per_atom"], r["peak_rss_gb"]]
        if "error" not in r
        else [LABELS[r["variant"]], r["n"], "-", "-", f"failed: {r['error']}"]
        for r in cost
    ]
    cost_table = ""
    if cost_rows:  # --sizes with no value skips the cost curve
        cost_table = format_table(["model", "N", "CPU s", "CPU µs/atom", "peak RSS GB"], cost_rows)
        print(cost_table)
    checks += cost_checks(cost)
    for line in checks:
        print(line)
    return table, cost_table, checks


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-seconds", type=float, default=240.0, help="CPU s per model")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--flt-layers", type=int, default=2, help="FLTNet's blocks")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument(
        "--flt-lr",
        type=float,
        default=None,
        help="peak learning rate of the FLTNet variants (default: --lr), for a rate chosen per "
        "model",
    )
    parser.add_argument(
        "--flt-option",
        action="append",
        metavar="KEY=VALUE",
        help="a further FLTNet option for the FLTNet variants (repeatable; VALUE read as YAML)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train each model for this many steps instead of --budget-seconds (equal steps)",
    )
    parser.add_argument(
        "--energy-weight",
        type=float,
        default=0.01,
        help="weight of the energy term against the force term (1: forces barely train on "
        "ion water, where the energy's gradient is ~400 x the forces')",
    )
    parser.add_argument("--long-range-length-scale", type=float, default=3.0)
    parser.add_argument("--latent-charges", type=int, default=8, help="flt_charges' channels")
    parser.add_argument(
        "--charge-frequencies", type=int, default=16, help="frequencies of the charges' kernel"
    )
    parser.add_argument(
        "--charges-spectrum",
        default="isotropic_mixture",
        choices=("isotropic_mixture", "coulomb"),
        help="family of the latent charges' kernels (Gaussians in distance, or 1/r)",
    )
    parser.add_argument(
        "--neutral-charges",
        action="store_true",
        help="flt_charges' charges sum to zero per structure (for neutral data: EMT)",
    )
    parser.add_argument(
        "--charges-attention",
        default="exact",
        choices=("exact", "linear"),
        help="mode the latent charges' kernel trains in (evaluated in both)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument(
        "--cost-variants", nargs="+", default=list(COST_VARIANTS), choices=COST_VARIANTS
    )
    parser.add_argument("--quick", action="store_true", help="tiny budget, small sizes")
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--recheck", default=None, metavar="JSON", help="recompute the checks of a run's JSON"
    )
    args = parser.parse_args(argv)
    if args.recheck is not None:  # the tables and checks of an earlier run, by this code
        payload = json.loads(Path(args.recheck).read_text())
        table, cost_table, checks = report(payload["rows"], payload["cost"])
        payload.update(table=table, cost_table=cost_table, checks=checks)
        print(f"wrote {write_json(args.recheck, payload)}")
        return payload
    if args.quick:
        args.budget_seconds, args.sizes = 5.0, [300, 1000]
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "quick")}
    jobs = [
        {"dataset": d, "variant": v, "threads": 1, "args": settings}
        for d in args.datasets
        for v in args.variants
    ]
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        rows = pool.map(run_one, jobs)
    cost = [row for v in args.cost_variants for row in cost_curve(args.sizes, v)]
    table, cost_table, checks = report(rows, cost)
    payload = {
        "benchmark": "forces_long_range",
        "settings": settings,
        "quick": args.quick,
        "rows": rows,
        "cost": cost,
        "checks": checks,
        "table": table,
        "cost_table": cost_table,
        "environment": environment(1),
    }
    default = "forces_long_range_quick.json" if args.quick else "forces_long_range.json"
    print(f"wrote {write_json(args.json or RESULTS_DIR / default, payload)}")
    return payload


if __name__ == "__main__":
    main()
