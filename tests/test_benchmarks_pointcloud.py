"""``benchmarks/pointcloud_rpe.py``: the claims on hand-made rows, the parameter matching, the
shared batches and augmentation, the rotation measurement, and a quick run's JSON and tables.

The quick run trains eight tiny models for one CPU second each on the shipped shapes (about
20 s on an idle two-core machine, processing the shapes into a private cache included).
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("trimesh")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import pointcloud_rpe as bench  # noqa: E402


def row(variant, seed, accuracy, exact=None, linear=None):
    """A result row as ``run_one`` writes it; ``exact``/``linear``: mean |dp| in that mode."""
    out = {"variant": variant, "seed": seed, "test_accuracy": accuracy}
    if exact is not None:
        out["by_mode"] = {
            mode: {
                "mean_abs_change": change,
                "total_variation": 5 * change,
                "flip_rate": change,
                "test_accuracy": accuracy,
            }
            for mode, change in (("exact", exact), ("linear", linear))
        }
    return out


def test_margins_give_both_verdicts():
    rows = [
        row("flt_rpe", 0, 0.60, 0.01, 0.02),
        row("flt_rpe", 1, 0.50, 0.01, 0.02),
        row("performer", 0, 0.40),
        row("performer", 1, 0.52),
        row("performer_ape", 0, 0.70),
        row("performer_ape", 1, 0.60),
    ]
    m = bench.margins(rows)
    assert m["performer"]["held"] is True
    assert m["performer"]["margin_points"] == pytest.approx(9.0)  # (+20 - 2) / 2
    assert m["performer"]["per_seed"] == pytest.approx({0: 20.0, 1: -2.0})
    assert m["performer_ape"]["held"] is False
    assert m["performer_ape"]["margin_points"] == pytest.approx(-10.0)
    assert m["performer_ape"]["rpe_accuracy"] == pytest.approx(0.55)
    lines = bench.claim_lines({"margins": m, "rotations": bench.rotation_check(rows)})
    assert lines[0].startswith("RPE (a) over (b) Performer, no RPE: HELD (55.0 % vs 46.0 %")
    assert lines[1].startswith("RPE (a) over (c) Performer, absolute PE: NOT HELD")
    assert "margin -10.0 points; per seed -10.0, -10.0" in lines[1]


def test_margins_pair_seeds_and_leave_missing_variants_out():
    rows = [row("flt_rpe", 0, 0.5), row("flt_rpe", 1, 0.9), row("performer", 1, 0.8)]
    m = bench.margins(rows)
    assert m["performer"]["per_seed"] == pytest.approx({1: 10.0})  # seed 0 has no baseline
    assert m["performer_ape"]["held"] is None
    lines = bench.claim_lines({"margins": m, "rotations": bench.rotation_check(rows)})
    assert lines[1] == "RPE (a) over (c) Performer, absolute PE: not measured"
    assert len(lines) == 2  # no rotation line without measurements


def test_rotation_check_gives_both_verdicts():
    good = [row("flt_rpe", 0, 0.5, 0.02, 0.2), row("exact_rpe", 0, 0.5, 0.05, 0.3)]
    check = bench.rotation_check(good)
    assert check["held"] is True  # linear mode is reported, not judged
    assert check["per_model"]["flt_rpe"]["linear"]["mean_abs_change"] == pytest.approx(0.2)
    bad = [
        row("flt_rpe", 0, 0.5, 0.02, 0.0),
        row("flt_rpe", 1, 0.5, 0.10, 0.0),  # mean over seeds 0.06 > 0.05
        row("exact_rpe", 0, 0.5, 0.01, 0.0),
    ]
    check = bench.rotation_check(bad)
    assert check["held"] is False
    assert check["per_model"]["flt_rpe"]["exact"]["mean_abs_change"] == pytest.approx(0.06)
    lines = bench.claim_lines({"margins": bench.margins(bad), "rotations": check})
    assert lines[-1].startswith(
        "rotation about z changes probabilities by <= 0.05 in exact mode: NOT HELD"
    )
    assert "(a) exact 0.060 / 0.300, linear 0.000 / 0.000" in lines[-1]
    assert bench.rotation_check([row("performer", 0, 0.5)])["held"] is None


@pytest.mark.parametrize("argv", [[], ["--quick"], ["--hidden", "48", "--heads", "8"]])
def test_parameter_matching_stays_within_ten_percent(argv):
    args = bench.parse_args(argv)
    counts = {}
    # the neighbour-list variant (e) only at the default widths: 8 heads leave it no width
    # within 10 %
    variants = list(bench.VARIANTS) if args.heads == 4 else bench.DEFAULT_VARIANTS
    for variant in variants:
        hidden, count, reference = bench.matched_hidden(variant, args.hidden, args, 10)
        assert hidden % args.heads == 0
        assert abs(count / reference - 1) <= bench.PARAM_TOLERANCE
        model = bench.build_model(variant, hidden, args, 10)
        assert bench.parameter_count(model) == count
        assert model.positional == bench.VARIANTS[variant]["positional"]
        assert model.attention == bench.VARIANTS[variant]["attention"]
        counts[variant] = count
    # the exact variant is the reference model in the other mode: the same parameters
    assert counts["exact_rpe"] == counts["flt_rpe"]


def test_augmentation_and_batches_are_the_same_for_every_variant():
    from torch_geometric.data import Data

    from flt3d.datasets import shape_augmentation

    gen = torch.Generator().manual_seed(0)
    clouds = [
        Data(pos=torch.randn(8, 3, generator=gen), normal=torch.randn(8, 3, generator=gen), y=y)
        for y in torch.arange(10).view(-1, 1)
    ]
    originals = [c.pos.clone() for c in clouds]
    transform = shape_augmentation()
    torch.manual_seed(5)
    random.seed(5)
    before = torch.get_rng_state(), random.getstate()
    first = bench.augmented(clouds[:3], transform, seed=1, step=4)
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    torch.rand(7)  # a model drawing random features in between
    again = bench.augmented(clouds[:3], transform, seed=1, step=4)
    later = bench.augmented(clouds[:3], transform, seed=1, step=5)
    for a, b, c, original in zip(first, again, later, clouds):
        assert torch.equal(a.pos, b.pos) and torch.equal(a.normal, b.normal)
        assert not torch.allclose(a.pos, c.pos)
        assert not torch.allclose(a.pos, original.pos)
    assert all(torch.equal(c.pos, p) for c, p in zip(clouds, originals))  # copies turned

    args = bench.parse_args(["--batch-size", "4"])
    one, two = bench.batch_source(clouds, args, 0), bench.batch_source(clouds, args, 0)
    other = bench.batch_source(clouds, args, 1)
    labels = []
    for _ in range(4):  # two epochs of two batches (10 clouds, the last two dropped)
        a = one()
        torch.rand(3)
        b = two()
        assert torch.equal(a.y, b.y) and torch.equal(a.pos, b.pos)
        assert torch.equal(a.normal, b.normal)
        labels.append(a.y)
    assert len(set(torch.cat(labels[:2]).tolist())) == 8  # no cloud twice in an epoch
    assert not all(torch.equal(a, other().y) for a in labels)


class _Radial(nn.Module):
    """Logits from distances to the origin only: unchanged by any rotation about z."""

    def __init__(self, directional: bool = False) -> None:
        super().__init__()
        self.directional = directional

    def forward(self, x, pos, batch):
        from torch_geometric.nn import global_mean_pool

        feature = pos.norm(dim=1, keepdim=True)
        if self.directional:
            feature = feature + 3 * pos[:, :1] + x[:, 1:2]
        pooled = global_mean_pool(feature, batch)
        return torch.cat([pooled, -pooled, 0 * pooled], dim=1) * 4


def test_rotation_change_is_zero_for_an_invariant_model_only():
    from torch_geometric.data import Data

    gen = torch.Generator().manual_seed(1)
    clouds = [
        Data(pos=torch.randn(16, 3, generator=gen), normal=torch.randn(16, 3, generator=gen))
        for _ in range(6)
    ]
    angles = bench.rotation_angles(len(clouds), 3)
    assert angles.shape == (6, 3) and torch.equal(angles, bench.rotation_angles(6, 3))
    assert bool(((angles >= 0) & (angles < 2 * math.pi)).all())
    invariant = bench.rotation_change(_Radial(), clouds, angles)
    assert invariant["mean_abs_change"] < 1e-6 and invariant["flip_rate"] == 0.0
    moved = bench.rotation_change(_Radial(directional=True), clouds, angles)
    assert moved["mean_abs_change"] > 0.01
    assert moved["total_variation"] == pytest.approx(1.5 * moved["mean_abs_change"])  # 3 classes
    turned = bench.rotate_z(clouds[0], math.pi / 2)
    assert torch.allclose(turned.pos[:, 0], -clouds[0].pos[:, 1], atol=1e-6)
    assert torch.allclose(turned.normal[:, 2], clouds[0].normal[:, 2])
    with pytest.raises(ValueError, match=r"angles must be \[6, K\]"):
        bench.rotation_change(_Radial(), clouds, angles[:2])


def test_quick_run_writes_rows_tables_and_claims(tmp_path):
    out = tmp_path / "pointcloud_rpe.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FLT3D_DATA": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pointcloud_rpe.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    expected = {(v, s) for v in bench.DEFAULT_VARIANTS for s in (0, 1)}
    assert {(r["variant"], r["seed"]) for r in rows} == expected and len(rows) == 8
    assert payload["train_shapes"] == 400 and payload["test_shapes"] == 100
    assert payload["config"]["budget_seconds"] == 1.0 and payload["config"]["num_points"] == 32
    for r in rows:
        assert 0 <= r["test_accuracy"] <= 1
        assert r["train_steps"] >= 1 and r["cpu_seconds"] >= 1.0
        assert abs(r["parameter_ratio"] - 1) <= bench.PARAM_TOLERANCE
        rpe = bench.VARIANTS[r["variant"]]["positional"] == "rpe"
        assert ("by_mode" in r) == rpe
        if rpe:
            assert set(r["by_mode"]) == {"exact", "linear"}
            trained = r["by_mode"][r["trained_in"]]
            assert trained["test_accuracy"] == r["test_accuracy"]
            for m in r["by_mode"].values():
                assert 0 <= m["mean_abs_change"] <= m["total_variation"] <= 1
                assert 0 <= m["flip_rate"] <= 1
    summary = payload["summary"]
    for name, m in summary["margins"].items():
        assert m["held"] == (m["margin_points"] > 0)
        acc = {r["seed"]: r["test_accuracy"] for r in rows if r["variant"] == name}
        ref = {r["seed"]: r["test_accuracy"] for r in rows if r["variant"] == "flt_rpe"}
        assert m["margin_points"] == pytest.approx(50 * sum(ref[s] - acc[s] for s in (0, 1)))
    assert isinstance(summary["rotations"]["held"], bool)
    assert set(summary["rotations"]["per_model"]) == {"flt_rpe", "exact_rpe"}
    # the tables: one line per run, per variant and per (RPE run, mode), under two header lines
    table = payload["table"].splitlines()
    assert len(table) == 2 + 8 and table[0].split()[0] == "model"
    assert table[2].startswith("(a) FLT, learned spectral RPE")
    assert len(payload["mean_table"].splitlines()) == 2 + 4
    rotation = payload["rotation_table"].splitlines()
    assert len(rotation) == 2 + 8 and "evaluated in" in rotation[0]
    assert [line.split()[-5] for line in rotation[2:4]] == ["exact", "linear"]
    lines = payload["claim_lines"]
    assert len(lines) == 3 and all(("HELD" in line) for line in lines)
    for line in lines:
        assert line in result.stdout
