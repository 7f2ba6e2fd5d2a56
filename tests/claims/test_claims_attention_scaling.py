"""The claims of ``benchmarks/attention_scaling.py``, on torch's allocations at small N.

The benchmark measures peak RSS up to 10^6 points; its checks (all PASS in
``results/attention_scaling.json``) are that linear mode's memory grows as N^p with p <= 1.25,
that 10^5 points go forward and backward under 4 GB, and that a 10^5-token sequence never
builds an L x L tensor. Here the same layer (``FLTConv(128, 128, heads=8)``, the benchmark's
options per mode) runs one forward and backward at two small sizes, and the tensors torch
keeps alive are counted: the same growth, without the machine's speed or load in it.
"""

from __future__ import annotations

import pytest
import torch

from flt3d.nn import FLTConv


def step(bench, n: int, options: dict, *, sequence: bool = False):
    """One forward and backward of the benchmark's layer on N points (or tokens)."""
    torch.manual_seed(0)
    conv = FLTConv(
        bench.CHANNELS, bench.CHANNELS, heads=bench.HEADS, pos_dim=1 if sequence else 3, **options
    )
    gen = torch.Generator().manual_seed(1)
    if sequence:
        pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    else:
        pos = torch.rand(n, 3, generator=gen) * n ** (1 / 3)
    x = torch.randn(n, bench.CHANNELS, generator=gen).requires_grad_()
    return lambda: conv(x, pos).square().mean().backward()


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("attention_scaling")


def test_linear_memory_grows_linearly_where_exact_grows_quadratically(bench, allocations, growth):
    # measured from N = 500 to 2000: linear 22.5 KB per point, peak exponent 0.98, largest
    # tensor [N, heads, m] (exponent 1.00), work exponent 0.99; FAVOR+ 15.2 KB per point, the
    # same exponents. Exact from N = 250 to 500: peak exponent 1.79, largest tensor
    # [N, N, heads] (exponent 2.00), work exponent 1.75.
    for mode in ("linear", "favor+"):
        small = allocations(step(bench, 500, bench.CLOUD_MODES[mode]))
        large = allocations(step(bench, 2000, bench.CLOUD_MODES[mode]))
        assert growth(500, small.peak_bytes, 2000, large.peak_bytes) <= bench.LINEAR_SLOPE_MAX, mode
        assert growth(500, small.largest, 2000, large.largest) <= 1.05, mode
        assert growth(500, small.elements, 2000, large.elements) <= 1.05, mode  # work
    # the same count sees an N x N tensor: exact mode's pairs
    small = allocations(step(bench, 250, bench.CLOUD_MODES["exact"]))
    large = allocations(step(bench, 500, bench.CLOUD_MODES["exact"]))
    assert growth(250, small.peak_bytes, 500, large.peak_bytes) >= 1.6
    assert growth(250, small.largest, 500, large.largest) >= 1.9


def test_1e5_points_fit_under_the_4_gb_bar(bench, allocations):
    # The per-point allocations at N = 2000, scaled to 10^5 points: measured 2.25 GB (the
    # growth is linear, previous test). The full run's peak RSS at 10^5 was 2.20 GB for
    # 1.80 GB of torch allocations (0.28 GB of it the interpreter and libraries), so torch
    # allocations up to 3.5 GB keep the RSS under the 4 GB bar.
    n = 2000
    peak = allocations(step(bench, n, bench.CLOUD_MODES["linear"])).peak_bytes
    assert bench.ACCEPT_N * peak / n <= 3.5e9, peak / n


@pytest.mark.parametrize("mode,lengths", [("linear", (1000, 4000)), ("linear causal", (250, 1000))])
def test_sequences_never_build_an_L_by_L_tensor(bench, allocations, growth, mode, lengths):
    # measured, bidirectional (L = 1000 to 4000): largest tensor [L, heads, m] (exponent
    # 1.00), peak and work exponents 0.99; causal (L = 250 to 1000): largest tensor one chunk
    # of 4.1 M elements at both lengths (exponent 0), peak exponent 0.14, work exponent 1.04
    # (per-chunk overheads at the short length). An L x L matrix would give exponent 2.
    short, long = lengths
    options = bench.SEQUENCE_MODES[mode]
    a = allocations(step(bench, short, options, sequence=True))
    b = allocations(step(bench, long, options, sequence=True))
    assert growth(short, a.largest, long, b.largest) <= 1.05
    assert growth(short, a.peak_bytes, long, b.peak_bytes) <= bench.LINEAR_SLOPE_MAX
    assert growth(short, a.elements, long, b.elements) <= 1.1
    if mode == "linear":
        assert b.largest < long**2 / 4
