"""Make the README figure ``docs/img/rpe_profile.png`` from a real (short) training run.

Trains FLTNet on the internal energy U0 of the QM9 sample that ships with flt3d, with the
default configuration of ``flt3d train`` otherwise, for a fixed number of epochs instead of its
time budget (so the run does not depend on the machine's speed), and draws the learned RPE of
the first layer's heads at initialisation and after training::

    python docs/make_figures.py                 # about 10 epochs, minutes on a CPU
    python docs/make_figures.py --epochs 2      # quicker, for a look

The run folder (checkpoints, logs, ``results.yaml``) is kept in ``--output``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--output", default=os.path.join("runs", "readme-rpe"))
    parser.add_argument("--figure", default=os.path.join(HERE, "img", "rpe_profile.png"))
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flt3d.plot import rpe_profile
    from flt3d.training import apply_overrides, load_config, prepare_fit

    overrides = [
        "model.target=U0",
        f"trainer.max_epochs={args.epochs}",
        "trainer.max_time=null",
        "optim.anneal_to_max_time=false",
        "trainer.enable_progress_bar=false",
    ]
    config = apply_overrides(load_config("qm9"), overrides)
    run = prepare_fit(config, args.output)
    before = copy.deepcopy(run.module.model)
    for evaluation in run.run():
        print(*evaluation.lines)
    after = run.module.model
    steps = run.trainer.global_step

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True, layout="constrained")
    rpe_profile(before, ax=axes[0], max_distance=4.0)
    rpe_profile(after, ax=axes[1], max_distance=4.0)
    axes[0].set_title("FLTNet, first layer, at initialisation")
    axes[1].set_title(f"after {steps} training steps on QM9 $U_0$")
    axes[0].set_xlabel(r"interatomic distance $|\Delta|$ [Å]")
    axes[1].set_xlabel(r"interatomic distance $|\Delta|$ [Å]")
    axes[0].get_legend().remove()
    axes[1].legend(
        [*axes[1].get_legend_handles_labels()[0], plt.Line2D([], [], color="k", ls="--")],
        [*axes[1].get_legend_handles_labels()[1], r"$R\to\infty$ limit"],
        fontsize="small",
    )
    fig.suptitle(
        r"learned relative positional encoding $f(|\Delta|)$ per head: "
        r"solid $\hat f$ with the layer's 16 frequencies, dashed its limit",
        fontsize="medium",
    )
    os.makedirs(os.path.dirname(args.figure), exist_ok=True)
    fig.savefig(args.figure, dpi=150)
    print(f"wrote {args.figure} ({steps} training steps, run folder {run.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
