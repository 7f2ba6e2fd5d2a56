"""Helpers the accuracy benchmarks share: CPU-time budgets, learning-rate schedule, tables, JSON.

The benchmarks compare models at equal *CPU* time rather than wall time: the machines they run
on are shared, and :func:`time.process_time` (CPU seconds of every thread of this process) is
far less sensitive to other load than a wall clock. The thread count is fixed with
:func:`torch.set_num_threads` so that every model gets the same parallelism.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

__all__ = [
    "CPUBudget",
    "RESULTS_DIR",
    "budget_lr",
    "environment",
    "format_table",
    "machine_load",
    "parameter_count",
    "train_for_budget",
    "write_json",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class CPUBudget:
    """A CPU-time budget: ``fraction`` and ``spent`` from :func:`time.process_time`.

    Time spent outside :meth:`running` blocks (evaluation, logging) is not counted.

    Example:
        >>> budget = CPUBudget(0.5)
        >>> with budget.running():
        ...     _ = sum(range(1000))
        >>> 0.0 <= budget.fraction < 1.0
        True
    """

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"budget seconds must be positive, got {seconds}")
        self.seconds = float(seconds)
        self.spent = 0.0
        self._start: float | None = None

    def running(self) -> _Running:
        return _Running(self)

    @property
    def elapsed(self) -> float:
        """CPU seconds spent so far, including the block now running."""
        if self._start is None:
            return self.spent
        return self.spent + time.process_time() - self._start

    @property
    def fraction(self) -> float:
        return self.elapsed / self.seconds

    @property
    def exhausted(self) -> bool:
        return self.elapsed >= self.seconds


class _Running:
    def __init__(self, budget: CPUBudget) -> None:
        self.budget = budget

    def __enter__(self) -> CPUBudget:
        self.budget._start = time.process_time()
        return self.budget

    def __exit__(self, *exc) -> None:
        self.budget.spent += time.process_time() - self.budget._start
        self.budget._start = None


def budget_lr(base_lr: float, fraction: float, *, warmup: float = 0.03) -> float:
    """Linear warm-up then cosine decay to zero, as a function of the budget spent.

    Scheduling on the spent fraction of the budget (rather than on a step count) gives every
    model a complete schedule, whatever its speed.
    """
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < warmup:
        return base_lr * max(fraction / warmup, 0.01)
    progress = (fraction - warmup) / (1.0 - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_for_budget(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[], object],
    loss_fn: Callable[[torch.nn.Module, object], torch.Tensor],
    *,
    budget_seconds: float,
    lr: float,
    clip_norm: float | None = 10.0,
    max_steps: int | None = None,
) -> dict:
    """Train until ``budget_seconds`` of CPU time are spent; return steps, CPU time, last loss.

    ``batches()`` returns the next batch (its cost is counted); ``loss_fn(model, batch)`` the
    scalar loss. The learning rate follows :func:`budget_lr`, over the CPU budget or, with
    ``max_steps``, over that many steps (the budget is then ignored).
    """
    budget = CPUBudget(budget_seconds)
    model.train()
    steps, losses = 0, []
    while (steps < max_steps) if max_steps is not None else not budget.exhausted:
        with budget.running():
            fraction = steps / max_steps if max_steps is not None else budget.fraction
            for group in optimizer.param_groups:
                group["lr"] = budget_lr(lr, fraction)
            batch = batches()
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
        steps += 1
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
    tail = losses[-max(1, len(losses) // 20) :]
    return {
        "steps": steps,
        "cpu_seconds": round(budget.spent, 2),
        "final_train_loss": sum(tail) / len(tail),
    }


def parameter_count(model: torch.nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, right-aligned numbers, left-aligned text."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if not math.isfinite(value):
                return str(value)
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], (int, float)) for row in rows) if rows else False
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in text)])


def matmul_gflops(repeats: int = 5) -> float:
    """This machine's fp32 rate for a 2048 x 2048 matrix product, with torch's current threads:
    what dense layers run at, so runs on different machines can be compared."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * 2048**3 / (time.perf_counter() - start) / 1e9


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_load(cpu_count: int | None = None) -> dict:
    """The load averages over 1, 5 and 15 minutes (runnable processes, this one included), and
    whether the machine was oversubscribed: more of them than cores over the last five minutes.
    CPU-time budgets hold under load, but processes sharing a core's caches and memory
    bandwidth take fewer steps in them, so step rates of such a run do not compare with those
    of a quiet one."""
    cores = cpu_count or os.cpu_count() or 1
    try:
        averages = [round(value, 2) for value in os.getloadavg()]
    except OSError:  # no load average on this platform
        return {"load_average": None, "oversubscribed": None}
    return {"load_average": averages, "oversubscribed": averages[1] > cores}


def environment(threads: int) -> dict:
    """What a result depends on besides the code: versions, the machine (CPU model and its
    matrix-product rate, measured now with ``threads`` threads) and the thread count."""
    import torch_geometric

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rate = matmul_gflops()
    finally:
        torch.set_num_threads(previous)
    load = machine_load()
    if load["oversubscribed"]:
        print(
            f"warning: the machine was oversubscribed during this run (5-minute load average "
            f"{load['load_average'][1]} on {os.cpu_count()} cores): step rates and CPU-time "
            "results do not compare with a quiet run",
            file=sys.stderr,
        )
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "matmul_gflops": rate,
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "argv": sys.argv[1:],
        **load,
    }


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path
