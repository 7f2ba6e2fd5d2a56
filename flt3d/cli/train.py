"""The ``flt3d train`` command: a configuration, its overrides and a run folder, then a fit."""

from __future__ import annotations

import argparse
import os

from .inputs import existing_file
from .messages import HANDLED, fail, naming_overrides

__all__ = ["default_output", "train"]


def train(args: argparse.Namespace) -> int:
    """Train as ``args`` say; print the run folder, its checkpoints and their evaluations."""
    from flt3d.training.config import ConfigError, apply_overrides, load_config
    from flt3d.training.run import CONFIG_FILE, prepare_fit

    try:
        if args.output is None:
            name = _config_name(args.config or ("atoms" if args.data else "qm9"))
            output = default_output(name, resume=args.resume)
        else:
            output = args.output
        saved = os.path.join(output, CONFIG_FILE)
        if args.config is None and args.resume and os.path.isfile(saved):
            config = load_config(saved)
        else:
            config = load_config(args.config or ("atoms" if args.data else "qm9"))
        if args.data is not None:
            if config.get("task") != "atoms":
                raise ConfigError(
                    f"--data trains the 'atoms' task (energies and forces); the config is a "
                    f"{config.get('task')!r} task"
                )
            config.setdefault("data", {})["path"] = existing_file(args.data)
        config = apply_overrides(config, args.overrides)
        _check_threads(config.get("num_threads"))
        run = prepare_fit(config, output, resume=args.resume)
    except HANDLED as error:
        if isinstance(error, ConfigError) and args.resume and args.output is None:
            error = ConfigError(f"{error} (pass the run folder with --output)")
        return fail("train", naming_overrides(error, args.overrides))
    except Exception as error:  # nothing has trained yet: a value that the model, data module,
        # optimiser or lightning.Trainer rejects with its own exception (TypeError, ...)
        error = ValueError(f"the configuration cannot be used: {type(error).__name__}: {error}")
        return fail("train", naming_overrides(error, args.overrides))
    evaluations = run.run()
    if not run.trainer.is_global_zero:
        return 0
    print(f"run folder: {run.output}")
    print(f"last checkpoint: {run.last_checkpoint} (step {run.trainer.global_step})")
    if not evaluations:
        print("no validation ran, so there is no best checkpoint to evaluate")
        return 0
    print(f"best checkpoint: {run.best_checkpoint}")
    for evaluation in evaluations:
        for line in evaluation.lines:
            print(line)
    return 0


def default_output(name: str, *, resume: bool) -> str:
    """``runs/NAME``; a fresh run takes the first of ``runs/NAME``, ``runs/NAME-2``, ... that
    holds no checkpoint yet, ``--resume`` the last one that does."""
    from flt3d.training.run import checkpoint_paths

    base = os.path.join("runs", name)
    k = 1
    while os.path.isfile(checkpoint_paths(_version_dir(base, k))[1]):
        k += 1
    if resume:
        return _version_dir(base, max(k - 1, 1))
    return _version_dir(base, k)


def _version_dir(base: str, k: int) -> str:
    return base if k == 1 else f"{base}-{k}"


def _config_name(config: str) -> str:
    name = os.path.basename(config)
    return name[: -len(".yaml")] if name.endswith(".yaml") else os.path.splitext(name)[0]


def _check_threads(threads: object) -> None:
    # torch.set_num_threads takes any positive number, and crashes the process far beyond it
    from flt3d.nn.checks import check_int
    from flt3d.training.config import ConfigError

    cores = os.cpu_count() or 1
    check_int(threads, "config key 'num_threads'", none="null", error=ConfigError)
    if threads is not None and threads > cores:
        raise ConfigError(
            f"config key 'num_threads' is {threads}, more than the {cores} CPU cores of this "
            f"machine; expected at most {cores}, or null for PyTorch's default"
        )
