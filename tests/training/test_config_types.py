"""Type checks of configuration values against the annotations of the callables they configure."""

import inspect
import re
from typing import Literal

import pytest

from flt3d.training.config import ConfigError, apply_overrides, load_config
from flt3d.training.config_types import check_types, checked_parameters
from flt3d.training.tasks import TASKS, _section_callables, validate_config

WRONG_TYPES = [
    # (config, override, message)
    ("qm9", "model.hidden_channels=abc", "'model.hidden_channels' must be int, got 'abc'"),
    ("digits", "model.num_layers=2.5", "'model.num_layers' must be int, got 2.5"),
    ("qm9", "data.batch_size=true", "'data.batch_size' must be int, got True"),
    ("qm9", "optim.lr=fast", "'optim.lr' must be float, got 'fast'"),
    ("atoms", "module.forces_weight=[1]", "'module.forces_weight' must be float, got [1]"),
    ("qm9", "model.closed_form_rpe=3", "'model.closed_form_rpe' must be bool, got 3"),
    ("qm9", "data.sample=[true]", "'data.sample' must be bool, got [True]"),
    ("qm9", "trainer.deterministic=maybe", "'trainer.deterministic' must be bool | 'warn' | None"),
    ("qm9", "trainer.precision=15", "'trainer.precision' must be 64 | 32 | 16 | 'transformer"),
    ("qm9", "model.head=3", "'model.head' must be str | None, got 3"),
    ("qm9", "model.elements=[1, [6]]", "'model.elements' must be Sequence[int | str], got [1, [6]]"),
    ("qm9", "optim.betas=x", "'optim.betas' must be Sequence[float], got 'x'"),
    ("qm9", "trainer.max_time={minutes: x}", "'trainer.max_time' must be str | timedelta | dict[str, int] | None, got {'minutes': 'x'}"),
    ("atoms", "data.eval_batch_size={a: 1}", "'data.eval_batch_size' must be int | None, got {'a': 1}"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "override", "message"), WRONG_TYPES, ids=[o for _, o, _ in WRONG_TYPES]
)
def test_values_of_the_wrong_type_are_config_errors_naming_key_and_type(name, override, message):
    config = apply_overrides(load_config(name), [override])
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    assert str(info.value).startswith(f"config key {message}"), str(info.value)


def _literal_model(*, hidden_channels: int = 8, pooling: Literal["mean", "max"] = "mean"):
    """A model whose options are a size and a string choice."""


def test_string_choice_annotated_with_literal():
    check_types({"pooling": "max"}, _literal_model, "model")
    with pytest.raises(
        ConfigError, match=r"^config key 'model.pooling' must be 'mean' \| 'max', got 'sum'$"
    ):
        check_types({"pooling": "sum"}, _literal_model, "model")


def test_values_of_their_type_pass_and_stay_as_given():
    overrides = [
        "optim.lr=1", "model.mean=[0, 1.5]", "trainer.max_time=00:00:01:00", "trainer.devices=1",
        "trainer.precision=16-mixed", "trainer.max_time={minutes: 2}", "data.root=null",
        "model.target=7",
    ]  # fmt: skip
    config = validate_config(apply_overrides(load_config("qm9"), overrides))
    assert config["optim"]["lr"] == 1 and isinstance(config["optim"]["lr"], int)
    assert config["model"]["mean"] == [0, 1.5] and isinstance(config["model"]["mean"][0], int)
    assert config["trainer"]["max_time"] == {"minutes": 2}
    assert config["model"]["target"] == 7


def test_annotations_that_name_classes_are_not_checked():
    # Tensor | Sequence | dict | None, and the Trainer's Profiler | str | None: values pass as
    # today, to the model's and the run's own checks
    model = checked_parameters(TASKS["qm9"].model())
    trainer = checked_parameters(_section_callables(TASKS["qm9"])["trainer"][0])
    assert "atomref" not in model and model["hidden_channels"] == "int"
    assert {"profiler", "strategy", "accelerator"}.isdisjoint(trainer)
    assert trainer["max_epochs"] == "int | None"
    config = {"task": "qm9", "model": {"atomref": {"H": -0.5}}, "trainer": {"profiler": -1}}
    assert validate_config(config)["trainer"]["profiler"] == -1


def test_managed_and_data_provided_parameters_are_not_checked():
    callable_, exclude = _section_callables(TASKS["pydoc_lm"])["model"]
    assert "vocab_size" not in checked_parameters(callable_, exclude)
    callable_, exclude = _section_callables(TASKS["qm9"])["optim"]
    assert {"module", "total_steps", "monitor"}.isdisjoint(checked_parameters(callable_, exclude))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_checked_default_is_of_its_type(task):
    for section, (callable_, exclude) in _section_callables(TASKS[task]).items():
        parameters = inspect.signature(callable_).parameters
        checked = checked_parameters(callable_, exclude)
        assert checked or section == "module", (task, section)
        defaults = {name: parameters[name].default for name in checked}
        check_types(defaults, callable_, section, exclude)


def test_null_is_left_to_the_callable():
    # as before: optim.lr= reaches configure_optimizers, which names it
    assert validate_config({"optim": {"lr": None}})["optim"]["lr"] is None


def test_unknown_keys_are_reported_before_types():
    config = {"model": {"hidden_channels": "abc", "hidden_chanels": 8}}
    with pytest.raises(ConfigError, match=re.escape("unknown config key 'model.hidden_chanels'")):
        validate_config(config)
