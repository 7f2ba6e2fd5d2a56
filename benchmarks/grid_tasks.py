"""Positional encodings for linear attention on grids, at equal parameters and equal CPU time.

Five attention variants, the same model otherwise:

- ``flt_gmm``: FLT, linear attention with the learned Gaussian-mixture spectral RPE;
- ``flt_local``: FLT, linear attention with the learned local RPE;
- ``performer``: linear (FAVOR+) attention without any positional information;
- ``performer_ape``: linear attention with learned absolute position embeddings;
- ``exact_gmm``: exact softmax attention with the same RPE as ``flt_gmm``.

on two tasks:

- ``text``: causal character language model (:class:`flt3d.models.SequenceModel`) on the
  CPython pydoc corpus (:meth:`flt3d.datasets.text.CharCorpus.from_pydoc`), contexts of 128
  characters; metric: bits per character on the held-out test span (lower is better);
- ``digits``: classifier of scikit-learn's 8x8 digits (:class:`flt3d.models.ImageClassifier`,
  one token per pixel); metric: test accuracy (higher is better).

Hidden widths are adjusted per variant so that every model has the parameter count of
``flt_gmm`` within ±10 %. Every run trains for the same CPU seconds (:func:`time.process_time`,
one thread per process), with AdamW, warm-up and cosine decay over the budget.

Default run and a smoke run (< 60 s)::

    python benchmarks/grid_tasks.py
    python benchmarks/grid_tasks.py --quick
"""

from __future__ import annotations

import os

# Spinning OpenMP threads would charge a run for other processes' load (see qm9_budget.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS_DIR,
    environment,
    format_table,
    parameter_count,
    train_for_budget,
    write_json,
)

VARIANTS = {
    "flt_gmm": {
        "label": "(a) FLT, Gaussian-mixture RPE",
        "positional": "rpe",
        "spectrum": "gaussian_mixture",
        "attention": "linear",
    },
    "flt_local": {
        "label": "(b) FLT, local RPE",
        "positional": "rpe",
        "spectrum": "local",
        "attention": "linear",
    },
    "performer": {
        "label": "(c) Performer, no RPE",
        "positional": "none",
        "spectrum": None,
        "attention": "linear",
    },
    "performer_ape": {
        "label": "(d) Performer, absolute PE",
        "positional": "absolute",
        "spectrum": None,
        "attention": "linear",
    },
    "exact_gmm": {
        "label": "(e) exact softmax, GM RPE",
        "positional": "rpe",
        "spectrum": "gaussian_mixture",
        "attention": "exact",
    },
}
REFERENCE = "flt_gmm"
TASKS = {
    "text": {"metric": "test bits/char", "higher_is_better": False},
    "digits": {"metric": "test accuracy", "higher_is_better": True},
}
PARAM_TOLERANCE = 0.10


# --------------------------------------------------------------------------- models


def build_model(task: str, variant: str, hidden: int, args, data: dict) -> nn.Module:
    from flt3d.models import ImageClassifier, SequenceModel

    spec = VARIANTS[variant]
    common = {
        "hidden_channels": hidden,
        "heads": args.heads,
        "positional": spec["positional"],
        "spectrum": spec["spectrum"],
        "attention": spec["attention"],
        "num_features": args.num_features,
    }
    if task == "text":
        return SequenceModel(
            data["vocab_size"], num_layers=args.text_layers, max_length=args.context, **common
        )
    return ImageClassifier(
        in_channels=1,
        num_classes=10,
        image_size=8,
        patch_size=args.patch_size,
        num_layers=args.digits_layers,
        **common,
    )


def matched_hidden(task: str, variant: str, base: int, args, data: dict) -> tuple[int, int, int]:
    """Hidden width (a multiple of ``heads``) whose parameter count is closest to the reference.

    Returns ``(hidden, parameters, reference_parameters)``.
    """
    reference = parameter_count(build_model(task, REFERENCE, base, args, data))
    best = None
    low = max(args.heads, base // 2 // args.heads * args.heads)
    for hidden in range(low, 2 * base + 1, args.heads):
        count = parameter_count(build_model(task, variant, hidden, args, data))
        if best is None or abs(count - reference) < abs(best[1] - reference):
            best = (hidden, count)
    return best[0], best[1], reference


# --------------------------------------------------------------------------- data


def load_task(task: str, args) -> dict:
    if task == "text":
        from flt3d.datasets.text import CharCorpus

        corpus = CharCorpus.from_pydoc()
        return {"corpus": corpus, "vocab_size": len(corpus.vocab)}
    from flt3d.datasets.digits import load_digits_splits

    return {"splits": load_digits_splits(seed=args.seed)}


def batch_source(task: str, data: dict, args):
    """A callable returning the next training batch, in a seeded order the same for all."""
    if task == "text":
        size = args.text_batch_size
        windows = data["corpus"].dataset(
            "train", args.context, num_windows=size * 256, seed=args.seed
        )
        state = {"epoch": 0, "next": 0}

        def next_text():
            if state["next"] + size > len(windows):
                state["epoch"] += 1
                state["next"] = 0
                windows.set_epoch(state["epoch"])
            items = [windows[i] for i in range(state["next"], state["next"] + size)]
            state["next"] += size
            return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

        return next_text
    images, labels = data["splits"]["train"].tensors
    size = args.digits_batch_size
    order = torch.Generator().manual_seed(args.seed)
    queue: list[torch.Tensor] = []

    def next_digits():
        if not queue:
            perm = torch.randperm(labels.numel(), generator=order)
            queue.extend(perm[: labels.numel() // size * size].split(size))
        index = queue.pop(0)
        return images[index], labels[index]

    return next_digits


def loss_fn(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate(task: str, model: nn.Module, data: dict, args) -> float:
    model.eval()
    if task == "text":
        windows = data["corpus"].dataset("test", args.context)
        count = len(windows) if args.eval_windows is None else min(args.eval_windows, len(windows))
        total, chars = 0.0, 0
        for start in range(0, count, 64):
            items = [windows[i] for i in range(start, min(start + 64, count))]
            x, y = torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])
            logits = model(x)
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
                )
            )
            chars += y.numel()
        return total / chars / math.log(2)
    images, labels = data["splits"]["test"].tensors
    correct = 0
    for start in range(0, labels.numel(), 256):
        pred = model(images[start : start + 256]).argmax(-1)
        correct += int((pred == labels[start : start + 256]).sum())
    return correct / labels.numel()


# --------------------------------------------------------------------------- runs


def run_one(job: dict) -> dict:
    args, task, variant = job["args"], job["task"], job["variant"]
    torch.set_num_threads(args.threads)
    data = load_task(task, args)
    torch.manual_seed(args.seed)
    model = build_model(task, variant, job["hidden"], args, data)
    lr = args.text_lr if task == "text" else args.digits_lr
    budget = args.text_budget if task == "text" else args.digits_budget
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    wall = time.perf_counter()
    log = train_for_budget(
        model,
        optimizer,
        batch_source(task, data, args),
        loss_fn,
        budget_seconds=budget,
        lr=lr,
        clip_norm=1.0,
    )
    value = evaluate(task, model, data, args)
    return {
        "task": task,
        "variant": variant,
        "model": VARIANTS[variant]["label"],
        "metric": TASKS[task]["metric"],
        "value": value,
        "hidden_channels": job["hidden"],
        "parameters": parameter_count(model),
        "parameter_ratio": parameter_count(model) / job["reference_parameters"],
        "lr": lr,
        "train_steps": log["steps"],
        "cpu_seconds": log["cpu_seconds"],
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "final_train_loss": log["final_train_loss"],
    }


def better(task: str, a: float, b: float) -> bool:
    return a > b if TASKS[task]["higher_is_better"] else a < b


def claims(rows: list[dict]) -> dict:
    """The paper's claims, decided from this run's numbers."""
    value = {(r["task"], r["variant"]): r["value"] for r in rows}
    out: dict = {}
    linear_baselines = ("performer", "performer_ape")

    def beats(task: str, variant: str, others) -> bool | None:
        if (task, variant) not in value or any((task, o) not in value for o in others):
            return None
        return all(better(task, value[(task, variant)], value[(task, o)]) for o in others)

    tasks = sorted({r["task"] for r in rows}, key=list(TASKS).index)
    per_task = {t: beats(t, "flt_gmm", linear_baselines) for t in tasks}
    known = [v for v in per_task.values() if v is not None]
    out["learned_rpe_beats_linear_baselines"] = {
        "statement": "FLT with learned Gaussian-mixture RPE (a) beats Performer without RPE (c) "
        "and with absolute PE (d)",
        "per_task": per_task,
        "held": bool(known) and all(known),
    }
    local = beats("text", "flt_local", linear_baselines) if "text" in tasks else None
    out["local_rpe_helps_language_modelling"] = {
        "statement": "FLT with local RPE (b) has lower bits/char than Performer (c) and (d)",
        "held": local,
    }
    if "text" in tasks:
        out["local_rpe_helps_language_modelling"]["beats_gaussian_mixture_rpe"] = beats(
            "text", "flt_local", ("flt_gmm",)
        )
    out["linear_vs_exact"] = {
        t: {
            "flt_gmm": value.get((t, "flt_gmm")),
            "exact_gmm": value.get((t, "exact_gmm")),
            "linear_better": beats(t, "flt_gmm", ("exact_gmm",)),
        }
        for t in tasks
    }
    return out


def claim_lines(rows: list[dict], summary: dict) -> list[str]:
    """One line per claim, with the numbers it was decided on."""
    value = {(r["task"], r["variant"]): r["value"] for r in rows}

    letters = dict(zip(VARIANTS, "abcde"))

    def listing(task: str, variants) -> str:
        unit = "bpc" if task == "text" else "acc"
        parts = [f"({letters[k]}) {value[(task, k)]:.3f}" for k in variants if (task, k) in value]
        return f"{task}: " + ", ".join(parts) + f" {unit}"

    lines = []
    c1 = summary["learned_rpe_beats_linear_baselines"]
    detail = "; ".join(
        f"{'yes' if held else 'no'} on {listing(t, ('flt_gmm', 'performer', 'performer_ape'))}"
        for t, held in c1["per_task"].items()
        if held is not None
    )
    lines.append(
        "learned RPE beats other linear attention variants: "
        f"{'HELD' if c1['held'] else 'NOT HELD'} ({detail})"
    )
    c2 = summary["local_rpe_helps_language_modelling"]
    if c2["held"] is not None:
        vs_gmm = "better" if c2["beats_gaussian_mixture_rpe"] else "not better"
        lines.append(
            f"local RPE helps language modelling: {'HELD' if c2['held'] else 'NOT HELD'} "
            f"({listing('text', ('flt_local', 'performer', 'performer_ape'))}; "
            f"{vs_gmm} than the Gaussian-mixture RPE (a))"
        )
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke run (small models, 1 CPU s per run, one process)",
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--num-features", type=int, default=32)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--context", type=int, default=128, help="characters per window")
    parser.add_argument(
        "--text-hidden",
        type=int,
        default=64,
        help="width of the reference model (a); others are matched to it",
    )
    parser.add_argument("--text-layers", type=int, default=2)
    parser.add_argument("--text-batch-size", type=int, default=16)
    parser.add_argument("--text-lr", type=float, default=2e-3)
    parser.add_argument("--text-budget", type=float, default=200.0, help="CPU s per run")
    parser.add_argument(
        "--eval-windows", type=int, default=None, help="test windows to score (default all)"
    )
    parser.add_argument("--digits-hidden", type=int, default=64)
    parser.add_argument("--digits-layers", type=int, default=2)
    parser.add_argument("--digits-batch-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=1, choices=(1, 2))
    parser.add_argument("--digits-lr", type=float, default=2e-3)
    parser.add_argument("--digits-budget", type=float, default=60.0, help="CPU s per run")
    parser.add_argument(
        "--json",
        default=None,
        help="output JSON (default benchmarks/results/grid_tasks.json; "
        "quick runs default to no file)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs = 1
        args.context = min(args.context, 32)
        args.text_hidden = args.digits_hidden = 16
        args.text_layers = args.digits_layers = 1
        args.heads = 2
        args.num_features = 8
        args.text_budget = min(args.text_budget, 1.0)
        args.digits_budget = min(args.digits_budget, 1.0)
        args.eval_windows = 16 if args.eval_windows is None else args.eval_windows
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    jobs, sizes = [], []
    for task in args.tasks:
        data = load_task(task, args)
        base = args.text_hidden if task == "text" else args.digits_hidden
        for variant in args.variants:
            hidden, count, reference = matched_hidden(task, variant, base, args, data)
            if abs(count / reference - 1) > PARAM_TOLERANCE:
                message = (
                    f"{task}/{variant}: no width within ±10 % of {reference} parameters "
                    f"(closest: {count} at hidden {hidden})"
                )
                if not args.quick:
                    raise RuntimeError(message)
                print(f"warning: {message}")  # tiny smoke-run models cannot always match
            sizes.append((task, VARIANTS[variant]["label"], hidden, count, count / reference))
            jobs.append(
                {
                    "args": args,
                    "task": task,
                    "variant": variant,
                    "hidden": hidden,
                    "reference_parameters": reference,
                }
            )
    print(format_table(["task", "model", "hidden", "params", "/ (a)"], sizes))
    print(
        f"budgets: text {args.text_budget:g} CPU s, digits {args.digits_budget:g} CPU s per "
        f"run; {args.threads} thread(s), {args.jobs} job(s)"
    )
    if args.jobs > 1:
        with ProcessPoolExecutor(
            args.jobs, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            rows = list(pool.map(run_one, jobs))
    else:
        rows = [run_one(job) for job in jobs]

    table = format_table(
        ["task", "model", "params", "steps", "CPU s", "metric", "value"],
        [
            [
                r["task"],
                r["model"],
                r["parameters"],
                r["train_steps"],
                r["cpu_seconds"],
                r["metric"],
                r["value"],
            ]
            for r in rows
        ],
    )
    print(table)
    summary = claims(rows)
    lines = claim_lines(rows, summary)
    for line in lines:
        print(line)
    payload = {
        "benchmark": "grid_tasks",
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "environment": environment(args.threads),
        "rows": rows,
        "claims": summary,
        "claim_lines": lines,
        "table": table,
        "wall_seconds_total": round(time.perf_counter() - started, 1),
    }
    path = args.json or (None if args.quick else RESULTS_DIR / "grid_tasks.json")
    if path:
        print(f"wrote {write_json(path, payload)}")
    return payload


if __name__ == "__main__":
    main()
