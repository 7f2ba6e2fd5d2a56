import math

import pytest
import torch

from flt3d.nn import orthogonal_gaussian, positive_features
from flt3d.nn.random_features import feature_exponents, graph_shifted_features


def test_blocks_are_orthogonal_and_rows_gaussian():
    w = orthogonal_gaussian(
        3, 8, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    assert w.shape == (3, 8, 4)
    block = w[0, :4] / w[0, :4].norm(dim=-1, keepdim=True)
    assert torch.allclose(block @ block.T, torch.eye(4, dtype=torch.float64), atol=1e-12)
    many = orthogonal_gaussian(200, 4, 4, generator=torch.Generator().manual_seed(1))
    sq = many.pow(2).sum(-1)
    assert abs(sq.mean().item() - 4) < 0.2  # chi-square with 4 dof
    assert abs(many.mean().item()) < 0.05  # Haar directions: no preferred sign


def test_features_are_positive_and_unbiased_for_softmax_kernel():
    gen = torch.Generator().manual_seed(0)
    x = 0.5 * torch.randn(3, 1, 4, generator=gen, dtype=torch.float64)
    y = 0.5 * torch.randn(3, 1, 4, generator=gen, dtype=torch.float64)
    exact = torch.exp(x[:, 0] @ y[:, 0].T)
    est = []
    for _ in range(500):
        w = orthogonal_gaussian(1, 16, 4, generator=gen, dtype=torch.float64)
        fx, cx = positive_features(x, w)
        fy, cy = positive_features(y, w)
        assert (fx > 0).all()
        est.append((fx[:, 0] @ fy[:, 0].T) * torch.exp(cx[:, 0] + cy[:, 0].T))
    est = torch.stack(est)
    z = (est.mean(0) - exact) / (est.std(0) / math.sqrt(len(est)))
    assert z.abs().max() < 4


def test_segment_stabiliser_is_shared_within_a_graph():
    x = torch.randn(6, 2, 3) * 3
    w = orthogonal_gaussian(2, 5, 3)
    index = torch.tensor([0, 0, 1, 1, 1, 2])
    feats, shift = positive_features(x, w, index=index)
    assert torch.equal(shift[0], shift[1]) and torch.equal(shift[2], shift[4])
    assert feats.max() <= 1 / math.sqrt(5) + 1e-6


def test_feature_exponents_are_the_log_of_positive_features():
    x = torch.randn(7, 2, 4, dtype=torch.float64)
    w = orthogonal_gaussian(2, 16, 4, dtype=torch.float64)
    feats, shift = positive_features(x, w)
    assert torch.allclose(feature_exponents(x, w), feats.log() + shift, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_graph_shifted_features_never_underflow_a_row(dtype):
    """Keys of std 30: most raw features underflow, yet every row's normaliser is >= 1 and the
    shifted product equals the unbiased estimate times exp(-row)."""
    gen = torch.Generator().manual_seed(0)
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    x = torch.randn(9, 2, 8, generator=gen, dtype=dtype)
    y = 30 * torch.randn(9, 2, 8, generator=gen, dtype=dtype)
    w = orthogonal_gaussian(2, 32, 8, dtype=dtype, generator=gen)
    eq, ek = feature_exponents(x, w), feature_exponents(y, w)
    assert (eq + ek.amax(0)).exp().sum(-1).min() == 0  # the plain features would underflow
    phi_q, phi_k, row = graph_shifted_features(eq, ek, batch, 3)
    assert phi_q.max() <= 1 and phi_k.max() <= 1
    same = batch.unsqueeze(1) == batch.unsqueeze(0)
    sums = (torch.einsum("ihm,jhm->ijh", phi_q, phi_k) * same.unsqueeze(-1)).sum(1)
    assert sums.min() >= 1 - 1e-6
    # the attention weights they give equal those of the unshifted estimate, computed in logs
    log_est = torch.logsumexp(eq.double().unsqueeze(1) + ek.double().unsqueeze(0), -1)
    log_est = log_est.masked_fill(~same.unsqueeze(-1), -torch.inf)
    expected = torch.softmax(log_est, dim=1)
    shifted = torch.einsum("ihm,jhm->ijh", phi_q.double(), phi_k.double()) * same.unsqueeze(-1)
    got = shifted / shifted.sum(1, keepdim=True)
    assert torch.allclose(got, expected, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_bad_shapes():
    with pytest.raises(ValueError, match="does not match projection"):
        positive_features(torch.randn(4, 2, 3), orthogonal_gaussian(2, 5, 4))
    with pytest.raises(ValueError, match="must be positive"):
        orthogonal_gaussian(2, 0, 4)
