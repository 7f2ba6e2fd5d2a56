"""FLTNet in linear mode on atom clouds from 10^3 to 10^6 atoms: time and peak memory against N.

The shipped ``qm9`` model (96 channels, 4 heads, 2 blocks, exact short range within 5 Å on a
vesin neighbour list, random features beyond) runs one forward and one backward pass (loss
``prediction.sum()``, gradients for every parameter) on one cloud of N atoms of liquid density
(one atom per 10 Å^3, uniform in a cube; elements H, C, N, O), each size in a fresh process
so that its peak resident memory (``ru_maxrss``) is its own. Exact mode runs next to it, in
the same run, while it fits.

Memory is read two ways in each case. *Above the baseline*: peak RSS minus the RSS after the
imports and the model. *Above the warmed process*: a first forward + backward pass on a
small cloud (``WARM_ATOMS``) pays the process's one-off costs (thread pools, allocator
arenas, kernels' workspaces: 0.04-0.06 GB measured, whatever N); then the kernel's peak-RSS mark is
reset (``/proc/self/clear_refs``, Linux) and the pass on N atoms is measured from the RSS it
starts with. The second reading is the memory that grows with N; the time is the second
pass's too.

Alongside, in the same run: the achieved GFLOP/s of the linear attention's contractions (the
counted multiply-adds of one attention forward pass, over its time) and this machine's fp32
matrix-multiply rate (a 2048 x 2048 product), so the attention's efficiency is a ratio.

    python benchmarks/fltnet_scaling.py                 # 10^3 .. 10^6, ~10 min on 2 cores
    python benchmarks/fltnet_scaling.py --quick         # 10^3 and 3 * 10^3, seconds
    python benchmarks/fltnet_scaling.py --reuse results/fltnet_scaling.json   # the missing sizes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, environment, format_table, matmul_gflops, write_json  # noqa: E402

SIZES = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
DENSITY = 0.1  # atoms per Å^3
SLOPE_RANGE = (0.85, 1.15)
MEMORY_BAR_GB = 16.0
WARM_ATOMS = 300


def _status_gb(key: str) -> float:
    """A ``/proc/self/status`` memory entry (``VmRSS``, ``VmHWM``) in GB, or NaN off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return math.nan


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (``VmHWM``); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cloud(n: int, seed: int):
    import torch

    side = (n / DENSITY) ** (1 / 3)
    gen = torch.Generator().manual_seed(seed)
    pos = side * torch.rand(n, 3, generator=gen)
    z = torch.tensor([1, 6, 7, 8])[torch.randint(0, 4, (n,), generator=gen)]
    return z, pos


def run_case(n: int, mode: str, seed: int = 0) -> dict:
    import torch

    from flt3d.models import FLTNet
    from flt3d.nn import set_attention
    from flt3d.training.config import load_config

    torch.manual_seed(seed)
    model = FLTNet(**load_config("qm9")["model"])
    set_attention(model, mode)
    z, pos = _cloud(n, seed)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    warm_z, warm_pos = _cloud(WARM_ATOMS, seed + 1)
    model(warm_z, warm_pos).sum().backward()
    model.zero_grad(set_to_none=True)
    del warm_z, warm_pos
    warm = _status_gb("VmRSS") if _reset_peak() else math.nan
    start, cpu = time.perf_counter(), time.process_time()
    out = model(z, pos)
    out.sum().backward()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    warm_peak = _status_gb("VmHWM") - warm
    row = {
        "n": n,
        "mode": mode,
        "seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_gb": peak,
        "baseline_rss_gb": base,
        "warm_rss_gb": warm,
        "warm_peak_above_gb": warm_peak,
    }
    if mode == "linear":
        row.update(attention_rate(model, z, pos))
    return row


def attention_rate(model, z, pos) -> dict:
    """GFLOP/s of one linear attention forward pass of the first block (counted multiply-adds
    of its contractions over its time), with the neighbour count it saw."""
    import torch

    from flt3d.nn import neighbor_list

    block = model.blocks[0]
    conv = block.conv
    with torch.no_grad():
        x = block.norm1(model.embed(z))
        q, k, v = conv.qkv(x).view(-1, 4, conv.heads, conv.head_channels).unbind(1)[:3]
        nbrs = neighbor_list(pos, cutoff=conv.attn.cutoff, self_loops=True)
        att = conv.attn.eval()
        att(q, k, v, pos, neighbors=nbrs)
        start = time.perf_counter()
        att(q, k, v, pos, neighbors=nbrs)
        seconds = time.perf_counter() - start
    n, h, d = q.shape
    m, f, e = att.num_features, att.feature_dim, d + 1
    p = nbrs.num_pairs
    flops = 2 * n * h * m * f * 2  # feature exponents of queries and keys
    flops += 2 * n * h * m * e * 2  # the per-graph state and its read-out
    flops += 2 * p * h * (m + f + 2 * e)  # near pairs: estimate, logit, two messages
    return {
        "attention_seconds": seconds,
        "attention_gflops": flops / seconds / 1e9,
        "pairs_per_atom": p / n,
    }


def slope(rows: list[dict], key: str, low: int) -> float:
    pts = [(math.log(r["n"]), math.log(r[key])) for r in rows if r["n"] >= low]
    if len(pts) < 2:
        return math.nan
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--exact-max", type=int, default=10_000, help="largest N in exact mode")
    parser.add_argument("--fit-min", type=int, default=10_000)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--reuse",
        metavar="JSON",
        default=None,
        help="take the measured rows of an earlier run's JSON and measure only the rest",
    )
    args = parser.parse_args(argv)
    earlier = {}
    if args.reuse:
        with open(args.reuse) as f:
            earlier = {(r["mode"], r["n"]): r for r in json.load(f)["rows"] if "seconds" in r}
    if args.case:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(run_case(int(args.case[0]), args.case[1])))
        return {}
    sizes = args.sizes or ((1_000, 3_000) if args.quick else SIZES)
    rows = []
    for mode in ("linear", "exact"):
        for n in sizes:
            if mode == "exact" and n > args.exact_max:
                rows.append(
                    {
                        "n": n,
                        "mode": mode,
                        "note": f"skipped: exact mode above N = {args.exact_max}",
                    }
                )
                continue
            if (mode, n) in earlier:
                rows.append({**earlier[mode, n], "reused": args.reuse})
                continue
            cmd = [sys.executable, __file__, "--case", str(n), mode, "--threads", str(args.threads)]
            try:
                done = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=args.max_seconds,
                    env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
                )
            except subprocess.TimeoutExpired:
                rows.append({"n": n, "mode": mode, "note": f"killed after {args.max_seconds:g} s"})
                break
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["?"])[-1]
                rows.append({"n": n, "mode": mode, "note": f"failed: {tail[:120]}"})
                break
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(
                f"{mode} N={n}: {rows[-1]['seconds']:.2f} s, {rows[-1]['peak_rss_gb']:.2f} GB",
                flush=True,
            )
    rate = matmul_gflops()
    measured = [r for r in rows if "seconds" in r]
    table = format_table(
        [
            "mode",
            "N",
            "time s",
            "CPU s",
            "peak RSS GB",
            "above warm GB",
            "pairs/atom",
            "attn GFLOP/s",
            "matmul GFLOP/s",
            "note",
        ],
        [
            [
                r["mode"],
                r["n"],
                r.get("seconds", "-"),
                r.get("cpu_seconds", "-"),
                r.get("peak_rss_gb", "-"),
                r.get("warm_peak_above_gb", "-"),
                r.get("pairs_per_atom", "-"),
                r.get("attention_gflops", "-"),
                rate if r.get("attention_gflops") else "-",
                r.get("note", ""),
            ]
            for r in rows
        ],
    )
    print(table)
    linear = [r for r in measured if r["mode"] == "linear"]
    low = min((r["n"] for r in linear), default=0)

    def memory(key: str, base: str | None) -> list[dict]:
        return [
            {**r, "extra": max(r[key] - (r[base] if base else 0.0), 1e-3)}
            for r in linear
            if math.isfinite(r.get(key, math.nan))
        ]

    fits = {
        "time": slope(linear, "cpu_seconds", args.fit_min),
        "memory": slope(memory("peak_rss_gb", "baseline_rss_gb"), "extra", args.fit_min),
        "memory_warm": slope(memory("warm_peak_above_gb", None), "extra", args.fit_min),
        "time_all": slope(linear, "cpu_seconds", low),
        "memory_all": slope(memory("peak_rss_gb", "baseline_rss_gb"), "extra", low),
        "memory_warm_all": slope(memory("warm_peak_above_gb", None), "extra", low),
    }

    def verdict(p: float) -> str:
        return "PASS" if SLOPE_RANGE[0] <= p <= SLOPE_RANGE[1] else "FAIL"

    largest = max(linear, key=lambda r: r["n"]) if linear else None
    checks = [
        f"linear CPU time grows as N^{fits['time']:.2f} (N >= {args.fit_min}), "
        f"N^{fits['time_all']:.2f} (N >= {low}): {verdict(fits['time_all'])}",
        f"linear peak memory above the baseline grows as N^{fits['memory']:.2f} "
        f"(N >= {args.fit_min}), N^{fits['memory_all']:.2f} (N >= {low}): "
        f"{verdict(fits['memory_all'])}",
        f"linear peak memory above the warmed process grows as N^{fits['memory_warm']:.2f} "
        f"(N >= {args.fit_min}), N^{fits['memory_warm_all']:.2f} (N >= {low}): "
        f"{verdict(fits['memory_warm_all'])}",
    ]
    if largest is not None:
        fits_bar = largest["n"] >= 1_000_000 and largest["peak_rss_gb"] <= MEMORY_BAR_GB
        checks.append(
            f"10^6 atoms within {MEMORY_BAR_GB:g} GB peak RSS: "
            f"{'PASS' if fits_bar else 'FAIL'} (largest N = {largest['n']}, "
            f"{largest['peak_rss_gb']:.2f} GB)"
        )
    print("\n".join(checks))
    payload = {
        "benchmark": "fltnet_scaling",
        "rows": rows,
        "fits": fits,
        "checks": checks,
        "matmul_gflops": rate,
        "density_per_A3": DENSITY,
        "table": table,
        "environment": environment(args.threads),
    }
    path = args.json or (None if args.quick else RESULTS_DIR / "fltnet_scaling.json")
    if path:
        print(f"wrote {write_json(path, payload)}")
    return payload


if __name__ == "__main__":
    main()
