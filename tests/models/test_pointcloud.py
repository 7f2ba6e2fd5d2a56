import json

import pytest
import torch

from flt3d.models import PointCloudClassifier
from flt3d.nn import FLTAttention, SpectralFilter, set_attention
from flt3d.testing import random_rotation

TINY = dict(hidden_channels=16, num_layers=2, heads=2, num_features=16, num_frequencies=8)
SIZES = (20, 33, 27)


def tiny(num_classes=5, **kwargs):
    torch.manual_seed(0)
    return PointCloudClassifier(num_classes, **{**TINY, **kwargs}).eval()


def clouds(sizes=SIZES, dtype=torch.float32, seed=0):
    """Points in the unit sphere with unit normals, and their cloud ids."""
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    pos = pos / pos.norm(dim=1, keepdim=True) * torch.rand(n, 1, generator=gen, dtype=pos.dtype)
    normal = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    normal = normal / normal.norm(dim=1, keepdim=True)
    batch = torch.cat([torch.full((size,), g) for g, size in enumerate(sizes)])
    return normal.to(dtype), pos.to(dtype), batch


@pytest.mark.parametrize("pooling", ["mean", "max", "mean_max"])
@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_shapes_and_repr(attention, pooling):
    model = tiny(attention=attention, pooling=pooling)
    x, pos, batch = clouds()
    assert model(x, pos, batch).shape == (3, 5)
    assert model(x[:20], pos[:20]).shape == (1, 5)
    assert repr(model) == (
        f"PointCloudClassifier(5, in_channels=3, hidden_channels=16, num_layers=2, "
        f"positional='rpe', pooling={pooling!r}, attention={attention!r})"
    )
    layers = [m for m in model.modules() if isinstance(m, FLTAttention)]
    assert len(layers) == 2 and all(m.pos_dim == 3 and m.spectrum is not None for m in layers)


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_batched_equals_one_by_one(attention):
    model = tiny(attention=attention)
    x, pos, batch = clouds()
    together = model(x, pos, batch)
    alone = torch.cat([model(x[batch == g], pos[batch == g]) for g in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_logits_ignore_the_order_of_the_points(attention):
    model = tiny(attention=attention)
    x, pos, batch = clouds()
    out = model(x, pos, batch)
    perm = torch.randperm(batch.numel(), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(batch[perm], batch.sort().values)  # clouds interleaved
    assert torch.allclose(model(x[perm], pos[perm], batch[perm]), out, atol=1e-5)
    # but the points' geometry matters
    assert not torch.allclose(model(x, 1.5 * pos, batch), out, atol=1e-3)


@pytest.mark.parametrize("positional", ["rpe", "absolute"])
@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_translation_invariance(attention, positional):
    model = tiny(attention=attention, positional=positional)
    x, pos, batch = clouds()
    out = model(x, pos, batch)
    shift = 30 * torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(model(x, pos + shift[batch], batch), out, atol=1e-4)


def test_attention_switch_changes_only_the_kernel_estimate():
    # exact mode on the same f-hat as linear mode: more random features, closer to exact
    x, pos, batch = clouds(dtype=torch.float64)
    few = tiny().double()
    many = tiny(num_features=4096).double()
    state = {k: v for k, v in few.state_dict().items() if not k.endswith("projection")}
    many.load_state_dict(state, strict=False)
    errors = []
    exact = set_attention(few, "exact")(x, pos, batch)
    set_attention(few, "linear")
    for model in (few, many):
        linear = model(x, pos, batch)
        set_attention(model, "exact")
        assert model.attention == "exact"
        assert all(m.attention == "exact" for m in model.modules() if isinstance(m, FLTAttention))
        assert torch.equal(model(x, pos, batch), exact)
        errors.append((linear - exact).abs().max())
    assert 0 < errors[1] < 0.5 * errors[0]


def test_float64_and_deterministic():
    model = tiny()
    x, pos, batch = clouds()
    out = model(x, pos, batch)
    assert torch.equal(model(x, pos, batch), out)  # eval mode: the stored draws
    wide = model.double()(x.double(), pos.double(), batch)
    assert wide.dtype == torch.float64
    assert torch.allclose(wide.float(), out, atol=1e-4)


def test_training_mode_redraws_features():
    model = tiny().train()
    x, pos, batch = clouds()
    assert not torch.equal(model(x, pos, batch), model(x, pos, batch))
    fixed = tiny(redraw="never").train()
    assert torch.equal(fixed(x, pos, batch), fixed(x, pos, batch))


def test_no_features_needs_the_spectral_filter():
    with pytest.raises(ValueError, match="spectral_filter=True or positional='absolute'"):
        PointCloudClassifier(4, in_channels=0)
    model = tiny(in_channels=0, spectral_filter=True)
    assert any(isinstance(m, SpectralFilter) for m in model.modules())
    _, pos, batch = clouds()
    out = model(None, pos, batch)
    assert out.shape == (3, 5)
    assert torch.equal(model(pos.new_zeros(len(pos), 0), pos, batch), out)
    assert not torch.allclose(model(None, 0.5 * pos, batch), out, atol=1e-4)


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_rotation_invariant_without_features_and_with_a_cutoff(attention):
    """Isotropic closed forms within the cutoff, the content kernel beyond it, and points that
    carry no direction: rotating the clouds changes nothing."""
    model = tiny(in_channels=0, spectral_filter=True, cutoff=0.6, attention=attention).double()
    _, pos, batch = clouds(dtype=torch.float64)
    out = model(None, pos, batch)
    for seed in range(2):
        rot = random_rotation(generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(model(None, pos @ rot.T, batch), out, atol=1e-9)
    # normals are features, read as vectors: turning them with the shape changes the logits
    x, pos, batch = clouds(dtype=torch.float64)
    with_normals = tiny(attention=attention, cutoff=0.6).double()
    out = with_normals(x, pos, batch)
    assert torch.allclose(with_normals(x, pos @ rot.T, batch), out, atol=1e-9)
    assert not torch.allclose(with_normals(x @ rot.T, pos @ rot.T, batch), out, atol=1e-4)


def test_config_round_trip_keeps_the_class_names():
    model = tiny(3, classes=["box", "cone", "torus"], positional="absolute")
    config = json.loads(json.dumps(model.config))
    assert config["classes"] == ["box", "cone", "torus"] and config["num_classes"] == 3
    rebuilt = PointCloudClassifier(**config).eval()
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.classes == ["box", "cone", "torus"]
    x, pos, batch = clouds()
    assert torch.equal(rebuilt(x, pos, batch), model(x, pos, batch))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="pooling"):
        PointCloudClassifier(3, pooling="sum")
    with pytest.raises(ValueError, match="classes must be 3 distinct"):
        PointCloudClassifier(3, classes=["a", "b"])
    with pytest.raises(ValueError, match="classes must be 3 distinct"):
        PointCloudClassifier(3, classes=["a", "b", "a"])
    with pytest.raises(ValueError, match="in_channels"):
        PointCloudClassifier(3, in_channels=-1)
    with pytest.raises(ValueError, match="num_classes"):
        PointCloudClassifier(0)
    model = tiny()
    x, pos, batch = clouds()
    with pytest.raises(ValueError, match=r"x must be \[N, 3\]"):
        model(x[:, :2], pos, batch)
    with pytest.raises(ValueError, match=r"x must be \[N, 3\]"):
        model(None, pos, batch)
    with pytest.raises(ValueError, match=r"pos must be \[N, 3\]"):
        model(x, pos[:, :2], batch)


def _surface_points(kind: str, n: int, gen: torch.Generator):
    # points and outward normals on a unit sphere or a cube's surface
    p = torch.randn(n, 3, generator=gen)
    if kind == "sphere":
        p = p / p.norm(dim=1, keepdim=True)
        return p, p.clone()
    axis = p.abs().argmax(dim=1)
    normal = torch.nn.functional.one_hot(axis, 3).float() * p.gather(1, axis[:, None]).sign()
    p = p / p.abs().amax(dim=1, keepdim=True)
    return p / 3**0.5, normal


def test_training_tells_spheres_from_cubes():
    gen = torch.Generator().manual_seed(0)
    data = [_surface_points(kind, 48, gen) for kind in ("sphere", "cube") * 4]
    pos = torch.cat([p for p, _ in data])
    x = torch.cat([n for _, n in data])
    batch = torch.arange(8).repeat_interleave(48)
    y = torch.tensor([0, 1] * 4)
    model = tiny(2).train()
    # fresh random features every step, drawn from the global generator: seeded here, so the
    # run does not depend on what ran before it. Over ten seeds at 60 steps the last losses
    # were at most 0.03 x the first, and nine of ten runs then classified all eight clouds
    # with the stored draw (at 30 steps three of ten missed one, and one stayed above 0.5 x)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, pos, batch), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]
    assert torch.equal(model.eval()(x, pos, batch).argmax(-1), y)


@pytest.mark.parametrize("layer", [0, 1, -1])
@pytest.mark.parametrize("positional", ["rpe", "none"])
def test_attention_weights_are_what_exact_attention_applies(layer, positional):
    model = tiny(attention="exact", positional=positional)
    x, pos, batch = clouds()
    x, pos = x[batch == 1], pos[batch == 1]
    attn = model.blocks[layer].conv.attn
    seen = {}
    hook = attn.register_forward_hook(lambda m, args, out: seen.update(v=args[2], out=out))
    with torch.no_grad():
        model(x, pos)
    hook.remove()
    weights = model.attention_weights(x, pos, layer=layer)
    assert weights.shape == (pos.shape[0], pos.shape[0], 2)
    assert torch.allclose(weights.sum(1), torch.ones(pos.shape[0], 2), atol=1e-5)
    expected = torch.einsum("ijh,jhd->ihd", weights, seen["v"])
    assert torch.allclose(expected, seen["out"], atol=1e-5)


def test_attention_weights_in_linear_mode_estimate_the_exact_ones():
    model = tiny(attention="exact", num_features=4096)
    x, pos, batch = clouds()
    x, pos = x[batch == 0], pos[batch == 0]
    exact = model.attention_weights(x, pos)
    linear = set_attention(model, "linear").attention_weights(x, pos)
    assert bool((linear >= 0).all())
    assert torch.allclose(linear.sum(1), torch.ones(pos.shape[0], 2), atol=1e-5)
    assert (linear - exact).abs().max() < 0.25 * exact.max()  # 8 features: 1.2 x max
    assert not torch.allclose(linear, exact, atol=1e-6)  # an estimate, not the exact weights


def test_attention_weights_check_their_arguments():
    model = tiny()
    x, pos, _ = clouds()
    with pytest.raises(ValueError, match=r"layer must be in \[-2, 2\)"):
        model.attention_weights(x, pos, layer=2)
    with pytest.raises(ValueError, match="layer must be an integer"):
        model.attention_weights(x, pos, layer=True)
    with pytest.raises(ValueError, match=r"pos must be \[P, 3\]"):
        model.attention_weights(x, pos[:, :2])
