"""The claims of ``benchmarks/fltnet_scaling.py``, on torch's allocations at a few 10^3 atoms.

The benchmark runs the shipped ``qm9`` model in linear mode, forward and backward, on clouds
of liquid density up to 10^6 atoms. Its checks (PASS in ``results/fltnet_scaling.json``):
CPU time and peak memory above the baseline grow as N^p with 0.85 <= p <= 1.15 (measured
N^1.14 and N^0.95 over 10^5..10^6), and 10^6 atoms fit in 16 GB of peak RSS (14.75 GB).

Here the same model and clouds run at 1,500 and 2,000 atoms on the code paths of large
systems: every block recomputed in the backward pass (above 65,536 atoms in the package) and
every pair sum chunked (beyond one chunk of pairs). Time is replaced by the elements all
operations write, and memory by the bytes of the tensors torch keeps alive.
"""

from __future__ import annotations

import torch

import flt3d.models.fltnet as fltnet
import flt3d.nn.pairs as pairs
from flt3d.models import FLTNet
from flt3d.nn import set_attention
from flt3d.training.config import load_config

DENSITY = 0.1  # atoms per Å^3, as the benchmark's clouds
SIZES = (1500, 2000)


def cloud(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    pos = (n / DENSITY) ** (1 / 3) * torch.rand(n, 3, generator=gen)
    z = torch.tensor([1, 6, 7, 8])[torch.randint(0, 4, (n,), generator=gen)]
    return z, pos


def test_linear_mode_cost_and_memory_are_linear_and_1e6_atoms_fit(monkeypatch, allocations, growth):
    monkeypatch.setattr(fltnet, "RECOMPUTE_ATOMS", 0)
    monkeypatch.setattr(pairs, "_PLAIN_CHUNKS", 0)
    torch.manual_seed(0)
    model = set_attention(FLTNet(**load_config("qm9")["model"]), "linear")

    def step(n):
        z, pos = cloud(n)
        return lambda: model(z, pos).sum().backward()

    (n1, n2) = SIZES
    a, b = allocations(step(n1)), allocations(step(n2))
    # work: measured exponent 1.10 (1.43 M and 1.48 M elements per atom); part of it is the
    # neighbour count, which still grows at these sizes (42 and 43 pairs per atom; 52 at 10^6)
    assert growth(n1, a.elements, n2, b.elements) <= 1.2
    # no tensor grows faster than the atoms: the largest is one chunk (1.40 M elements at both)
    assert growth(n1, a.largest, n2, b.largest) <= 1.05
    assert growth(n1, a.peak_bytes, n2, b.peak_bytes) <= 1.15  # measured 0.31 (fixed chunks)
    # Memory per added atom: measured 11.8 KB (11.9 KB from 2,000 to 3,000 atoms; from 1,000,
    # where fixed chunk buffers still dominate, 23 KB). Scaled by the neighbour count (52 / 43
    # pairs per atom) to 10^6 atoms, plus about 0.5 GB of interpreter and libraries, this
    # predicts 14.8 GB for the 14.75 GB measured; the 16 GB bar holds while the rate stays
    # under (16 - 0.5) GB / 10^6 / (52 / 43) = 12.8 KB.
    per_atom = (b.peak_bytes - a.peak_bytes) / (n2 - n1)
    assert per_atom <= 12.8e3, per_atom
