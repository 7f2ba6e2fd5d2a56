import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def no_fltnet(monkeypatch):
    """Building an FLTNet is an error: a test that would build a huge one fails instead."""
    import functools

    from flt3d.models.fltnet import FLTNet

    @functools.wraps(FLTNet.__init__)
    def refuse(self, *args, **kwargs):
        raise AssertionError("an FLTNet was built")

    monkeypatch.setattr(FLTNet, "__init__", refuse)


@pytest.fixture
def graphs64():
    """A float64 batch of four graphs of sizes 1, 4, 7 and 5 (unsorted ids), with q, k, v."""
    gen = torch.Generator().manual_seed(1)
    sizes = [1, 4, 7, 5]
    batch = torch.cat([torch.full((n,), g) for g, n in enumerate(sizes)])
    batch = batch[torch.randperm(batch.numel(), generator=gen)]
    n, h, d = batch.numel(), 2, 3
    q = 0.7 * torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    k = 0.7 * torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    v = torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    pos = 1.5 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return q, k, v, pos, batch
