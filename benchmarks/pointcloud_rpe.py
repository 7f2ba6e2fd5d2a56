"""The learned spectral RPE on 3D point clouds, at equal parameters and equal CPU time.

Four variants of :class:`flt3d.models.PointCloudClassifier`, the same model otherwise:

- ``flt_rpe``: FLT, linear attention with the learned isotropic spectral RPE (the model's
  default, ``positional="rpe"``);
- ``performer``: linear (FAVOR+) attention without any positions (``positional="none"``). The
  model then sees the points' normals as a bag: what (a) gains over it is what the geometry of
  the cloud adds, through the RPE alone;
- ``performer_ape``: linear attention with a learned absolute positional encoding (the centred
  coordinates embedded linearly and added to the features, ``positional="absolute"``);
- ``exact_rpe``: exact softmax attention with the same RPE as ``flt_rpe``;
- ``flt_local`` (not in the default run, ``--variants flt_local``): ``flt_rpe`` with the RPE
  exact within a cutoff of 0.4 on a neighbour list and the spectral filter beside the
  attention, as FLTNet for molecules.

Data: the ten classes of synthetic shapes shipped with flt3d (``datasets/shapes.md``; 400
training and 100 test shapes) or, with ``--path DIR``, a folder in the ModelNet layout
(``DIR/<class>/{train,test}/*.off``), read by :class:`flt3d.datasets.ModelNetFolder` with
``--num-points`` points per shape (128 by default, as the ``pointcloud`` config), normals as
the features. Every variant trains on all the training shapes in the same batch order (a
permutation per epoch from a generator seeded with the run's seed) with the same augmentation
(:func:`flt3d.datasets.shape_augmentation`: rotation about ``z``, scaling, jitter, drawn from
random states seeded with the seed and the step, so every variant sees the same clouds), the
same optimiser (AdamW, weight decay on matrices only, as ``flt3d train``) and the same schedule
(warm-up then cosine decay over the CPU budget), for the same CPU seconds
(:func:`time.process_time`, one thread per process); then it classifies the test shapes.

Hidden widths are adjusted per variant so that every model has the parameter count of
``flt_rpe`` within ±10 % (here they differ by the few spectral and embedding parameters, so
the widths come out equal). Reported: test accuracy per variant and seed, the mean over seeds,
and the RPE's margin over no RPE and over absolute positions, printed whether or not it holds.

Rotations: the RPE models are trained with the rotation about ``z`` in the augmentation, so
they should have learned to ignore it (the normals they read turn with the cloud, so nothing
makes them invariant by construction). After training, each RPE model is evaluated in exact
and in linear mode (:func:`flt3d.nn.set_attention`, the same weights) on the test clouds and
on ``--rotations`` copies of each, turned about ``z`` by angles drawn uniformly (the same
angles for every model), and the change of the predicted class probabilities is reported:
``mean |dp|``, the mean over clouds, angles and classes of :math:`|p_c(Rx) - p_c(x)|` (the
acceptance: at most 0.05 in exact mode); ``TV``, the mean total variation
:math:`\\tfrac12\\sum_c |p_c(Rx) - p_c(x)|`, which bounds the change of any one class's
probability; and the share of predictions that change.

Default run (4 variants x 2 seeds x 240 CPU s in 2 processes: about 16 minutes) and a smoke
run (< 60 s)::

    python benchmarks/pointcloud_rpe.py
    python benchmarks/pointcloud_rpe.py --quick
"""

from __future__ import annotations

import os

# Spinning OpenMP threads would charge a run for other processes' load (see qm9_budget.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
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

VARIANTS = {
    "flt_rpe": {
        "label": "(a) FLT, learned spectral RPE",
        "positional": "rpe",
        "attention": "linear",
    },
    "performer": {
        "label": "(b) Performer, no RPE",
        "positional": "none",
        "attention": "linear",
    },
    "performer_ape": {
        "label": "(c) Performer, absolute PE",
        "positional": "absolute",
        "attention": "linear",
    },
    "exact_rpe": {
        "label": "(d) exact softmax, same RPE",
        "positional": "rpe",
        "attention": "exact",
    },
    "flt_local": {
        "label": "(e) FLT, RPE exact within 0.4 + filter",
        "positional": "rpe",
        "attention": "linear",
        "cutoff": 0.4,
        "spectral_filter": True,
    },
}
DEFAULT_VARIANTS = ("flt_rpe", "performer", "performer_ape", "exact_rpe")
"""The default run's variants (``flt_local`` runs on request)."""
REFERENCE = "flt_rpe"
BASELINES = ("performer", "performer_ape")
MODES = ("exact", "linear")
PARAM_TOLERANCE = 0.10
ROTATION_TOLERANCE = 0.05
# the angles of the rotation test come from this seed, whatever the run's seed
ROTATION_SEED = 12345


# --------------------------------------------------------------------------- models


def build_model(variant: str, hidden: int, args, num_classes: int) -> nn.Module:
    from flt3d.models import PointCloudClassifier

    spec = VARIANTS[variant]
    return PointCloudClassifier(
        num_classes,
        in_channels=3,
        hidden_channels=hidden,
        num_layers=args.layers,
        heads=args.heads,
        positional=spec["positional"],
        attention=spec["attention"],
        num_features=args.num_features,
        num_frequencies=args.num_frequencies,
        length_scale=args.length_scale,
        cutoff=spec.get("cutoff"),
        spectral_filter=spec.get("spectral_filter", False),
    )


def matched_hidden(variant: str, base: int, args, num_classes: int) -> tuple[int, int, int]:
    """Hidden width (a multiple of ``heads``) whose parameter count is closest to the reference.

    Returns ``(hidden, parameters, reference_parameters)``.
    """
    reference = parameter_count(build_model(REFERENCE, base, args, num_classes))
    best = None
    low = max(args.heads, base // 2 // args.heads * args.heads)
    for hidden in range(low, 2 * base + 1, args.heads):
        count = parameter_count(build_model(variant, hidden, args, num_classes))
        if best is None or abs(count - reference) < abs(best[1] - reference):
            best = (hidden, count)
    return best[0], best[1], reference


# --------------------------------------------------------------------------- data


def load_splits(args, *, log: bool = False):
    """``(train, test, folder)``: the two splits as ``ModelNetFolder`` datasets."""
    from flt3d.datasets.pointclouds import ModelNetFolder, shapes_sample_root

    folder = shapes_sample_root() if args.path is None else os.path.abspath(args.path)
    options = {"num_points": args.num_points, "seed": 0, "log": log}
    train = ModelNetFolder(folder, args.root, split="train", **options)
    test = ModelNetFolder(folder, args.root, split="test", **options)
    if "normal" not in train[0]:
        raise ValueError(f"the shapes of {folder!r} have no normals; the models read them")
    return train, test, folder


def augmented(clouds: list, transform, seed: int, step: int) -> list:
    """``transform`` applied to copies of ``clouds`` with random states fixed by (seed, step).

    PyG's transforms draw from Python's and torch's global generators; seeding both here, and
    restoring them after, gives every variant the same augmented clouds at the same step,
    whatever the model itself draws.
    """
    state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        key = (seed << 32) + step
        torch.manual_seed(key)
        random.seed(key)
        try:
            return [transform(cloud.clone()) for cloud in clouds]
        finally:
            random.setstate(state)


def batch_source(train, args, seed: int):
    """A callable returning the next training batch, in an order the same for all variants."""
    from torch_geometric.data import Batch

    from flt3d.datasets.pointclouds import shape_augmentation

    clouds = [train[i] for i in range(len(train))]
    transform = shape_augmentation()
    size = min(args.batch_size, len(clouds))
    order = torch.Generator().manual_seed(seed)
    queue: list[Tensor] = []
    state = {"step": 0}

    def next_batch():
        if not queue:
            perm = torch.randperm(len(clouds), generator=order)
            queue.extend(perm[: len(clouds) // size * size].split(size))
        index = queue.pop(0)
        chosen = augmented([clouds[i] for i in index.tolist()], transform, seed, state["step"])
        state["step"] += 1
        return Batch.from_data_list(chosen)

    return next_batch


def loss_fn(model: nn.Module, batch) -> Tensor:
    return F.cross_entropy(model(batch.normal, batch.pos, batch.batch), batch.y.reshape(-1))


# --------------------------------------------------------------------------- evaluation


def rotate_z(cloud, angle: float):
    """A copy of ``cloud`` with ``pos`` and ``normal`` turned by ``angle`` (radians) about z."""
    c, s = math.cos(angle), math.sin(angle)
    matrix = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=cloud.pos.dtype)
    out = cloud.clone()
    out.pos = cloud.pos @ matrix.T
    out.normal = cloud.normal @ matrix.T
    return out


@torch.no_grad()
def probabilities(model: nn.Module, clouds: list, batch_size: int = 50) -> Tensor:
    """Class probabilities ``[len(clouds), C]`` in eval mode."""
    from torch_geometric.data import Batch

    model.eval()
    out = []
    for start in range(0, len(clouds), batch_size):
        batch = Batch.from_data_list(clouds[start : start + batch_size])
        out.append(model(batch.normal, batch.pos, batch.batch).softmax(-1))
    return torch.cat(out)


def accuracy(probs: Tensor, labels: Tensor) -> float:
    return float((probs.argmax(-1) == labels).float().mean())


def rotation_change(model: nn.Module, clouds: list, angles: Tensor) -> dict:
    """How much the predicted probabilities move when the clouds turn about z.

    ``angles`` is ``[len(clouds), K]``: cloud ``i`` is turned by each of its ``K`` angles.
    Returns ``mean_abs_change`` (mean over clouds, angles and classes of ``|dp|``),
    ``total_variation`` (mean over clouds and angles of ``sum_c |dp_c| / 2``) and
    ``flip_rate`` (share of turned clouds whose predicted class changes).
    """
    if angles.dim() != 2 or angles.shape[0] != len(clouds):
        raise ValueError(f"angles must be [{len(clouds)}, K], got {tuple(angles.shape)}")
    base = probabilities(model, clouds)
    change, flips = [], []
    for k in range(angles.shape[1]):
        turned = [rotate_z(c, float(a)) for c, a in zip(clouds, angles[:, k])]
        probs = probabilities(model, turned)
        change.append((probs - base).abs())
        flips.append(probs.argmax(-1) != base.argmax(-1))
    change = torch.stack(change)  # [K, n, C]
    return {
        "mean_abs_change": float(change.mean()),
        "total_variation": float(0.5 * change.sum(-1).mean()),
        "flip_rate": float(torch.stack(flips).float().mean()),
    }


def rotation_angles(num_clouds: int, rotations: int) -> Tensor:
    """The angles of the rotation test, ``[num_clouds, rotations]``, the same for every model."""
    generator = torch.Generator().manual_seed(ROTATION_SEED)
    return 2 * math.pi * torch.rand(num_clouds, rotations, generator=generator, dtype=torch.float64)


# --------------------------------------------------------------------------- runs


def run_one(job: dict) -> dict:
    from flt3d.nn import set_attention
    from flt3d.training.optim import configure_optimizers

    args, variant, seed = job["args"], job["variant"], job["seed"]
    torch.set_num_threads(args.threads)
    train, test, _ = load_splits(args)
    torch.manual_seed(seed)
    model = build_model(variant, job["hidden"], args, train.num_classes)
    # AdamW with flt3d's parameter groups; train_for_budget sets the rate at every step
    options = {"lr": args.lr, "weight_decay": args.weight_decay, "schedule": "constant"}
    optimizer = configure_optimizers(model, total_steps=None, monitor="", **options)
    optimizer = optimizer["optimizer"]
    wall = time.perf_counter()
    log = train_for_budget(
        model,
        optimizer,
        batch_source(train, args, seed),
        loss_fn,
        budget_seconds=args.budget_seconds,
        lr=args.lr,
        clip_norm=1.0,
    )
    clouds = [test[i] for i in range(len(test))]
    labels = torch.cat([c.y for c in clouds])
    row = {
        "variant": variant,
        "model": VARIANTS[variant]["label"],
        "seed": seed,
        "trained_in": VARIANTS[variant]["attention"],
        "test_accuracy": accuracy(probabilities(model, clouds), labels),
        "hidden_channels": job["hidden"],
        "parameters": parameter_count(model),
        "parameter_ratio": parameter_count(model) / job["reference_parameters"],
        "train_steps": log["steps"],
        "epochs": round(log["steps"] * args.batch_size / len(train), 2),
        "cpu_seconds": log["cpu_seconds"],
        "final_train_loss": log["final_train_loss"],
    }
    if VARIANTS[variant]["positional"] == "rpe":
        angles = rotation_angles(len(clouds), args.rotations)
        row["by_mode"] = {}
        for mode in MODES:
            set_attention(model, mode)
            row["by_mode"][mode] = {
                "test_accuracy": accuracy(probabilities(model, clouds), labels),
                **rotation_change(model, clouds, angles),
            }
        set_attention(model, VARIANTS[variant]["attention"])
    row["wall_seconds"] = round(time.perf_counter() - wall, 1)
    return row


def run_jobs(jobs: list[dict], processes: int) -> list[dict]:
    if processes > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            return list(pool.map(run_one, jobs))
    return [run_one(job) for job in jobs]


# --------------------------------------------------------------------------- claims


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def margins(rows: list[dict]) -> dict:
    """The RPE's margin in test accuracy over no RPE and over absolute positions.

    Per baseline: the mean accuracies over seeds, the margin of ``flt_rpe`` (percentage
    points, mean over the seeds both ran), the margin per seed, and ``held`` (the mean margin
    is positive); ``None`` where a variant did not run.
    """
    acc = {(r["variant"], r["seed"]): r["test_accuracy"] for r in rows}
    out = {}
    for baseline in BASELINES:
        seeds = sorted({s for v, s in acc if v == REFERENCE} & {s for v, s in acc if v == baseline})
        if not seeds:
            out[baseline] = {"margin_points": None, "per_seed": {}, "held": None}
            continue
        per_seed = {s: 100 * (acc[(REFERENCE, s)] - acc[(baseline, s)]) for s in seeds}
        margin = _mean(list(per_seed.values()))
        out[baseline] = {
            "rpe_accuracy": _mean([acc[(REFERENCE, s)] for s in seeds]),
            "baseline_accuracy": _mean([acc[(baseline, s)] for s in seeds]),
            "margin_points": margin,
            "per_seed": per_seed,
            "held": margin > 0,
        }
    return out


def rotation_check(rows: list[dict], tolerance: float = ROTATION_TOLERANCE) -> dict:
    """Mean over seeds of the rotation measurements of each RPE model in each mode.

    ``held``: every RPE model, evaluated in exact mode, changes its probabilities by at most
    ``tolerance`` on average (``mean_abs_change``); ``None`` without an RPE model. Linear mode
    is reported beside it.
    """
    per_model: dict = {}
    for variant in VARIANTS:
        measured = [r for r in rows if r["variant"] == variant and "by_mode" in r]
        if not measured:
            continue
        per_model[variant] = {
            mode: {
                key: _mean([r["by_mode"][mode][key] for r in measured])
                for key in ("mean_abs_change", "total_variation", "flip_rate", "test_accuracy")
            }
            for mode in MODES
        }
    exact = [m["exact"]["mean_abs_change"] for m in per_model.values()]
    return {
        "tolerance": tolerance,
        "per_model": per_model,
        "held": all(v <= tolerance for v in exact) if exact else None,
    }


def claim_lines(summary: dict) -> list[str]:
    """One line per claim, with the numbers it was decided on, whether it held or not."""
    lines = []
    for baseline, m in summary["margins"].items():
        name = VARIANTS[baseline]["label"]
        if m["margin_points"] is None:
            lines.append(f"RPE (a) over {name}: not measured")
            continue
        seeds = ", ".join(f"{p:+.1f}" for p in m["per_seed"].values())
        lines.append(
            f"RPE (a) over {name}: {'HELD' if m['held'] else 'NOT HELD'} "
            f"({100 * m['rpe_accuracy']:.1f} % vs {100 * m['baseline_accuracy']:.1f} %, "
            f"margin {m['margin_points']:+.1f} points; per seed {seeds})"
        )
    check = summary["rotations"]
    if check["held"] is not None:
        parts = "; ".join(
            f"{VARIANTS[v]['label'][:3]} exact {m['exact']['mean_abs_change']:.3f} / "
            f"{m['exact']['total_variation']:.3f}, linear {m['linear']['mean_abs_change']:.3f} / "
            f"{m['linear']['total_variation']:.3f}"
            for v, m in check["per_model"].items()
        )
        lines.append(
            f"rotation about z changes probabilities by <= {check['tolerance']:g} in exact "
            f"mode: {'HELD' if check['held'] else 'NOT HELD'} (mean |dp| / TV: {parts})"
        )
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run (small models, 32 points, 1 CPU s per run, one process)",
    )
    parser.add_argument("--path", default=None, help="ModelNet-style folder (default: shapes)")
    parser.add_argument(
        "--root", default=None, help="processed-data cache (default $FLT3D_DATA/shapes)"
    )
    parser.add_argument(
        "--variants", nargs="+", default=list(DEFAULT_VARIANTS),
        choices=list(VARIANTS),
    )  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--budget-seconds", type=float, default=240.0, help="CPU s per run")
    parser.add_argument("--processes", type=int, default=2, help="runs in parallel")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--num-points", type=int, default=128, help="points per shape")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument(
        "--hidden", type=int, default=64, help="width of (a); the others are matched to it"
    )
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--num-features", type=int, default=64)
    parser.add_argument("--num-frequencies", type=int, default=16)
    parser.add_argument("--length-scale", type=float, default=0.1)
    parser.add_argument("--rotations", type=int, default=8, help="turned copies of each test cloud")
    parser.add_argument(
        "--json",
        default=None,
        help="output JSON (default benchmarks/results/pointcloud_rpe.json; "
        "quick runs: pointcloud_rpe_quick.json)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.processes = 1
        args.num_points = min(args.num_points, 32)
        args.hidden, args.layers, args.heads = 16, 1, 2
        args.num_features, args.num_frequencies = 8, 4
        args.budget_seconds = min(args.budget_seconds, 1.0)
        args.rotations = min(args.rotations, 2)
    if not args.budget_seconds > 0:
        parser.error(f"--budget-seconds must be positive, got {args.budget_seconds}")
    if args.processes < 1 or args.threads < 1 or args.rotations < 1:
        parser.error("--processes, --threads and --rotations must be at least 1")
    args.seeds = sorted(set(args.seeds))
    args.variants = [v for v in VARIANTS if v in args.variants]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train, test, folder = load_splits(args, log=True)  # processes the cache once, here
    print(
        f"{folder}: {train.num_classes} classes, {len(train)} training and {len(test)} test "
        f"shapes of {args.num_points} points"
    )
    jobs, sizes = [], []
    for variant in args.variants:
        hidden, count, reference = matched_hidden(variant, args.hidden, args, train.num_classes)
        if abs(count / reference - 1) > PARAM_TOLERANCE:
            raise RuntimeError(
                f"{variant}: no width within ±10 % of {reference} parameters "
                f"(closest: {count} at hidden {hidden})"
            )
        sizes.append((VARIANTS[variant]["label"], hidden, count, count / reference))
        for seed in args.seeds:
            jobs.append(
                {
                    "args": args,
                    "variant": variant,
                    "seed": seed,
                    "hidden": hidden,
                    "reference_parameters": reference,
                }
            )
    print(format_table(["model", "hidden", "params", "/ (a)"], sizes))
    print(
        f"{args.budget_seconds:g} CPU s per run, {len(jobs)} runs, {args.threads} thread(s), "
        f"{args.processes} process(es): about "
        f"{args.budget_seconds * len(jobs) / min(args.processes, len(jobs)) / 60:.1f} minutes"
    )
    rows = run_jobs(jobs, args.processes)

    table = format_table(
        ["model", "seed", "params", "steps", "epochs", "CPU s", "test acc %"],
        [
            [
                r["model"],
                r["seed"],
                r["parameters"],
                r["train_steps"],
                r["epochs"],
                r["cpu_seconds"],
                100 * r["test_accuracy"],
            ]
            for r in rows
        ],
    )
    means = {
        v: _mean([r["test_accuracy"] for r in rows if r["variant"] == v]) for v in args.variants
    }
    mean_table = format_table(
        ["model", "seeds", "mean test acc %"],
        [[VARIANTS[v]["label"], len(args.seeds), 100 * means[v]] for v in args.variants],
    )
    rotation_table = format_table(
        ["model", "seed", "evaluated in", "test acc %", "mean |dp|", "TV", "flips %"],
        [
            [
                r["model"],
                r["seed"],
                mode,
                100 * m["test_accuracy"],
                m["mean_abs_change"],
                m["total_variation"],
                100 * m["flip_rate"],
            ]
            for r in rows
            if "by_mode" in r
            for mode, m in r["by_mode"].items()
        ],
    )
    print(table)
    print(mean_table)
    print(f"test clouds turned about z by {args.rotations} random angles each:")
    print(rotation_table)
    summary = {"mean_test_accuracy": means, "margins": margins(rows)}
    summary["rotations"] = rotation_check(rows)
    lines = claim_lines(summary)
    for line in lines:
        print(line)
    payload = {
        "benchmark": "pointcloud_rpe",
        "dataset": folder,
        "classes": list(train.classes),
        "train_shapes": len(train),
        "test_shapes": len(test),
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "environment": environment(args.threads),
        "rows": rows,
        "summary": summary,
        "claim_lines": lines,
        "table": table,
        "mean_table": mean_table,
        "rotation_table": rotation_table,
        "wall_seconds_total": round(time.perf_counter() - started, 1),
    }
    default = "pointcloud_rpe_quick.json" if args.quick else "pointcloud_rpe.json"
    path = write_json(args.json or RESULTS_DIR / default, payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
