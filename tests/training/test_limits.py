"""Upper bounds of a configuration's sizes: each setting's range and the model's estimated size."""

import re

import pytest
import torch

from flt3d.training.checkpoint import CheckpointError
from flt3d.training.config import ConfigError, apply_overrides, load_config, parse_override
from flt3d.training.limits import (
    MAX_PARAMETERS,
    SIZE_LIMITS,
    check_sizes,
    estimated_parameters,
)
from flt3d.training.tasks import TASKS, section_keys, validate_config

TOO_BIG = [
    ("qm9", "model.num_layers=1000000"),
    ("qm9", "model.hidden_channels=1000000000"),
    ("atoms", "model.num_features=100000000"),
    ("digits", "model.heads=1000000"),
    ("pydoc_lm", "model.num_frequencies=1000000"),
    ("atoms", "model.latent_charges=1000000"),
    ("qm9", "model.filter_heads=1000000"),
    ("qm9", "model.out_channels=1000000"),
    ("qm9", "model.mlp_ratio=1e9"),
    ("qm9", "model.num_layers=1e9"),
    ("qm9", "model.num_layers=.inf"),
    ("pointcloud", "model.in_channels=100000000"),
    ("digits", "model.num_classes=1000000000"),
    ("digits", "model.image_size=1000000"),
    ("pydoc_lm", "model.max_length=1000000000"),
    ("qm9", "data.batch_size=1000000000"),
    ("atoms", "data.eval_batch_size=1000000000"),
    ("qm9", "data.num_workers=1000000"),
    ("pointcloud", "data.num_points=1000000000"),
    ("pydoc_lm", "data.length=1000000000"),
    ("pydoc_lm", "data.train_windows=1000000000000"),
]


@pytest.mark.parametrize(("name", "override"), TOO_BIG, ids=[o for _, o in TOO_BIG])
def test_sizes_beyond_their_range_are_config_errors(name, override):
    key = override.partition("=")[0]
    value = parse_override(override)[1]
    config = apply_overrides(load_config(name), [override])
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    pattern = (
        rf"config key '{key}' is {re.escape(repr(value))}, beyond the allowed range \d+ to \d+"
    )
    assert re.fullmatch(pattern, str(info.value)), str(info.value)


def test_every_limit_is_a_key_of_some_task():
    keys = set()
    for task in TASKS.values():
        sections = section_keys(task)
        keys |= {f"{section}.{name}" for section in ("model", "data") for name in sections[section]}
        keys |= {f"model.{name}" for name in task.data_provided}
    assert set(SIZE_LIMITS) <= keys, set(SIZE_LIMITS) - keys


@pytest.mark.parametrize("name", sorted(TASKS))
def test_shipped_configs_are_far_within_the_limits(name):
    config = validate_config(load_config(name))
    for section in ("model", "data"):
        for key, value in config[section].items():
            limit = SIZE_LIMITS.get(f"{section}.{key}")
            if limit is not None and value is not None:
                assert value <= limit[1] / 16, (section, key, value)
    model = TASKS[name].model()
    assert estimated_parameters(model, config["model"]) < MAX_PARAMETERS / 1000


def test_values_at_the_limit_and_of_other_types_pass():
    check_sizes({"model": {"num_layers": 1024, "hidden_channels": "x", "heads": None}})
    check_sizes({"model": {"num_layers": True, "num_features": float("nan")}, "data": [1]})
    with pytest.raises(ConfigError, match="'model.num_layers' is 1025, beyond"):
        check_sizes({"model": {"num_layers": 1025}})


# data the data modules provide, so that the models build without them
_PROVIDED = {
    "pydoc_lm": {"vocab_size": 100},
    "pointcloud": {"num_classes": 10},
    "atoms": {"elements": [1, 6, 8, 29], "target": "energy"},
}
_VARIANTS = [
    {}, {"mlp_ratio": 4.0}, {"num_features": 512}, {"num_frequencies": 64},
    {"num_layers": 1, "hidden_channels": 256}, {"positional": "absolute"}, {"latent_charges": 4},
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("variant", _VARIANTS, ids=[str(v) for v in _VARIANTS])
def test_estimate_is_within_a_factor_of_two_of_the_count(name, variant):
    model = TASKS[name].model()
    options = {**load_config(name)["model"], **_PROVIDED.get(name, {})}
    if any(key not in section_keys(TASKS[name])["model"] for key in variant):
        pytest.skip(f"{name} has no {', '.join(variant)}")
    options.update(variant)
    try:
        built = model(**options)
    except ValueError as error:  # latent charges of an intensive target, ...
        pytest.skip(str(error))
    count = sum(p.numel() for p in built.parameters()) + sum(b.numel() for b in built.buffers())
    assert 0.5 <= estimated_parameters(model, options) / count <= 2


def test_sizes_that_multiply_beyond_the_budget_are_named():
    config = apply_overrides(
        load_config("qm9"), ["model.hidden_channels=8192", "model.num_layers=1024"]
    )
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    assert re.fullmatch(
        r"the model would hold about \d\.\de\+11 parameters, more than the 1e\+09 allowed; "
        r"reduce model\.hidden_channels=8192, model\.num_layers=1024",
        str(info.value),
    ), str(info.value)


@pytest.mark.parametrize("sizes", [{"num_layers": 10**6}, {"hidden_channels": 10**9}])
def test_checkpoint_of_an_absurd_model_is_refused_before_building(tmp_path, sizes, no_fltnet):
    from flt3d.training.run import load_module

    path = tmp_path / "absurd.ckpt"
    entry = {"task": "qm9", "model": {"hidden_channels": 8, **sizes}, "module": {}, "data": {}}
    torch.save({"flt3d": entry, "state_dict": {}}, path)
    [(key, value)] = sizes.items()
    with pytest.raises(CheckpointError, match=f"'model.{key}' is {value}, beyond the allowed"):
        load_module(path)
