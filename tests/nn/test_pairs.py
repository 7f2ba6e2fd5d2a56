import pytest
import torch

import flt3d.nn.pairs as pairs
from flt3d.nn import neighbor_list, pair_sum
from flt3d.nn.pairs import pair_max


def test_chunked_equals_plain_values_and_gradients():
    """The chunked path (recomputed backward) gives the plain path's output and gradients for
    node inputs at both ends, per-pair data and a parameter used inside fn."""
    gen = torch.Generator().manual_seed(0)
    pos = 2.0 * torch.randn(40, 3, generator=gen, dtype=torch.float64)
    index = neighbor_list(pos, cutoff=2.0, self_loops=True).index
    a = torch.randn(40, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(40, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    delta = (pos[index[0]] - pos[index[1]]).requires_grad_(True)

    def fn(a_i, b_j, d):
        scale = torch.exp(-d.pow(2).sum(-1, keepdim=True)) * weight  # [P, 3]
        return (scale.unsqueeze(-1) * a_i * b_j).tanh()

    outs, grads = [], []
    for chunked in (False, True):
        out = pair_sum(
            fn,
            index,
            40,
            sources_i=(a,),
            sources_j=(b,),
            pair_data=(delta,),
            params=(weight,),
            per_pair=(1 << 22) // 7,  # chunks of 7 pairs
            chunked=chunked,
        )
        outs.append(out)
        grads.append(torch.autograd.grad(out.pow(2).sum(), (a, b, delta, weight)))
    assert index.shape[1] > 50  # many chunks
    assert torch.allclose(outs[0], outs[1], atol=1e-12)
    for g_plain, g_chunked in zip(*grads):
        assert torch.allclose(g_plain, g_chunked, atol=1e-12)


def test_second_derivatives_take_the_plain_path(monkeypatch):
    """A loss on forces differentiates the backward pass (create_graph). Inside
    differentiable_pair_sums() a sum that would be chunked takes the plain path, with the plain
    path's second derivatives; outside it, the chunked backward refuses create_graph rather
    than return wrong ones. One source is a function of another (as features are of queries),
    where partial and total derivatives differ."""
    monkeypatch.setattr(pairs, "_PLAIN_CHUNKS", 0)
    monkeypatch.setattr(pairs, "_CHUNK_ELEMENTS", 1 << 10)
    gen = torch.Generator().manual_seed(1)
    pos0 = 2.0 * torch.randn(30, 3, generator=gen, dtype=torch.float64)
    index = neighbor_list(pos0, cutoff=2.5, self_loops=True).index
    a0 = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)

    def fn(a_i, b_j, d):
        return torch.exp(-d.pow(2).sum(-1, keepdim=True) * weight.exp()) * a_i * b_j

    def energy(pos, chunked):
        a = a0 * weight
        delta = pos[index[0]] - pos[index[1]]
        return pair_sum(
            fn, index, 30, sources_i=(a,), sources_j=(a.tanh(),), pair_data=(delta,),
            params=(weight,), per_pair=1, chunked=chunked,
        ).pow(2).sum()

    results = []
    for chunked in (False, None):
        pos = pos0.clone().requires_grad_(True)
        with pairs.differentiable_pair_sums():
            assert not pairs.pair_chunking(index.shape[1], 1)
            e = energy(pos, chunked)
        (forces,) = torch.autograd.grad(e, pos, create_graph=True)
        results.append((forces, *torch.autograd.grad(forces.pow(2).sum(), (weight, pos))))
    for plain, default in zip(*results):
        assert plain.abs().max() > 0
        assert torch.allclose(plain, default, atol=1e-12)
    assert pairs.pair_chunking(index.shape[1], 1)  # the context restores the default
    pos = pos0.clone().requires_grad_(True)
    e = energy(pos, True)
    with pytest.raises(RuntimeError, match="differentiable_pair_sums"):
        torch.autograd.grad(e, pos, create_graph=True)
    (plain_forces,) = torch.autograd.grad(energy(pos, True), pos)  # first order: chunked is fine
    assert torch.allclose(plain_forces, results[0][0], atol=1e-12)


def test_pair_max_is_the_segment_maximum():
    index = torch.tensor([[0, 0, 1, 2, 2, 2], [1, 2, 0, 0, 1, 2]])
    value = torch.tensor([1.0, 5.0, -2.0, 3.0, 7.0, 0.5])
    out = pair_max(lambda v: v, index, 4, pair_data=(value,))
    assert out.tolist() == [5.0, -2.0, 7.0, float("-inf")]
