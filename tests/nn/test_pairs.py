import torch

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


def test_pair_max_is_the_segment_maximum():
    index = torch.tensor([[0, 0, 1, 2, 2, 2], [1, 2, 0, 0, 1, 2]])
    value = torch.tensor([1.0, 5.0, -2.0, 3.0, 7.0, 0.5])
    out = pair_max(lambda v: v, index, 4, pair_data=(value,))
    assert out.tolist() == [5.0, -2.0, 7.0, float("-inf")]
