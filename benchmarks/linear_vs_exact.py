"""FLTNet linear mode against exact mode, at its shipped settings, fresh and trained.

For the model of the shipped ``qm9`` configuration (the default of ``flt3d train``), on the
test molecules of the bundled QM9 sample, in eval mode:

- ``repr linear/exact``: relative difference of the per-atom representation (the features the
  head reads) between linear and exact mode, ``|h_lin - h_exact| / |h_exact|`` over all atoms,
  for several stored draws of random features (mean and worst);
- ``repr rotation``: relative change of the linear-mode representation when every molecule
  is rotated (three random rotations, worst);
- ``pred rotation / MAE``: mean absolute change of the linear-mode predictions under those
  rotations, over the model's own test MAE (exact mode);
- ``MAE linear`` and ``MAE exact``: test MAE in each mode.

Two models: freshly initialised (seed 0), and trained by ``flt3d train`` with its defaults
(pass ``--checkpoint`` to reuse a run; otherwise this trains one, about four minutes)::

    python benchmarks/linear_vs_exact.py
    python benchmarks/linear_vs_exact.py --checkpoint runs/qm9/checkpoints/best.ckpt
    python benchmarks/linear_vs_exact.py --quick     # a fresh model only, seconds
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch_geometric.data import Batch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, environment, format_table, write_json  # noqa: E402

# the bars of the linear-mode issue
REPR_BAR = 0.05
ROTATION_BAR = 0.05
PREDICTION_BAR = 0.1


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@torch.no_grad()
def measure(model, molecules, *, draws: int = 5, rotations: int = 3) -> dict:
    from flt3d.nn import FLTAttention, set_attention
    from flt3d.testing import random_rotation

    batch = Batch.from_data_list(list(molecules))
    z, pos, index = batch.z, batch.pos.to(torch.float32), batch.batch
    y = batch.y.reshape(batch.num_graphs, -1)
    model.eval()
    set_attention(model, "exact")
    exact_h = model.representation(z, pos, index)
    exact_pred = model(z, pos, index)
    column = model.config.get("target")
    from flt3d.datasets import target_index

    truth = y[:, target_index(column)] if y.shape[1] > 1 else y[:, 0]
    mae_exact = float((exact_pred.reshape(-1) - truth).abs().mean())
    set_attention(model, "linear")
    repr_errors, mae_linear = [], []
    for seed in range(draws):
        gen = torch.Generator().manual_seed(seed)
        for m in model.modules():
            if isinstance(m, FLTAttention):
                m.redraw_features(generator=gen)
                m.redraw_frequencies(generator=gen)
        repr_errors.append(relative(model.representation(z, pos, index), exact_h))
        mae_linear.append(float((model(z, pos, index).reshape(-1) - truth).abs().mean()))
    linear_h = model.representation(z, pos, index)
    linear_pred = model(z, pos, index)
    rot_repr, rot_pred = [], []
    for seed in range(rotations):
        rot = random_rotation(dtype=torch.float32, generator=torch.Generator().manual_seed(seed))
        turned = pos @ rot.T
        rot_repr.append(relative(model.representation(z, turned, index), linear_h))
        rot_pred.append(float((model(z, turned, index) - linear_pred).abs().mean()))
    return {
        "molecules": batch.num_graphs,
        "repr_linear_vs_exact_mean": sum(repr_errors) / len(repr_errors),
        "repr_linear_vs_exact_max": max(repr_errors),
        "repr_rotation_max": max(rot_repr),
        "pred_rotation_over_mae": max(rot_pred) / mae_exact,
        "mae_exact": mae_exact,
        "mae_linear": sum(mae_linear) / len(mae_linear),
    }


def shipped_model():
    from flt3d.models import FLTNet
    from flt3d.training.config import load_config

    config = load_config("qm9")
    torch.manual_seed(0)
    return FLTNet(**config["model"]), config


def test_molecules(limit: int):
    from flt3d.datasets import QM9

    with tempfile.TemporaryDirectory() as root:
        dataset = QM9(root, sample=True, log=False)
        _, _, test = dataset.standard_split(seed=0)
        return [dataset[int(i)] for i in test[:limit]]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="a trained qm9 checkpoint")
    parser.add_argument("--quick", action="store_true", help="the fresh model only")
    parser.add_argument("--molecules", type=int, default=332, help="test molecules used")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    molecules = test_molecules(args.molecules)
    model, _ = shipped_model()
    stats_note = "fresh model: statistics fitted on the sample's training part"
    from flt3d.datasets import QM9
    from flt3d.models import fit_statistics

    with tempfile.TemporaryDirectory() as root:
        dataset = QM9(root, sample=True, log=False)
        train, _, _ = dataset.standard_split(seed=0)
        model.set_statistics(*fit_statistics(model, [dataset[int(i)] for i in train]))
    rows = {"fresh": measure(model, molecules)}
    if not args.quick:
        checkpoint = args.checkpoint
        if checkpoint is None:
            output = tempfile.mkdtemp(prefix="flt3d-linear-")
            subprocess.run(
                [sys.executable, "-m", "flt3d.cli", "train", "--output", output], check=True
            )
            checkpoint = str(Path(output) / "checkpoints" / "best.ckpt")
        from flt3d.training.run import load_module

        _, module, _ = load_module(checkpoint)
        rows["trained"] = measure(module.model, molecules)
    headers = [
        "model",
        "repr lin/exact",
        "(worst)",
        "repr rotation",
        "pred rot / MAE",
        "MAE exact",
        "MAE linear",
    ]
    table = format_table(
        headers,
        [
            [
                name,
                r["repr_linear_vs_exact_mean"],
                r["repr_linear_vs_exact_max"],
                r["repr_rotation_max"],
                r["pred_rotation_over_mae"],
                r["mae_exact"],
                r["mae_linear"],
            ]
            for name, r in rows.items()
        ],
    )
    print(table)
    checks = []
    for name, r in rows.items():
        checks.append(
            f"{name}: linear vs exact ≤ {REPR_BAR:.0%}: "
            f"{'PASS' if r['repr_linear_vs_exact_max'] <= REPR_BAR else 'FAIL'}; rotation ≤ "
            f"{ROTATION_BAR:.0%}: {'PASS' if r['repr_rotation_max'] <= ROTATION_BAR else 'FAIL'}; "
            f"predictions ≤ {PREDICTION_BAR} × MAE: "
            f"{'PASS' if r['pred_rotation_over_mae'] <= PREDICTION_BAR else 'FAIL'}"
        )
    print("\n".join(checks))
    payload = {
        "benchmark": "linear_vs_exact",
        "rows": rows,
        "checks": checks,
        "note": stats_note,
        "table": table,
        "environment": environment(1),
    }
    path = args.json or (None if args.quick else RESULTS_DIR / "linear_vs_exact.json")
    if path:
        print(f"wrote {write_json(path, payload)}")
    return payload


if __name__ == "__main__":
    main()
