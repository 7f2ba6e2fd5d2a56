import json

import pytest
import torch

from flt3d.models import ImageClassifier
from flt3d.nn import FLTAttention, set_attention

TINY = dict(hidden_channels=16, num_layers=1, heads=2, num_features=16, num_frequencies=8)


def tiny(**kwargs):
    torch.manual_seed(0)
    return ImageClassifier(**{**TINY, **kwargs}).eval()


def images(b=4, size=8, seed=0):
    return torch.rand(b, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("positional", ["rpe", "absolute", "none"])
@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_shapes(positional, attention):
    model = tiny(positional=positional, attention=attention)
    assert model(images()).shape == (4, 10)
    assert repr(model) == (
        f"ImageClassifier(1, 10, image_size=8, patch_size=1, positional={positional!r}, "
        f"attention={attention!r})"
    )


def test_patches_channels_and_other_sizes():
    model = tiny(in_channels=3, num_classes=5, patch_size=2)
    assert model.num_patches == 16
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 5)
    assert model(torch.rand(2, 3, 12, 6)).shape == (2, 5)  # RPE needs no fixed size
    layers = [m for m in model.modules() if isinstance(m, FLTAttention)]
    assert all(m.pos_dim == 2 and not m.causal for m in layers)
    with pytest.raises(ValueError, match="absolute"):
        tiny(positional="absolute")(images(size=16))


def test_images_are_independent_in_a_batch():
    model = tiny()
    x = images()
    alone = torch.cat([model(x[i : i + 1]) for i in range(4)])
    assert torch.allclose(model(x), alone, atol=1e-5)


def test_no_positions_is_a_bag_of_pixels():
    x = images(2)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    shuffled = x.flatten(2)[..., perm].view_as(x)
    none = tiny(positional="none", attention="exact")
    assert torch.allclose(none(shuffled), none(x), atol=1e-5)
    rpe = tiny(attention="exact")
    assert not torch.allclose(rpe(shuffled), rpe(x), atol=1e-5)


def test_switch_attention_and_config_round_trip():
    model = tiny(positional="absolute", patch_size=2)
    rebuilt = ImageClassifier(**json.loads(json.dumps(model.config))).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = images()
    assert torch.equal(rebuilt(x), model(x))
    set_attention(rebuilt, "exact")
    assert rebuilt.attention == "exact"
    assert not torch.equal(rebuilt(x), model(x))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="patch_size"):
        ImageClassifier(image_size=8, patch_size=3)
    with pytest.raises(ValueError, match="positional"):
        ImageClassifier(positional="sinusoidal")
    with pytest.raises(ValueError, match="num_classes"):
        ImageClassifier(num_classes=0)
    with pytest.raises(ValueError, match="x must be"):
        tiny()(torch.rand(2, 3, 8, 8))


def test_training_on_digits_reduces_loss():
    pytest.importorskip("sklearn")
    from flt3d.datasets.digits import load_digits

    x, y = load_digits()
    keep = y < 2
    x, y = x[keep][:64], y[keep][:64]
    model = tiny(num_classes=2, patch_size=2)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    # 30 steps: over twelve initial seeds every run then ends above 90 % (15 steps left one
    # draw of the random features on either side of the 80 % line)
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    assert (model.eval()(x).argmax(-1) == y).float().mean() > 0.8
