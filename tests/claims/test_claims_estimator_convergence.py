"""The claims of ``benchmarks/estimator_convergence.py``: linear → exact as the features grow.

The benchmark's rows (``results/estimator_convergence.json``, bar: log-log slope <= -0.35 from
m = 64 to 4096 and error <= 3 % at 4096, RMS over 8 draws of the projection):

- ``mul`` mask, moved Gaussian and isotropic mixtures (spectral mass 1.3-1.9): MET (slope
  -0.47, 1.4 % at 4096). The same computation, with the same bar, is
  ``tests/nn/test_flt_attention.py::test_mul_mask_converges_with_slope_and_bar``.
- ``exp`` mask at spectral mass 0.25: MET by the benchmark's 8 draws (2.9 % and 3.0 %), but
  not with more: over 16 draws the error at 4096 is 3.6 % and 3.2 %, and of 14 other choices
  of seeds (inputs, spectrum, draws; 8 draws each) 5 end above 3 %, up to 4.2 %. The slope
  holds in all of them (-0.37 to -0.49) and is what is tested here, over 16 draws.
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
