"""The claims of ``benchmarks/linear_vs_exact.py``: linear mode means exact mode's function.

The benchmark measures the shipped ``qm9`` model on the sample's 332 test molecules, fresh and
trained by ``flt3d train`` (four minutes), with its own ``measure``; its bars (all PASS in
``results/linear_vs_exact.json``): the per-atom representation of linear mode within 5 % of
exact mode's for every one of five draws of random features and frequencies, within 5 % of
itself under rotations, and predictions under rotation within 0.1 x the test MAE. Here the
same ``measure`` runs on the first 64 test molecules, for the fresh model and for the shipped
pretrained ``qm9-gap`` model (trained on full QM9; the shipped configuration at 128 channels
and 3 blocks) in place of a four-minute run.
"""

from __future__ import annotations

import pytest

from flt3d import pretrained
from flt3d.datasets import QM9
from flt3d.models import fit_statistics


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("linear_vs_exact")


@pytest.fixture(scope="module")
def molecules(bench):
    return bench.test_molecules(64)


def assert_bars(bench, r: dict) -> None:
    assert r["repr_linear_vs_exact_max"] <= bench.REPR_BAR, r
    assert r["repr_rotation_max"] <= bench.ROTATION_BAR, r
    assert r["pred_rotation_over_mae"] <= bench.PREDICTION_BAR, r


def test_fresh_shipped_model(bench, molecules, tmp_path):
    # measured: linear vs exact 0.04 % (worst of 5 draws), rotation 1.6e-7, predictions
    # under rotation 1e-7 x the MAE (statistics from 500 training molecules)
    model, _ = bench.shipped_model()
    dataset = QM9(str(tmp_path), sample=True, log=False)
    train, _, _ = dataset.standard_split(seed=0)
    model.set_statistics(*fit_statistics(model, [dataset[int(i)] for i in train[:500]]))
    assert_bars(bench, bench.measure(model, molecules))


def test_trained_model(bench, molecules):
    # measured on these 64 molecules: linear vs exact 2.9 % (mean of 5 draws), worst 3.38 %,
    # rotation 1e-6, predictions under rotation 7e-6 x the MAE. On all 332 test molecules the
    # worst is 4.50 % (the benchmark's own trained run: 4.6 %), within 10 % of the 5 % bar, and
    # these 64 give 0.75 x that: the bar, scaled by 0.75, is what they must meet.
    model = pretrained.load("qm9-gap")
    r = bench.measure(model, molecules)
    assert r["repr_linear_vs_exact_max"] <= 0.75 * bench.REPR_BAR, r
    assert_bars(bench, r)
    assert r["mae_linear"] <= 1.1 * r["mae_exact"], r  # measured 1.016 x
