r"""Turn a finished QM9 training run into a shipped pretrained model and its card.

::

    python -m flt3d.pretrained.export runs/qm9-gap --name qm9-gap

reads ``RUN/checkpoints/best.ckpt`` (the weights) and ``RUN/checkpoints/last.ckpt`` (how long
the run trained), writes ``NAME.pt`` without optimiser state into this package's folder (or
``--folder``), evaluates that file on the validation and test parts of its data split exactly as
``flt3d eval --model NAME`` does, stores the results in its ``"pretrained"`` entry and writes the
card ``NAME.md`` from that entry (:func:`card_text`). Files are written to a temporary name and
renamed, so an interrupted export leaves no half-written model.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import yaml

from flt3d import __version__
from flt3d.pretrained import MODEL_KEY

__all__ = ["card_text", "export_run", "overrides"]


def overrides(config: Mapping[str, Any], base: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``KEY=VALUE`` settings that turn ``base`` into ``config`` (what ``--set`` takes).

    Example:
        >>> overrides({"model": {"a": 1, "b": 2}}, {"model": {"a": 1, "b": 3}})
        ['model.b=2']
    """
    found = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            found.extend(overrides(value, base[key], name + "."))
        elif key not in base or base[key] != value:
            text = (
                "null"
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else value
            )
            found.append(f"{name}={text}")
    return found


def _train_seconds(checkpoint: Mapping[str, Any]) -> float | None:
    for key, state in checkpoint.get("callbacks", {}).items():
        if "Timer" in key and isinstance(state, Mapping):
            return float(state["time_elapsed"]["train"])
    return None


def _save(payload: dict[str, Any], target: str) -> None:
    temporary = target + ".tmp"
    torch.save(payload, temporary)
    os.replace(temporary, target)


def _write_text(text: str, target: str) -> None:
    temporary = target + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, target)


def card_text(name: str, facts: Mapping[str, Any]) -> str:
    """The Markdown card of model ``name`` from its ``"pretrained"`` entry ``facts``."""
    metrics, unit = facts["metrics"], facts["metrics_unit"]
    split, training = facts["split"], facts["training"]
    hours = training["seconds"] / 3600.0
    scale = 1000.0 if unit == "meV" else 1.0
    base = facts["unit"] if unit == "meV" else unit
    lines = [
        f"# {name}",
        "",
        f"FLTNet predicting QM9's `{facts['target']}` in {facts['unit']}.",
        "",
        "```python",
        "from flt3d import pretrained",
        f'model = pretrained.load("{name}")  # model(z, pos, batch) -> [G, 1] in {facts["unit"]}',
        "```",
        "",
        f"`flt3d predict --model {name} --smiles CCO` predicts from SMILES; "
        f"`flt3d eval --model {name}` reproduces the test MAE below (needs `qm9pack`).",
        "",
        "## Test error",
        "",
        "| split | molecules | MAE |",
        "| --- | ---: | ---: |",
        f"| validation | {split['val']:,} | {metrics['val_mae'] / scale:.4g} {base} |",
        f"| **test** | {split['test']:,} | **{metrics['test_mae'] / scale:.4g} {base}** |",
        "",
        "## Data and split",
        "",
        f"- {facts['data']}.",
        f"- The standard random split (`flt3d.datasets.standard_split`, seed {split['seed']}): "
        f"{split['train']:,} training, {split['val']:,} validation and {split['test']:,} test "
        "molecules.",
        "- Per-element references and the target's mean and std fitted on the training part "
        "(buffers of the model).",
        "",
        "## Training",
        "",
        f"- {training['seconds']:,.0f} s ({hours:.2f} h) of training on a CPU, "
        f"{_threads(training['threads'])}: {training['epochs']} epochs, {training['steps']:,} "
        f"steps of {facts['config']['data']['batch_size']} molecules.",
        f"- The weights are those of the epoch with the lowest validation MAE (epoch "
        f"{training['best_epoch']}, step {training['best_step']:,}).",
        f"- L1 loss on the standardised target, AdamW (lr {facts['config']['optim']['lr']}), "
        "warm-up then cosine decay to the end of the time budget.",
        "- Command:",
        "",
        "  ```",
        f"  {facts['command']}",
        f"  python -m flt3d.pretrained.export RUN --name {name}",
        "  ```",
        "",
        "## Settings",
        "",
        "```yaml",
        yaml.safe_dump(dict(facts["config"]), sort_keys=False).rstrip(),
        "```",
        "",
        f"flt3d {facts['flt3d_version']}; {facts['parameters']:,} parameters.",
        "",
    ]
    return "\n".join(lines)


def export_run(run: str | os.PathLike, name: str, *, folder: str | None = None) -> str:
    """Write ``NAME.pt`` and ``NAME.md`` from the QM9 run folder ``run``; returns the ``.pt`` path.

    Raises:
        ValueError: if ``run`` is not a finished QM9 run (no best and last checkpoint).
    """
    from flt3d.training.checkpoint import read_checkpoint
    from flt3d.training.config import load_config
    from flt3d.training.molecules import QM9DataModule
    from flt3d.training.run import evaluate

    run = os.fspath(run)
    best = read_checkpoint(os.path.join(run, "checkpoints", "best.ckpt"))
    last = read_checkpoint(os.path.join(run, "checkpoints", "last.ckpt"))
    entry = dict(best["flt3d"])
    if entry["task"] != "qm9":
        raise ValueError(f"{run!r} is a {entry['task']!r} run; pretrained models are QM9 runs")
    entry["data"] = {**entry["data"], "root": None}
    seconds = _train_seconds(last)
    if seconds is None:
        raise ValueError(f"{run!r}: last.ckpt holds no training time (no Timer state)")
    folder = folder or os.path.dirname(os.path.abspath(__file__))
    target = os.path.join(folder, name + ".pt")
    state = {key: value.detach().clone() for key, value in best["state_dict"].items()}
    _save({"flt3d": entry, "state_dict": state}, target)

    metrics = {}
    for split in ("val", "test"):
        result = evaluate(target, split, quiet=True)
        metrics[f"{split}_mae"] = result.metrics["mae"]
    config = entry["config"]
    datamodule = QM9DataModule(**entry["data"])
    datamodule.setup("test")
    sizes = [len(datamodule.train_dataset), len(datamodule.val_dataset)]
    sizes.append(len(datamodule.test_dataset))
    batch = entry["data"]["batch_size"]
    steps = int(last["global_step"])
    command = " ".join(["flt3d train --config qm9 --set", *overrides(config, load_config("qm9"))])
    facts = {
        "target": entry["model"]["target"],
        "unit": _unit(entry["model"]["target"]),
        "metrics": metrics,
        "metrics_unit": _metrics_unit(entry["model"]["target"]),
        "data": _DATA["sample" if entry["data"]["sample"] else "full"],
        "split": {
            "seed": entry["data"]["split_seed"],
            "train": sizes[0],
            "val": sizes[1],
            "test": sizes[2],
        },
        "training": {
            "seconds": seconds,
            "threads": config.get("num_threads"),
            "epochs": round(steps / -(-sizes[0] // batch), 1),
            "steps": steps,
            "best_epoch": int(best["epoch"]),
            "best_step": int(best["global_step"]),
        },
        "command": command,
        "config": config,
        "parameters": sum(v.numel() for k, v in state.items() if k.startswith("model.")),
        "flt3d_version": __version__,
    }
    _save({"flt3d": entry, "state_dict": state, MODEL_KEY: facts}, target)
    _write_text(card_text(name, facts), os.path.join(folder, name + ".md"))
    return target


_DATA = {
    "full": "QM9 from the qm9pack package: 130,831 molecules, DFT (B3LYP/6-31G(2df,p)) properties",
    "sample": "The 4,000-molecule QM9 sample shipped with flt3d",
}


def _threads(threads: int | None) -> str:
    if threads is None:
        return "torch's default threads"
    return "one thread" if threads == 1 else f"{threads} threads"


def _unit(target: str) -> str:
    from flt3d.datasets.qm9 import UNITS, target_index

    return UNITS[target_index(target)]


def _metrics_unit(target: str) -> str:
    from flt3d.training.molecules import report_unit

    return report_unit(target)[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flt3d.pretrained.export",
        description="Ship a finished QM9 run as a pretrained model with its card.",
    )
    parser.add_argument("run", help="the run folder of flt3d train")
    parser.add_argument("--name", required=True, help="model name, e.g. qm9-gap")
    parser.add_argument("--folder", help="where to write NAME.pt and NAME.md (default: flt3d)")
    args = parser.parse_args(argv)
    try:
        target = export_run(args.run, args.name, folder=args.folder)
    except ValueError as error:
        print(f"export: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {target} and its card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
