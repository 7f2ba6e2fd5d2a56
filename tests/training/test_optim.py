import math

import pytest
import torch
from torch import nn

from flt3d.training.optim import configure_optimizers, warmup_cosine


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))


def _lrs(optimizer, schedulers, steps):
    """Learning rate seen by each of ``steps`` optimiser steps, stepping step-wise schedulers."""
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return seen


def test_warmup_cosine_shape():
    factors = [warmup_cosine(t, warmup_steps=4, total_steps=14, min_ratio=0.1) for t in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert factors[14] == pytest.approx(0.1) and factors[19] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(0.1 + 0.9 * 0.5)


def test_cosine_schedule_drives_adamw():
    config = configure_optimizers(
        _model(), total_steps=10, monitor="val/x", lr=1e-2, warmup_steps=2, min_lr_ratio=0.0
    )
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert config["lr_scheduler"]["interval"] == "step"
    lrs = _lrs(optimizer, [config["lr_scheduler"]["scheduler"]], 10)
    expected = [1e-2 * warmup_cosine(t, warmup_steps=2, total_steps=10, min_ratio=0.0)
                for t in range(10)]  # fmt: skip
    assert lrs == pytest.approx(expected)


def test_weight_decay_only_on_matrices():
    model = _model()
    optimizer = configure_optimizers(model, total_steps=5, monitor="val/x", weight_decay=0.1)[
        "optimizer"
    ]
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decayed["params"])
    assert all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_spectral_parameters_are_never_decayed():
    from flt3d.models import FLTNet
    from flt3d.nn.spectrum import Spectrum

    model = FLTNet(hidden_channels=8, num_layers=1, heads=2, target="gap")
    spectral = {id(p) for m in model.modules() if isinstance(m, Spectrum) for p in m.parameters()}
    matrices = [p for p in model.parameters() if id(p) in spectral and p.dim() >= 2]
    assert matrices  # 2-D spectral parameters exist (mixture weights, widths, means)
    optimizer = configure_optimizers(model, total_steps=5, monitor="val/x", weight_decay=0.05)[
        "optimizer"
    ]
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert not decayed & spectral
    assert id(model.embedding.weight) in decayed
    assert id(model.blocks[0].conv.qkv.weight) in decayed
    grouped = sum(len(g["params"]) for g in optimizer.param_groups)
    assert grouped == sum(1 for p in model.parameters() if p.requires_grad)


def test_plateau_schedule_warms_up_then_reduces_on_plateau():
    [optimizer], [warmup, plateau] = configure_optimizers(
        _model(), total_steps=None, monitor="val/mae", schedule="plateau", lr=1.0,
        warmup_steps=4, plateau_factor=0.5, plateau_patience=0,
    )  # fmt: skip
    assert warmup["interval"] == "step" and plateau["interval"] == "epoch"
    assert plateau["monitor"] == "val/mae"
    lrs = _lrs(optimizer, [warmup["scheduler"]], 6)
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    plateau["scheduler"].step(1.0)
    plateau["scheduler"].step(2.0)  # worse: reduce
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    warmup["scheduler"].step()  # after warm-up the step scheduler leaves the rate alone
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


def test_constant_schedule():
    config = configure_optimizers(
        _model(), total_steps=None, monitor="val/x", schedule="constant", lr=0.1, warmup_steps=2
    )
    lrs = _lrs(config["optimizer"], [config["lr_scheduler"]["scheduler"]], 4)
    assert lrs == pytest.approx([0.05, 0.1, 0.1, 0.1])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"schedule": "linear"}, "optim.schedule must be one of"),
        ({"lr": 0.0}, "optim.lr must be positive"),
        ({"weight_decay": -1.0}, "optim.weight_decay"),
        ({"warmup_steps": -1}, "optim.warmup_steps"),
        ({"warmup_steps": 1.5}, "optim.warmup_steps"),
        ({"min_lr_ratio": 2.0}, "optim.min_lr_ratio"),
        ({"betas": [0.9]}, "optim.betas"),
        ({"schedule": "plateau", "plateau_factor": 1.5}, "optim.plateau_factor"),
    ],
)
def test_bad_options_name_the_option(options, match):
    with pytest.raises(ValueError, match=match):
        configure_optimizers(_model(), total_steps=10, monitor="val/x", **options)


@pytest.mark.parametrize("total", [None, math.inf, 0])
def test_cosine_needs_a_finite_run(total):
    with pytest.raises(ValueError, match="needs a finite run length"):
        configure_optimizers(_model(), total_steps=total, monitor="val/x")


def test_cosine_follows_the_time_budget_when_asked():
    clock = {"fraction": 0.0}
    config = configure_optimizers(
        _model(), total_steps=1000, monitor="val/x", lr=1.0, warmup_steps=2,
        min_lr_ratio=0.0, anneal_to_max_time=True, time_fraction=lambda: clock["fraction"],
    )  # fmt: skip
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = _lrs(optimizer, [scheduler], 3)
    assert lrs == pytest.approx([0.5, 1.0, 1.0])  # warm-up by steps, then the plateau top
    clock["fraction"] = 0.5  # half the time used after 3 of 1000 steps: halfway down
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    clock["fraction"] = 1.0
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_time_fraction_is_ignored_unless_asked():
    config = configure_optimizers(
        _model(), total_steps=1000, monitor="val/x", lr=1.0, time_fraction=lambda: 1.0
    )
    lrs = _lrs(config["optimizer"], [config["lr_scheduler"]["scheduler"]], 2)
    assert lrs == pytest.approx([1.0, 1.0], rel=1e-4)
