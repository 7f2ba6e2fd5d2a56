import pytest
import torch

from flt3d.nn import FLTBlock
from flt3d.testing import assert_batch_independent, assert_permutation_equivariant


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_block_batched_equals_one_by_one(attention):
    block = FLTBlock(16, heads=4, attention=attention).double()
    x = torch.randn(12, 16, dtype=torch.float64)
    pos = torch.randn(12, 3, dtype=torch.float64)
    batch = torch.tensor([0] * 5 + [1] * 1 + [2] * 6)
    assert_batch_independent(block, x, pos, batch)
    assert_permutation_equivariant(block, x, pos, batch)
