import inspect
import json

import pytest
import torch

from flt3d.models import FLTNet, ImageClassifier, PointCloudClassifier, SequenceModel
from flt3d.models._common import constructor_config

TINY = dict(hidden_channels=16, num_layers=1, heads=2, num_features=8, num_frequencies=4)

# arguments as a user may write them: ints for floats and flags, tuples, tensors, resolved defaults
MODELS = [
    (FLTNet, {}),
    (
        FLTNet,
        dict(
            target="mu",
            attention="linear",
            cutoff=4,
            length_scale=1,
            far_temperature=1,
            far_attention=0,
            mlp_ratio=3,
            elements=("H", "C", 8),
            mean=torch.tensor([1.0]),
            std=(2.0,),
            atomref={1: -0.5, "C": torch.tensor(-1.0)},
        ),
    ),
    (FLTNet, dict(latent_charges=2, long_range="isotropic_mixture", atomref=torch.zeros(10))),
    (ImageClassifier, {}),
    (ImageClassifier, dict(positional="absolute", image_size=4, patch_size=2, length_scale=2)),
    (SequenceModel, dict(vocab_size=12)),
    (SequenceModel, dict(vocab_size=5, positional="none", mlp_ratio=1, dropout=0)),
    (PointCloudClassifier, dict(num_classes=10)),
    (
        PointCloudClassifier,
        dict(num_classes=3, in_channels=0, spectral_filter=1, cutoff=1, classes=("a", "b", "c")),
    ),
]


@pytest.mark.parametrize(("cls", "arguments"), MODELS)
def test_config_is_the_signature(cls, arguments):
    model = cls(**{**TINY, **arguments})
    assert list(model.config) == list(inspect.signature(cls).parameters)
    assert cls(**model.config).config == model.config
    assert json.loads(json.dumps(model.config)) == model.config  # plain values only
    for name, parameter in inspect.signature(cls, eval_str=True).parameters.items():
        value = model.config[name]
        if parameter.annotation in (float, float | None) and value is not None:
            assert type(value) is float, name
        if parameter.annotation is bool:
            assert type(value) is bool, name


def test_config_keeps_what_the_constructor_resolves():
    model = FLTNet(**TINY, target="mu", dropout=0, elements=("H", "O"), atomref={8: -2})
    assert model.config["head"] == "dipole"  # chosen from the target
    assert model.config["dropout"] == 0.0 and type(model.config["dropout"]) is float
    assert model.config["elements"] == [1, 8]
    assert model.config["atomref"] == {"O": -2}
    cloud = PointCloudClassifier(2, **TINY, classes=("a", "b"))
    assert cloud.config["classes"] == ["a", "b"]


def test_constructor_config():
    class Model:
        def __init__(self, width: int, *, scale: float | None = 1, flag: bool = False): ...

    arguments = {"self": None, "width": 4, "scale": 2, "flag": 1, "other": 0}
    assert constructor_config(Model, arguments) == {"width": 4, "scale": 2.0, "flag": True}
    assert constructor_config(Model, {**arguments, "scale": None}, width=8, flag="kept") == {
        "width": 8,
        "scale": None,
        "flag": "kept",
    }
    with pytest.raises(TypeError, match="depth"):
        constructor_config(Model, arguments, depth=3)
    with pytest.raises(KeyError):
        constructor_config(Model, {"width": 4})

    class Open:
        def __init__(self, **options): ...

    with pytest.raises(TypeError, match="options"):
        constructor_config(Open, {"options": {}})
