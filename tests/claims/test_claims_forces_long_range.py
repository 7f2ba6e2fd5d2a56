"""The cost claims of ``benchmarks/forces_long_range.py`` that hold today, at a few 10^3 atoms.

The benchmark's checks (``results/forces_long_range.json`` and the later
``forces_long_range_cost_charges{128,1024}.json``):

- energy + forces in linear mode at 10^5 atoms within 8 GB of peak RSS: MET for the far +
  long-range model (5.21 GB) and the latent charges (1.80 GB; 1.40 and 1.51 GB later);
- time per atom within +-30 % of its median from 10^3 to 10^5 atoms: NOT MET for the far +
  long-range model (+36 %: blocks are recomputed above 65,536 atoms) and, in the two later
  runs, for the latent charges (+62 % and +32 %); not tested;
- the force-accuracy bars (latent charges on NaCl clusters 0.367 and 0.453 x the best local
  model with the Coulomb kernel at 600 CPU s, two seeds: MET; NOT MET on ion water, on EMT
  copper, and with kernels trained in linear mode) are outcomes of minutes of training each;
  not tested.

Here the benchmark's two cost models (``cost_case``) compute energy + forces at 1,000 and 2,000
atoms of its clouds, on the code paths of large systems (blocks recomputed, pair sums
chunked), and the tensors torch keeps alive are counted.
"""

from __future__ import annotations

import pytest
import torch

import flt3d.models.fltnet as fltnet
import flt3d.nn.pairs as pairs
from flt3d.models import FLTNet

SIZES = (1000, 2000)
# The full run's peak RSS at 10^5 atoms over the allocations per atom, once they have settled
# (3,000 and 4,000 atoms: 40.8 KB), scaled to 10^5: 5.21 GB / 4.08 GB for the far + long-range
# model. The allocations per atom fall with N up to there, so scaling those at 2,000 atoms
# errs on the high side.
RSS_OVER_ALLOCATIONS = 1.28


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("forces_long_range")


def cost_model(bench, variant: str) -> FLTNet:
    """The model of ``bench.cost_case``."""
    torch.manual_seed(0)
    extra = (
        {"long_range_filter": "isotropic_mixture", "long_range": "isotropic_mixture"}
        if variant == "flt_global"
        else {"far_attention": False, "latent_charges": 8, "long_range_length_scale": 3.0}
    )
    return FLTNet(
        hidden_channels=64, num_layers=2, heads=4, target="energy", attention="linear",
        cutoff=bench.CUTOFF, elements=(1, 8, 11, 17), **extra,
    ).eval()  # fmt: skip


def cloud(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    pos = (n / 0.1) ** (1 / 3) * torch.rand(n, 3, generator=gen)
    z = torch.tensor([1, 1, 8, 11, 17])[torch.randint(0, 5, (n,), generator=gen)]
    return z, pos


@pytest.mark.parametrize("variant", ["flt_global", "flt_charges"])
def test_energy_and_forces_memory_is_linear_and_fits_at_1e5(
    bench, allocations, growth, monkeypatch, variant
):
    # measured at 1,000 / 2,000 atoms: far + long range 70.3 / 46.2 KB per atom, peak
    # exponent 0.40, largest tensor [N, 2048] (exponent 1.00); latent charges 62.8 / 38.8 KB
    # per atom, exponent 0.30, largest tensor one chunk (exponent 0.07)
    assert variant in bench.COST_VARIANTS
    monkeypatch.setattr(fltnet, "RECOMPUTE_ATOMS", 0)
    monkeypatch.setattr(pairs, "_PLAIN_CHUNKS", 0)
    model = cost_model(bench, variant)
    counts = []
    for n in SIZES:
        z, pos = cloud(n)
        counts.append(allocations(lambda z=z, pos=pos: model.energy_and_forces(z, pos)))
    (n1, n2), (a, b) = SIZES, counts
    assert growth(n1, a.peak_bytes, n2, b.peak_bytes) <= 1.0
    assert growth(n1, a.largest, n2, b.largest) <= 1.05
    at_1e5 = RSS_OVER_ALLOCATIONS * bench.SIZES[-1] * b.peak_bytes / n2
    assert at_1e5 <= bench.MEMORY_BAR_GB * 1e9, at_1e5  # measured 5.9 GB and 5.0 GB
