"""Run configurations: YAML files, shipped examples and ``KEY=VALUE`` overrides.

A run configuration is a nested mapping with the sections

============================  ======================================================================
``task``                      ``"qm9"``, ``"atoms"``, ``"pydoc_lm"``, ``"digits"`` or
                              ``"pointcloud"`` (see :mod:`flt3d.training.tasks`)
``seed``                      seed of ``lightning.seed_everything``
``num_threads``               CPU threads of each training process (``torch.set_num_threads``);
                              ``null`` keeps PyTorch's default (one per core)
``checkpoint_every_n_steps``  also write ``checkpoints/last.ckpt`` every this many optimiser steps,
                              so that ``--resume`` continues from the middle of an epoch exactly
                              where the run stopped (see :mod:`flt3d.training.resume`); absent or
                              ``null``: at the end of each epoch only
``model``                     keyword arguments of the task's model (``FLTNet``, ...)
``data``                      keyword arguments of the task's ``LightningDataModule``
``module``                    further keyword arguments of the task's ``LightningModule`` (``loss``)
``optim``                     keyword arguments of :func:`flt3d.training.optim.configure_optimizers`
``trainer``                   keyword arguments of ``lightning.Trainer`` (loggers, callbacks and
                              checkpoint I/O are set by :func:`flt3d.training.run.prepare_fit`)
============================  ======================================================================

Unknown keys are errors (see :func:`flt3d.training.tasks.validate_config`), so a typo never
silently falls back to a default, and so are sizes beyond their allowed range and models beyond
the parameter budget (see :mod:`flt3d.training.limits`), which would exhaust the memory instead. Shipped examples live in ``flt3d/configs/`` and double as test
fixtures.

Example:
    >>> config = load_config("qm9")
    >>> config = apply_overrides(config, ["model.hidden_channels=64", "trainer.max_epochs=3"])
    >>> config["model"]["hidden_channels"], config["trainer"]["max_epochs"]
    (64, 3)
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "SECTIONS",
    "ConfigError",
    "apply_overrides",
    "check_keys",
    "load_config",
    "parse_override",
    "shipped_configs",
]

SECTIONS: tuple[str, ...] = (
    "task", "seed", "num_threads", "checkpoint_every_n_steps", "model", "data", "module", "optim",
    "trainer",
)  # fmt: skip
"""Top-level keys of a run configuration."""

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# YAML 1.1 (PyYAML) reads 1e-3 as a string: it wants a dot in the mantissa (1.0e-3)
_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _numbers(value: Any, _inside: tuple = ()) -> Any:
    """``value`` with strings in exponent notation (``"1e-3"``) read as floats, recursively.

    Raises:
        ConfigError: if ``value`` contains itself (the YAML ``&a [*a]``), which no option takes
            and which would recurse without end.
    """
    if isinstance(value, str) and _EXPONENT.match(value.strip()):
        return float(value)
    if isinstance(value, (dict, list)):
        if any(value is outer for outer in _inside):
            raise ConfigError("the value contains itself (a YAML alias inside its own anchor)")
        inside = (*_inside, value)
        if isinstance(value, dict):
            return {key: _numbers(item, inside) for key, item in value.items()}
        return [_numbers(item, inside) for item in value]
    return value


class ConfigError(ValueError):
    """A configuration that cannot be used: unreadable file, bad override, unknown key."""


def shipped_configs() -> list[str]:
    """Names of the example configurations shipped in ``flt3d/configs`` (without ``.yaml``).

    Example:
        >>> shipped_configs()
        ['atoms', 'digits', 'pointcloud', 'pydoc_lm', 'qm9']
    """
    folder = resources.files("flt3d").joinpath("configs")
    return sorted(
        entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml")
    )


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"cannot parse config {source}: {error}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(
            f"config {source} must be a mapping of sections, got {type(config).__name__}"
        )
    try:
        return _numbers(config)
    except ConfigError as error:
        raise ConfigError(f"cannot use config {source}: {error}") from None


def load_config(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """Read a run configuration from a YAML file or a shipped example.

    Args:
        name_or_path: a path to a YAML file, or the name of a shipped example (``"qm9"``,
            ``"qm9.yaml"``; see :func:`shipped_configs`). An existing file wins over a
            shipped name.

    Returns:
        The configuration as a plain nested ``dict`` (not yet validated).

    Raises:
        ConfigError: if the file does not exist and no example has that name, or the YAML is
            invalid or not a mapping.
    """
    path = os.fspath(name_or_path)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config {path!r}: {error}") from None
        return _read_yaml(text, repr(path))
    name = os.path.basename(path)
    name = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if name == path.removesuffix(".yaml") and name in shipped_configs():
        text = resources.files("flt3d").joinpath("configs", f"{name}.yaml").read_text("utf-8")
        return _read_yaml(text, f"{name!r} (shipped)")
    raise ConfigError(
        f"config {path!r} is neither a file nor a shipped config; shipped configs: "
        f"{', '.join(shipped_configs())}"
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split one ``KEY=VALUE`` override into its key path and its value.

    The key is a dotted path (``model.hidden_channels``); the value is parsed with
    ``yaml.safe_load``, so ``64`` is an int, ``1e-3`` a float (also without the dot YAML 1.1
    asks for), ``true`` a bool, ``null``
    ``None``, ``[1, 2]`` a list, and anything else a string. An empty value is ``None``.

    Raises:
        ConfigError: naming ``text`` if it has no ``=``, the key is not a dotted path of
            identifiers, or the value is not valid YAML or contains itself (``&a [*a]``).

    Example:
        >>> parse_override("optim.lr=1e-3")
        (['optim', 'lr'], 0.001)
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(
            f"bad override {text!r}: expected KEY=VALUE with a dotted KEY, "
            "e.g. model.hidden_channels=64"
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except (yaml.YAMLError, RecursionError):
        raise ConfigError(f"bad override {text!r}: the value is not valid YAML") from None
    try:
        return key.split("."), _numbers(parsed)
    except ConfigError as error:
        raise ConfigError(f"bad override {text!r}: {error}") from None


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``config`` with ``KEY=VALUE`` overrides applied in order.

    Missing intermediate sections are created; whether a key is known is checked later by
    :func:`flt3d.training.tasks.validate_config`.

    Raises:
        ConfigError: for a malformed override (see :func:`parse_override`) or one that
            descends into a value that is not a section (``seed.x=1``).
    """
    config = copy.deepcopy(dict(config))
    for text in overrides:
        path, value = parse_override(text)
        node = config
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"bad override {text!r}: {where!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return config


def check_keys(mapping: Any, allowed: Iterable[str], where: str) -> None:
    """Check that ``mapping`` is a mapping whose keys are all in ``allowed``.

    Args:
        mapping: the section to check.
        allowed: the keys it may have.
        where: the section's dotted name, for messages (``"model"``).

    Raises:
        ConfigError: naming the first unknown key with ``where`` and a close match when
            there is one, or if ``mapping`` is not a mapping.

    Example:
        >>> check_keys({"hidden_chanels": 64}, ["hidden_channels", "heads"], "model")
        Traceback (most recent call last):
            ...
        flt3d.training.config.ConfigError: unknown config key 'model.hidden_chanels'; did you mean 'model.hidden_channels'?
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"config section {where!r} must be a mapping of keys, got {type(mapping).__name__}"
        )
    allowed = list(allowed)
    for key in mapping:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (
                f"; did you mean {(f'{where}.' if where else '') + close[0]!r}?"
                if close
                else f"; known keys: {', '.join(sorted(allowed))}"
            )
            raise ConfigError(f"unknown config key {name!r}{hint}")
