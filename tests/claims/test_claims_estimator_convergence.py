"""The claims of ``benchmarks/estimator_convergence.py``: linear → exact as the features grow.

The benchmark's rows (``results/estimator_convergence.json``, bar: log-log slope <= -0.35 from
m = 64 to 4096 and error <= 3 % at 4096, RMS over 32 draws of the projection, both judged at
the upper ends of 95 % bootstrap intervals):

- ``mul`` mask, moved Gaussian and isotropic mixtures (spectral mass 1.3-1.9): MET (slope
  -0.47, 1.4 % at 4096). The same computation, with the same bar, is
  ``tests/nn/test_flt_attention.py::test_mul_mask_converges_with_slope_and_bar``.
- ``exp`` mask at spectral mass 0.25: NOT MET. The slope holds (-0.43, intervals reaching
  -0.37 and -0.40) but the error at 4096 sits on the bar: 3.3 % and 3.1 % over 32 draws
  (intervals to 4.0 % and 3.5 %); 8 draws once gave 2.9 % and 3.0 %. Of 14 other choices of
  seeds (inputs, spectrum, draws; 8 draws each) 5 end above 3 %, up to 4.2 %. The slope is
  what is tested here, over 16 draws.
- ``exp`` mask at spectral mass 1.3-1.9: NOT MET (slope -0.27 and -0.30), not tested.

First, the reference itself: exact mode on the benchmark's inputs is the class formula, summed
pair by pair from the RPE evaluated at each displacement.
"""

from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("estimator_convergence")


@pytest.mark.parametrize("mask,mass", [("exp", 0.25), ("exp", None), ("mul", None)])
def test_exact_reference_is_the_pairwise_formula(bench, mask, mass):
    q, k, v, pos, batch = bench.inputs()
    ref = bench.reference_layer("gaussian_mixture", mask, mass)
    with torch.no_grad():
        out = ref(q, k, v, pos, batch)
        brute = torch.empty_like(v)
        for g in batch.unique():
            rows = (batch == g).nonzero().squeeze(1)
            delta = pos[rows].unsqueeze(1) - pos[rows].unsqueeze(0)  # [n, n, 3]
            f = ref.rpe(delta)  # f_hat per pair, from the frequencies directly
            logits = torch.einsum("ihd,jhd->ijh", q[rows], k[rows]) / math.sqrt(q.shape[-1])
            w = torch.exp(logits + f) if mask == "exp" else torch.exp(logits) * f
            brute[rows] = torch.einsum("ijh,jhe->ihe", w, v[rows]) / w.sum(1).unsqueeze(-1)
    assert ref.rpe(delta).std() > 0.05  # a non-trivial RPE
    assert torch.allclose(out, brute, rtol=0, atol=1e-12)


@pytest.mark.parametrize("spectrum", ["gaussian_mixture", "isotropic_mixture"])
def test_exp_mask_at_small_mass_converges_like_random_features(bench, spectrum):
    # measured, 16 draws: errors 0.194 / 0.104 / 0.056 / 0.036 (Gaussian mixture) and
    # 0.185 / 0.098 / 0.055 / 0.032 (isotropic) at m = 64 / 256 / 1024 / 4096; slopes -0.40
    # and -0.42 (m^-1/2 would be -0.5)
    with torch.no_grad():
        row = bench.curve(spectrum, "exp", 0.25, 16)
    assert row["mass"] == [0.25, 0.25]
    errors = row["errors"]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert row["slope"] <= bench.SLOPE_BAR, row
    assert errors[-1] <= 0.045, errors


def test_bootstrap_intervals_bracket_the_estimates_and_shrink_with_spread(bench):
    m = len(bench.FEATURES)
    # every draw alike: the intervals collapse onto the point estimates
    flat = bench.bootstrap([[0.04**2] * 8, *([[0.01**2] * 8] * (m - 2)), [0.002**2] * 8])
    slope = math.log(0.002 / 0.04) / math.log(bench.FEATURES[-1] / bench.FEATURES[0])
    assert flat["error_interval"] == pytest.approx([0.002, 0.002])
    assert flat["slope_interval"] == pytest.approx([slope, slope])
    # spread draws: the interval holds the RMS and has width
    gen = torch.Generator().manual_seed(0)
    squared = (torch.rand(m, 32, generator=gen, dtype=torch.float64) * 1e-3).tolist()
    spread = bench.bootstrap(squared)
    rms = math.sqrt(sum(squared[-1]) / 32)
    low, high = spread["error_interval"]
    assert low < rms < high and high - low > 0.1 * rms
