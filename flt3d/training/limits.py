"""Upper bounds of the sizes a run configuration may ask for.

A size far beyond any real use (``model.num_layers=1000000``, ``model.hidden_channels=10**9``) does
not fail by itself: building the model exhausts the machine's memory or runs for hours. So every
size-like setting has an allowed range, :data:`SIZE_LIMITS`, generous for real use (the shipped
configurations use a few percent of it at most), and the model as a whole may hold at most
:data:`MAX_PARAMETERS` parameters and buffers, estimated from its options before it is built
(:func:`estimated_parameters`), since sizes that are each allowed can still multiply into an
absurd model (``hidden_channels=16384`` with ``num_layers=1024``).

Both are checked by :func:`flt3d.training.tasks.validate_config`, before any data is read, any
model built or any run folder made, and again when a module is built from a checkpoint. Values
below a range, or of the wrong type, are left to the model and data checks, which name them.

Example:
    >>> check_sizes({"task": "qm9", "model": {"num_layers": 10**6}})
    Traceback (most recent call last):
        ...
    flt3d.training.config.ConfigError: config key 'model.num_layers' is 1000000, beyond the allowed range 1 to 1024
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

from flt3d.training.config import ConfigError

__all__ = [
    "MAX_PARAMETERS",
    "SIZE_LIMITS",
    "check_model_size",
    "check_sizes",
    "estimated_parameters",
]

SIZE_LIMITS: dict[str, tuple[float, float]] = {
    "model.hidden_channels": (1, 16_384),
    "model.num_layers": (1, 1_024),
    "model.heads": (1, 1_024),
    "model.filter_heads": (1, 16_384),
    "model.num_features": (1, 65_536),
    "model.num_frequencies": (1, 4_096),
    "model.latent_charges": (0, 1_024),
    "model.out_channels": (1, 4_096),
    "model.in_channels": (0, 4_096),
    "model.num_classes": (1, 100_000),
    "model.image_size": (1, 4_096),
    "model.patch_size": (1, 4_096),
    "model.max_length": (1, 1_048_576),
    "model.vocab_size": (1, 1_048_576),
    "model.mlp_ratio": (0, 64),
    "data.batch_size": (1, 65_536),
    "data.eval_batch_size": (1, 65_536),
    "data.num_workers": (0, 256),
    "data.num_points": (1, 1_048_576),
    "data.length": (1, 1_048_576),
    "data.train_windows": (1, 10_000_000),
}
"""Allowed range ``(lowest, highest)`` of each size-like setting, by dotted config key, for every
task that has the key. The shipped configurations use at most: 128 channels, 4 layers, 8 heads,
64 features, 16 frequencies, batches of 64, 128 points, windows of 128 characters."""

MAX_PARAMETERS = 10**9
"""Most parameters and buffers (estimated) a model may hold: 4 GB in float32, 16 GB with its
gradients and Adam's moments."""

# options that are sizes of the model, named in the message of a model beyond MAX_PARAMETERS
_MODEL_SIZES = tuple(key.partition(".")[2] for key in SIZE_LIMITS if key.startswith("model."))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_sizes(config: Mapping[str, Any]) -> None:
    """Check the sizes of a configuration's ``model`` and ``data`` sections against their limits.

    Args:
        config: a run configuration, or any mapping with ``model`` and ``data`` sections.

    Raises:
        ConfigError: naming the first key whose number is beyond its range in
            :data:`SIZE_LIMITS`, with its value and the range.
    """
    for section in ("model", "data"):
        values = config.get(section)
        if not isinstance(values, Mapping):
            continue
        for name, value in values.items():
            key = f"{section}.{name}"
            if key in SIZE_LIMITS and _number(value) and value > SIZE_LIMITS[key][1]:
                lowest, highest = SIZE_LIMITS[key]
                raise ConfigError(
                    f"config key {key!r} is {value!r}, beyond the allowed range {lowest} to "
                    f"{highest}"
                )


def estimated_parameters(model: type, options: Mapping[str, Any]) -> int:
    """About how many parameters and buffers ``model(**options)`` holds, without building it.

    .. math::
        P \\approx L \\left(h^2 (6 + 2r) + h (2 M + 4 F) + H F\\right) + h^2 + h E

    for ``num_layers`` :math:`L`, ``hidden_channels`` :math:`h`, ``mlp_ratio`` :math:`r`,
    ``num_features`` :math:`M`, ``num_frequencies`` :math:`F`, ``heads`` :math:`H`, and
    :math:`E` the sizes of the inputs and outputs (classes, vocabulary, input channels times
    patch area, positions embedded, latent charges). Within a factor of two of the count of
    the shipped models. Options that are missing, or not numbers, count at the model's
    defaults.

    Args:
        model: the model class (its signature gives the defaults).
        options: its keyword arguments (a ``model`` section).

    Example:
        >>> from flt3d.models.fltnet import FLTNet
        >>> estimated_parameters(FLTNet, {"num_layers": 1000, "hidden_channels": 64}) > 10**7
        True
    """
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(model).parameters.items()
        if parameter.default is not parameter.empty
    }

    def size(name: str, missing: float = 0) -> float:
        if name not in defaults and name not in options:
            return missing
        value = options.get(name, defaults.get(name))
        if not _number(value) or not math.isfinite(value):
            value = defaults.get(name)
        return max(float(value), 0.0) if _number(value) else missing

    h, layers, heads = size("hidden_channels"), size("num_layers"), size("heads")
    ratio, features, frequencies = (
        size("mlp_ratio", 2),
        size("num_features"),
        size("num_frequencies"),
    )
    patch = size("patch_size", 1)
    absolute = options.get("positional", defaults.get("positional")) == "absolute"
    ends = (
        size("in_channels") * patch**2
        + size("num_classes")
        + size("out_channels")
        + 2 * size("vocab_size")
        + size("latent_charges")
        + (size("max_length") + (size("image_size") / max(patch, 1)) ** 2 if absolute else 0)
    )
    block = h * h * (6 + 2 * ratio) + h * (2 * features + 4 * frequencies) + heads * frequencies
    return int(min(layers * block + h * h + h * ends, 1e30))


def check_model_size(model: type, options: Mapping[str, Any]) -> None:
    """Refuse a model beyond :data:`MAX_PARAMETERS` (estimated), naming its size options.

    Raises:
        ConfigError: with the estimate, the limit and the ``model.KEY=VALUE`` sizes set above the
            model's defaults (all the sizes set, if none is).
    """
    count = estimated_parameters(model, options)
    if count <= MAX_PARAMETERS:
        return
    defaults = {name: p.default for name, p in inspect.signature(model).parameters.items()}
    given = [name for name in _MODEL_SIZES if name in options and _number(options[name])]
    larger = [  # the sizes set above the model's defaults make it big
        name for name in given if not _number(defaults.get(name)) or options[name] > defaults[name]
    ]
    sizes = ", ".join(f"model.{name}={options[name]!r}" for name in larger or given)
    raise ConfigError(
        f"the model would hold about {count:.2g} parameters, more than the {MAX_PARAMETERS:.0g} "
        f"allowed; reduce {sizes or 'its sizes'}"
    )
