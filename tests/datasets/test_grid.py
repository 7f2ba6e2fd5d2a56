import pytest
import torch

from flt3d.datasets.grid import (
    flatten_image,
    flatten_sequence,
    image_grid,
    sequence_grid,
    unflatten_image,
    unflatten_sequence,
)
from flt3d.nn.patches import PatchEmbedding


def test_sequence_grid_order_spacing_and_batch():
    pos, batch = sequence_grid(3, 4, spacing=0.5)
    assert pos.shape == (12, 1) and pos.dtype == torch.float32
    assert batch.shape == (12,) and batch.dtype == torch.long
    assert batch.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    expected = torch.tensor([0.0, 0.5, 1.0, 1.5]).repeat(3)
    assert torch.equal(pos.squeeze(-1), expected)
    # causal attention reads token order as time: strictly increasing inside each sequence
    for b in range(3):
        assert (pos[batch == b].diff(dim=0) > 0).all()


def test_sequence_grid_dtype_and_default_spacing():
    pos, _ = sequence_grid(1, 5, dtype=torch.float64)
    assert pos.dtype == torch.float64
    assert pos.squeeze(-1).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_image_grid_row_major():
    pos, batch = image_grid(2, 3, 4, spacing=2.0)
    assert pos.shape == (24, 2) and batch.shape == (24,)
    assert torch.equal(batch, torch.arange(2).repeat_interleave(12))
    for b in range(2):
        for r in range(3):
            for c in range(4):
                assert pos[b * 12 + r * 4 + c].tolist() == [2.0 * r, 2.0 * c]


def test_flatten_unflatten_sequence_roundtrip():
    x = torch.randn(3, 5, 7)
    x_flat, pos, batch = flatten_sequence(x, spacing=0.25)
    assert x_flat.shape == (15, 7)
    assert torch.equal(x_flat[1 * 5 + 2], x[1, 2])
    assert torch.equal(pos, sequence_grid(3, 5, spacing=0.25)[0])
    assert torch.equal(batch, torch.arange(3).repeat_interleave(5))
    assert torch.equal(unflatten_sequence(x_flat, 3), x)
    # per-token outputs of any trailing shape
    assert unflatten_sequence(torch.zeros(15), 3).shape == (3, 5)


def test_flatten_sequence_pos_follows_float_dtype():
    _, pos, _ = flatten_sequence(torch.zeros(1, 2, 3, dtype=torch.float64))
    assert pos.dtype == torch.float64
    _, pos, _ = flatten_sequence(torch.zeros(1, 2, 3, dtype=torch.long))
    assert pos.dtype == torch.float32


def test_flatten_unflatten_image_roundtrip():
    x = torch.randn(2, 3, 4, 5)
    x_flat, pos, batch = flatten_image(x)
    assert x_flat.shape == (40, 3)
    b, r, c = 1, 2, 3
    i = b * 20 + r * 5 + c
    assert torch.equal(x_flat[i], x[b, :, r, c])
    assert pos[i].tolist() == [r, c] and batch[i] == b
    assert torch.equal(unflatten_image(x_flat, 2, 4, 5), x)


def test_patch_embedding_shapes_pos_and_values():
    torch.manual_seed(0)
    embed = PatchEmbedding(2, 6, patch_size=2)
    assert repr(embed) == "PatchEmbedding(2, 6, patch_size=2)"
    images = torch.randn(3, 2, 4, 6)
    x, pos, batch = embed(images)
    assert x.shape == (3 * 2 * 3, 6) and pos.shape == (18, 2) and batch.shape == (18,)
    assert pos[:6].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert torch.equal(batch, torch.arange(3).repeat_interleave(6))
    # token of image 2, patch (1, 2) is the linear map of pixels rows 2:4, cols 4:6
    patch = images[2, :, 2:4, 4:6]
    manual = torch.einsum("oikl,ikl->o", embed.proj.weight, patch) + embed.proj.bias
    torch.testing.assert_close(x[2 * 6 + 1 * 3 + 2], manual)


def test_patch_embedding_reset_parameters_changes_weights():
    embed = PatchEmbedding(1, 4, patch_size=2)
    before = embed.proj.weight.detach().clone()
    embed.reset_parameters()
    assert not torch.equal(before, embed.proj.weight)


def test_patch_embedding_pos_dtype_stays_full_precision():
    embed = PatchEmbedding(1, 4, patch_size=1).double()
    _, pos, _ = embed(torch.zeros(1, 1, 3, 3, dtype=torch.float64))
    assert pos.dtype == torch.float64


@pytest.mark.parametrize(
    "call",
    [
        lambda: sequence_grid(0, 4),
        lambda: sequence_grid(2, -1),
        lambda: sequence_grid(2, 3, spacing=0.0),
        lambda: sequence_grid(2, 3, spacing=float("nan")),
        lambda: sequence_grid(2.5, 3),
        lambda: sequence_grid(True, 3),
        lambda: image_grid(1, 0, 3),
        lambda: flatten_sequence(torch.zeros(4, 3)),
        lambda: flatten_image(torch.zeros(2, 4, 4)),
        lambda: unflatten_sequence(torch.zeros(7, 3), 2),
        lambda: unflatten_image(torch.zeros(10, 3), 1, 3, 3),
        lambda: PatchEmbedding(1, 4, patch_size=0),
    ],
)
def test_invalid_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


def test_patch_embedding_rejects_indivisible_shape():
    embed = PatchEmbedding(1, 4, patch_size=3)
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 9\)"):
        embed(torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        embed(torch.zeros(2, 3, 9, 9))
