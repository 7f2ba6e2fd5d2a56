"""The claims of ``benchmarks/qm9_budget.py`` and what its comparisons rest on.

Its goal lines (``results/qm9_budget.json``, 150 CPU s of training per model and target):

- FLTNet MAE <= 0.8 x SchNet's at equal CPU time: NOT MET (gap 0.863); not tested;
- learned RPE better than no RPE: YES; linear <= 1.15 x exact at equal steps: MET (0.987,
  0.993); linear <= SchNet at equal CPU time: MET (0.92, 0.86). These are outcomes of minutes
  of training, not testable in seconds; that linear mode computes exact mode's function is
  ``test_claims_linear_vs_exact.py``.

What the comparisons rest on, tested here on the benchmark's own models (its ``--quick``
sizes): the linear variants are the exact model's parameters in the other mode, so the
equal-steps comparison compares modes only; and the variant without RPE sees no geometry at
all (the bag of atoms), so "RPE better than no RPE" measures what the geometry adds.
"""

from __future__ import annotations

import pytest
import torch

from flt3d.datasets import QM9_SAMPLE_PATH, read_qm9_csv


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("qm9_budget")


@pytest.fixture(scope="module")
def molecules(bench):
    return bench.Packed.from_data(read_qm9_csv(QM9_SAMPLE_PATH, nrows=60))


def build(bench, molecules, variant: str, target: str = "gap"):
    args = bench.parse_args(["--quick"])
    stats, _ = bench.target_statistics(molecules, target)
    torch.manual_seed(args.seed)  # as run_one
    return bench.build_model(variant, target, stats, args).eval()


def test_linear_variants_are_the_exact_model_in_linear_mode(bench, molecules):
    exact = build(bench, molecules, "flt_exact")
    for variant in ("flt_linear", "flt_linear_steps"):
        linear = build(bench, molecules, variant)
        assert linear.attention == "linear" and exact.attention == "exact"
        a, b = exact.state_dict(), linear.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a), variant


def test_the_variant_without_rpe_sees_no_geometry(bench, molecules):
    # measured: the representation of the first 20 molecules moves by 0 (no RPE) and by
    # 0.19-0.20 of its norm (every RPE variant) when every atom moves by 3 Å (std)
    z, pos, batch, _ = molecules.batch(torch.arange(20))
    moved = pos + 3 * torch.randn(pos.shape, generator=torch.Generator().manual_seed(0))
    for variant in ("flt_norpe", "flt_exact", "flt_linear"):
        model = build(bench, molecules, variant)
        with torch.no_grad():
            h, h_moved = model.representation(z, pos, batch), model.representation(z, moved, batch)
        change = float((h_moved - h).norm() / h.norm())
        if variant == "flt_norpe":
            assert change <= 1e-6, change
        else:
            assert change >= 0.05, (variant, change)
