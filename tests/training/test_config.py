import pytest
import yaml

from flt3d.training.config import (
    ConfigError,
    apply_overrides,
    check_keys,
    load_config,
    parse_override,
    shipped_configs,
)
from flt3d.training.tasks import TASKS, section_keys, validate_config


def test_shipped_configs_are_the_five_examples():
    assert shipped_configs() == ["atoms", "digits", "pointcloud", "pydoc_lm", "qm9"]


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_validates(name):
    config = validate_config(load_config(name))
    assert config["task"] == name
    assert set(config) == {
        "task", "seed", "num_threads", "model", "data", "module", "optim", "trainer",
    }  # fmt: skip


def test_load_config_by_name_with_suffix_and_by_path(tmp_path):
    assert load_config("qm9.yaml") == load_config("qm9")
    path = tmp_path / "mine.yaml"
    path.write_text("task: digits\nmodel:\n  hidden_channels: 8\n")
    assert load_config(str(path)) == {"task": "digits", "model": {"hidden_channels": 8}}


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="'nope'.*shipped configs: atoms, digits, pointcloud, pydoc_lm, qm9"):
        load_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot parse config"):
        load_config(str(bad))
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(str(listing))


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("model.hidden_channels=64", ["model", "hidden_channels"], 64),
        ("optim.lr=1e-3", ["optim", "lr"], 1e-3),
        ("data.sample=false", ["data", "sample"], False),
        ("data.root=null", ["data", "root"], None),
        ("data.root=", ["data", "root"], None),
        ("optim.betas=[0.9, 0.95]", ["optim", "betas"], [0.9, 0.95]),
        ("model.target=U0", ["model", "target"], "U0"),
        ("trainer.max_time=00:00:01:00", ["trainer", "max_time"], "00:00:01:00"),
        ("seed=3", ["seed"], 3),
    ],
)
def test_parse_override_values_are_yaml(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["model", "=3", "model..x=1", "1model=2", "model.x y=1"])
def test_parse_override_rejects_bad_syntax(text):
    with pytest.raises(ConfigError, match="bad override"):
        parse_override(text)


def test_parse_override_rejects_bad_yaml():
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_override("model.x=[1, 2")


def test_values_that_contain_themselves_are_config_errors(tmp_path):
    # they recursed without end: a RecursionError traceback from flt3d eval --set
    with pytest.raises(ConfigError, match=r"bad override 'data.x=&a \[\*a\]': the value contains"):
        parse_override("data.x=&a [*a]")
    with pytest.raises(ConfigError, match="'trainer.y=&b {k: \\*b}': the value contains itself"):
        parse_override("trainer.y=&b {k: *b}")
    assert parse_override("data.x=[&a [1e-3], *a]")[1] == [[0.001], [0.001]]  # shared, not inside
    path = tmp_path / "loop.yaml"
    path.write_text("model: &m\n  heads: *m\n")
    with pytest.raises(ConfigError, match="cannot use config '.*loop.yaml': the value contains"):
        load_config(str(path))


def test_apply_overrides_copies_and_nests():
    config = {"model": {"heads": 4}, "seed": 0}
    out = apply_overrides(config, ["model.heads=2", "trainer.max_epochs=1"])
    assert out == {"model": {"heads": 2}, "seed": 0, "trainer": {"max_epochs": 1}}
    assert config == {"model": {"heads": 4}, "seed": 0}
    with pytest.raises(ConfigError, match="'seed' is a value, not a section"):
        apply_overrides(config, ["seed.x=1"])


def test_check_keys_suggests_close_match():
    with pytest.raises(
        ConfigError, match="'model.hidden_chanels'; did you mean 'model.hidden_channels'"
    ):
        check_keys({"hidden_chanels": 1}, ["hidden_channels"], "model")
    with pytest.raises(ConfigError, match="must be a mapping"):
        check_keys([1], ["a"], "model")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.hidden_chanels=8", "model.hidden_chanels"),
        ("data.batchsize=8", "data.batchsize"),
        ("module.los=l1", "module.los"),
        ("optim.learning_rate=1", "optim.learning_rate"),
        ("trainer.max_epoch=1", "trainer.max_epoch"),
        ("extra.key=1", "extra"),
    ],
)
def test_validate_config_rejects_unknown_keys(override, key):
    config = apply_overrides(load_config("qm9"), [override])
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        validate_config(config)


def test_validate_config_rejects_managed_trainer_keys_and_data_provided_model_keys():
    with pytest.raises(ConfigError, match="'trainer.callbacks'"):
        validate_config({"task": "qm9", "trainer": {"callbacks": []}})
    with pytest.raises(ConfigError, match="'model.vocab_size' is set by the pydoc_lm data"):
        validate_config({"task": "pydoc_lm", "model": {"vocab_size": 10}})


def test_validate_config_rejects_unknown_task_and_bad_seed():
    with pytest.raises(ConfigError, match="unknown task 'qm10'"):
        validate_config({"task": "qm10"})
    with pytest.raises(ConfigError, match="'seed' must be a non-negative integer"):
        validate_config({"seed": "x"})
    with pytest.raises(ConfigError, match="'num_threads' must be a positive integer or null"):
        validate_config({"num_threads": 0})


def test_validate_config_fills_sections():
    config = validate_config({})
    assert config == {
        "task": "qm9", "seed": 0, "num_threads": None, "model": {}, "data": {}, "module": {},
        "optim": {}, "trainer": {},
    }  # fmt: skip


@pytest.mark.parametrize("task", sorted(TASKS))
def test_section_keys_come_from_signatures(task):
    keys = section_keys(TASKS[task])
    assert "lr" in keys["optim"] and "module" not in keys["optim"]
    assert "max_epochs" in keys["trainer"] and "logger" not in keys["trainer"]
    assert "hidden_channels" in keys["model"]
    assert "batch_size" in keys["data"]


def test_shipped_configs_are_plain_yaml():
    # the examples double as documentation: every section is a plain mapping
    from importlib import resources

    for name in shipped_configs():
        text = resources.files("flt3d").joinpath("configs", f"{name}.yaml").read_text()
        assert isinstance(yaml.safe_load(text), dict)
