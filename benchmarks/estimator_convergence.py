"""FLTAttention linear mode against exact mode as the number of random features grows.

Moved Gaussian-mixture and isotropic-mixture RPEs (every spectral parameter + 0.5 N(0, 1)),
``exp`` and ``mul`` masks, frequencies drawn from the density on the randomised quadrature,
float64, two graphs of 32 tokens (q, k of std 0.5, d = 8, positions of std 1 Å). For each m
the relative output error ``|out_linear - out_exact| / |out_exact|`` is the RMS over 32
draws of the projection; exact mode uses the same frequencies, so only the kernel's random
features differ. The bar is judged on the upper ends of 95 % bootstrap intervals (2,000
resamples of the draws at each m): the error at m = 4096 and the slope must meet it there,
not only at the point estimates. The ``exp`` rows are repeated with the RPE scaled to a
spectral mass of 0.25 (a smooth, weak RPE), since the random features' variance grows with
the mass.

    python benchmarks/estimator_convergence.py        # about two minutes
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, environment, format_table, write_json  # noqa: E402

FEATURES = (64, 256, 1024, 4096)
SLOPE_BAR, ERROR_BAR = -0.35, 0.03
RESAMPLES = 2000


def bootstrap(squared: list[list[float]]) -> dict:
    """95 % intervals of the RMS error at the last m and of the log-log slope, from
    ``squared[i]`` (the squared errors of the draws at ``FEATURES[i]``) resampled with
    replacement, each m on its own (the draws at different m are independent)."""
    gen = torch.Generator().manual_seed(0)
    sq = torch.tensor(squared, dtype=torch.float64)  # [len(FEATURES), draws]
    picks = torch.randint(sq.shape[1], (RESAMPLES, *sq.shape), generator=gen)
    rms = torch.gather(sq.expand(RESAMPLES, -1, -1), 2, picks).mean(-1).sqrt()
    slope = (rms[:, -1] / rms[:, 0]).log() / math.log(FEATURES[-1] / FEATURES[0])

    def interval(t):
        return [float(x) for x in torch.quantile(t, torch.tensor([0.025, 0.975], dtype=t.dtype))]

    return {"error_interval": interval(rms[:, -1]), "slope_interval": interval(slope)}


def inputs():
    gen = torch.Generator().manual_seed(1)
    n, h, d = 64, 2, 8
    batch = torch.arange(n) // 32
    q = 0.5 * torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    k = 0.5 * torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    v = torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return q, k, v, pos, batch


def reference_layer(spectrum: str, mask: str, mass: float | None):
    """The exact-mode layer of :func:`curve`: a moved spectrum, its mass rescaled to ``mass``."""
    from flt3d.nn import FLTAttention

    options = dict(spectrum=spectrum, mask=mask, sampler="density", nodes="quadrature")
    torch.manual_seed(0)
    ref = FLTAttention(2, 8, 3, attention="exact", **options).double()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in ref.spectrum.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        if mass is not None:
            ref.spectrum.weight.mul_(mass / ref.spectrum.mass().unsqueeze(-1))
    return ref


@torch.no_grad()
def curve(spectrum: str, mask: str, mass: float | None, draws: int) -> dict:
    from flt3d.nn import FLTAttention

    q, k, v, pos, batch = inputs()
    options = dict(spectrum=spectrum, mask=mask, sampler="density", nodes="quadrature")
    ref = reference_layer(spectrum, mask, mass)
    exact = ref(q, k, v, pos, batch)
    errors, squared = [], []
    for m in FEATURES:
        att = FLTAttention(2, 8, 3, num_features=m, **options).double()
        att.spectrum.load_state_dict(ref.spectrum.state_dict())
        sq = []
        for seed in range(draws):
            att.redraw_features(generator=torch.Generator().manual_seed(seed))
            sq.append(float((att(q, k, v, pos, batch) - exact).norm() / exact.norm()) ** 2)
        errors.append(math.sqrt(sum(sq) / len(sq)))
        squared.append(sq)
    slope = math.log(errors[-1] / errors[0]) / math.log(FEATURES[-1] / FEATURES[0])
    spread = bootstrap(squared)
    return {
        "spectrum": spectrum,
        "mask": mask,
        "mass": [round(float(x), 3) for x in ref.spectrum.mass()],
        "errors": errors,
        "slope": slope,
        "draws": draws,
        **spread,
        "met": spread["slope_interval"][1] <= SLOPE_BAR and spread["error_interval"][1] <= ERROR_BAR,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=32, help="projection draws per m")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [
        curve(spectrum, mask, mass, args.draws)
        for mass, masks in ((None, ("exp", "mul")), (0.25, ("exp",)))
        for spectrum in ("gaussian_mixture", "isotropic_mixture")
        for mask in masks
    ]
    table = format_table(
        [
            "spectrum",
            "mask",
            "mass per head",
            *[f"m={m}" for m in FEATURES],
            "95% at 4096",
            "slope",
            "95% slope",
            "bar",
        ],
        [
            [
                r["spectrum"],
                r["mask"],
                str(r["mass"]),
                *r["errors"],
                "{:.4g}-{:.4g}".format(*r["error_interval"]),
                r["slope"],
                "{:.3g} to {:.3g}".format(*r["slope_interval"]),
                "MET" if r["met"] else "NOT MET",
            ]
            for r in rows
        ],
    )
    print(table)
    print(
        f"bar: log-log slope <= {SLOPE_BAR} from m = 64 to 4096 and error <= {ERROR_BAR:.0%} at 4096,"
        " both at the upper ends of their 95% intervals"
    )
    payload = {
        "benchmark": "estimator_convergence",
        "rows": rows,
        "table": table,
        "environment": environment(1),
    }
    print(f"wrote {write_json(args.json or RESULTS_DIR / 'estimator_convergence.json', payload)}")
    return payload


if __name__ == "__main__":
    main()
