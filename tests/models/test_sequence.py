import json

import pytest
import torch

from flt3d.models import SequenceModel
from flt3d.nn import FLTAttention, set_attention

V = 11
TINY = dict(hidden_channels=16, num_layers=2, heads=2, num_features=16, num_frequencies=8)


def tiny(**kwargs):
    torch.manual_seed(0)
    return SequenceModel(V, **{**TINY, **kwargs}).eval()


def tokens(b=3, length=10, seed=0):
    return torch.randint(0, V, (b, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("positional", ["rpe", "absolute", "none"])
@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_shapes(positional, attention):
    model = tiny(positional=positional, attention=attention)
    assert model(tokens()).shape == (3, 10, V)
    assert model(tokens(1, 1)).shape == (1, 1, V)
    assert repr(model) == (
        f"SequenceModel({V}, hidden_channels=16, num_layers=2, positional={positional!r}, "
        f"attention={attention!r})"
    )


def test_positional_options_build_the_right_attention():
    for positional, spectrum in [("rpe", "local"), ("absolute", None), ("none", None)]:
        model = tiny(positional=positional)
        layers = [m for m in model.modules() if isinstance(m, FLTAttention)]
        assert len(layers) == 2
        assert all(m.spectrum_name == spectrum and m.causal and m.pos_dim == 1 for m in layers)
        assert (model.position_embedding is not None) == (positional == "absolute")
    assert tiny(spectrum="gaussian_mixture").blocks[0].conv.attn.spectrum_name == (
        "gaussian_mixture"
    )


def changed_after(x, t):
    changed = x.clone()
    changed[:, t + 1] = (changed[:, t + 1] + 1) % V
    return changed


@pytest.mark.parametrize("positional", ["rpe", "absolute", "none"])
@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_causal_bit_identical_prefix(positional, attention):
    model = tiny(positional=positional, attention=attention)
    x = tokens(3, 12)
    out = model(x)
    for t in (0, 4, 10):
        other = model(changed_after(x, t))
        assert torch.equal(other[:, : t + 1], out[:, : t + 1])
        assert not torch.equal(other[:, t + 1], out[:, t + 1])


@pytest.mark.parametrize("positional", ["rpe", "none"])
def test_causal_linear_batch_prefix(positional):
    model = tiny(positional=positional, attention="linear")
    x = tokens(3, 12)
    out = model(x)
    for t in (0, 4, 10):
        other = model(changed_after(x, t))
        assert torch.allclose(other[:, : t + 1], out[:, : t + 1], rtol=0, atol=1e-5)
        assert not torch.allclose(other[:, t + 1], out[:, t + 1], rtol=0, atol=1e-3)


def test_causal_linear_batch_bit_identical():
    model = tiny(attention="linear")
    x = tokens(2, 12)
    changed = x.clone()
    changed[0, 5] = (changed[0, 5] + 1) % V
    assert torch.equal(model(changed)[1], model(x)[1])


def test_no_positions_sees_a_bag_of_earlier_tokens():
    # one layer: with two, the causal mask alone already tells the order apart; positions
    # from 2 on hold the same token and see the same set of earlier tokens
    x = tokens(1, 8)
    swapped = x[:, [1, 0, *range(2, 8)]]
    assert not torch.equal(x, swapped)
    none = tiny(positional="none", attention="exact", num_layers=1)
    assert torch.allclose(none(x)[:, 2:], none(swapped)[:, 2:], atol=1e-5)
    for positional in ("rpe", "absolute"):
        model = tiny(positional=positional, attention="exact", num_layers=1)
        assert not torch.allclose(model(x)[:, 2:], model(swapped)[:, 2:], atol=1e-5)


def test_attention_switch_and_float64():
    model = tiny().double()
    x = tokens()
    linear = model(x)
    set_attention(model, "exact")
    assert model.attention == "exact"
    exact = model(x)
    assert exact.dtype == torch.float64
    assert not torch.equal(linear, exact)


def test_config_round_trip():
    model = tiny(positional="absolute", max_length=32)
    rebuilt = SequenceModel(**json.loads(json.dumps(model.config))).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = tokens()
    assert torch.equal(rebuilt(x), model(x))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="positional"):
        SequenceModel(V, positional="rotary")
    with pytest.raises(ValueError, match="spectrum"):
        SequenceModel(V, spectrum=None)
    with pytest.raises(ValueError, match="vocab_size"):
        SequenceModel(0)
    with pytest.raises(ValueError, match="max_length"):
        tiny(positional="absolute", max_length=5)(tokens(1, 6))
    with pytest.raises(ValueError, match="tokens"):
        tiny()(tokens().float())
    with pytest.raises(ValueError, match="vocab_size"):
        tiny()(torch.full((1, 3), V))


def test_training_reduces_loss():
    pattern = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7] * 3)
    x = torch.stack([pattern.roll(-s)[:16] for s in range(8)])
    model = tiny()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), x[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
