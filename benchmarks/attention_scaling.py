"""Time and peak memory of one FLTConv forward+backward against the number of points N.

One ``flt3d.nn.FLTConv(128, 128, heads=8)`` with its default feature counts runs a forward and
a backward pass (loss ``out.square().mean()``, gradients for the input and every parameter) on
one point cloud of N points spread uniformly in a box with about one point per unit volume, in
three modes on the same inputs and parameters:

- ``linear``: random-feature attention with the default learned spectral RPE
  (``spectrum="gaussian_mixture"``, ``mask="exp"``), the O(N) path;
- ``favor+``: the same layer without RPE (``spectrum=None``), plain FAVOR+ attention, the
  baseline every benchmark compares against;
- ``exact``: the same layer with ``attention="exact"``, the O(N^2) oracle.

N runs over 10^3, 3·10^3, ..., 10^6 (plus 250 and 500, which give exact mode enough sizes for
a slope), until a mode runs out of memory or time: a size is skipped, with a note saying why,
when its estimated peak memory exceeds ``--memory-budget-gb`` or when the previous size of the
same mode already took longer than ``--max-seconds``. A 1D case follows: one sequence of
10^5 tokens (``pos_dim=1``, ``spectrum="local"``), causal and bidirectional, in linear mode.

Every case runs in a fresh process (forked from a server that has only imported torch and
flt3d), so its peak resident memory is its own: ``ru_maxrss`` at the end of the case, next to
the resident memory after imports. The peak of torch's own CPU allocations during one
forward+backward is read from the profiler where that is cheap. Times are medians over a few
repeats after a warm-up where a case is cheap, otherwise one run.

Full run (5 to 10 minutes on two cores), and a smoke run::

    python benchmarks/attention_scaling.py
    python benchmarks/attention_scaling.py --quick --output /tmp/scaling.json
"""

from __future__ import annotations

import os

# Spinning OpenMP threads would charge this benchmark's CPU time with other processes' load.
# Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS_DIR = Path(__file__).resolve().parent / "results"

CHANNELS = 128
HEADS = 8
SIZES = (250, 500, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
SEQUENCE_LENGTH = 100_000
QUICK_SIZES = (100, 200)
QUICK_SEQUENCE_LENGTH = 1_000
# The no-L x L check means something only where an L x L matrix would dwarf fixed costs.
SQUARE_CHECK_MIN_LENGTH = 50_000

# Options of FLTConv per mode; everything else is the layer's default.
CLOUD_MODES = {
    "linear": {"attention": "linear"},
    "favor+": {"attention": "linear", "spectrum": None},
    "exact": {"attention": "exact"},
}
SEQUENCE_MODES = {
    "linear": {"attention": "linear", "spectrum": "local", "causal": False},
    "linear causal": {"attention": "linear", "spectrum": "local", "causal": True},
}
# Exponent of N in the time and memory of each mode, to extrapolate to the next size.
GROWTH = {"linear": 1, "favor+": 1, "exact": 2}

ACCEPT_N = 100_000
ACCEPT_PEAK_GB = 4.0
LINEAR_SLOPE_MAX = 1.25
GB = 1e9


# --------------------------------------------------------------------------------------------
# One case, in its own process
# --------------------------------------------------------------------------------------------


def _maxrss_bytes() -> int:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux


def _torch_peak_bytes(step) -> int:
    """Peak of torch's CPU allocations during ``step()``, beyond what was alive before it.

    The profiler records each operator's own allocations and frees; replaying them in time
    order gives the live total at every point.
    """
    from torch.profiler import ProfilerActivity, profile

    # the profiler writes start/stop chatter straight to the file descriptors
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
    deltas = []
    for event in prof.events():
        change = event.self_cpu_memory_usage
        if change:
            when = event.time_range.start if change > 0 else event.time_range.end
            deltas.append((when, change))
    deltas.sort()
    live = peak = 0
    for _, change in deltas:
        live += change
        peak = max(peak, live)
    return peak


def _measure(spec: dict) -> dict:
    import torch

    from flt3d.nn import FLTConv

    baseline = _maxrss_bytes()
    n = spec["n"]
    sequence = spec["task"] == "sequence"
    torch.manual_seed(spec["seed"])
    conv = FLTConv(CHANNELS, CHANNELS, heads=HEADS, pos_dim=1 if sequence else 3, **spec["options"])
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    if sequence:
        pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    else:
        pos = torch.rand(n, 3, generator=gen) * n ** (1 / 3)
    x = torch.randn(n, CHANNELS, generator=gen).requires_grad_()

    def step() -> None:
        conv.zero_grad(set_to_none=True)
        x.grad = None
        conv(x, pos).square().mean().backward()

    def timed() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        return time.perf_counter() - wall, time.process_time() - cpu

    first_wall, first_cpu = timed()
    walls, cpus = [first_wall], [first_cpu]
    # repeats only where they are cheap; the first run carries one-off costs, so drop it then
    if spec["repeats"] > 0 and first_wall * spec["repeats"] <= spec["max_seconds"] / 4:
        runs = [timed() for _ in range(spec["repeats"])]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
    peak = _maxrss_bytes()
    torch_peak = None
    torch_note = "off (--no-torch-memory)"
    if spec["torch_memory"]:
        if first_wall <= spec["max_seconds"]:
            torch_peak = _torch_peak_bytes(step) / GB
            torch_note = None
        else:
            torch_note = "not measured: one run takes longer than --max-seconds"
    return {
        "status": "ok",
        "time_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "first_s": first_wall,
        "runs": len(walls),
        "baseline_rss_gb": baseline / GB,
        "peak_rss_gb": peak / GB,
        "extra_rss_gb": (peak - baseline) / GB,
        "torch_peak_gb": torch_peak,
        "torch_note": torch_note,
        "threads": torch.get_num_threads(),
    }


def _child(spec: dict, conn) -> None:
    try:
        result = _measure(spec)
    except (MemoryError, RuntimeError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        oom = isinstance(err, MemoryError) or "allocate" in text or "memory" in text.lower()
        status = "out of memory" if oom else "error"
        result = {"status": "failed", "note": f"{status}: {text[:200]}"}
    except Exception as err:  # report anything else to the parent rather than dying silently
        result = {"status": "failed", "note": f"error: {type(err).__name__}: {str(err)[:200]}"}
    conn.send(result)
    conn.close()


def run_case(ctx, spec: dict, timeout: float) -> dict:
    """Run one case in a fresh process; a crash, an OOM kill or a timeout becomes a note."""
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, send), daemon=True)
    proc.start()
    send.close()
    result = None
    deadline = time.monotonic() + timeout
    try:
        # in slices: Connection.poll overflows on timeouts beyond about 2e6 s
        while (left := deadline - time.monotonic()) > 0:
            if recv.poll(min(left, 3600.0)):
                result = recv.recv()
                break
    except EOFError:
        result = None
    proc.join(5.0)
    if proc.is_alive():
        proc.terminate()
        proc.join(5.0)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if result is not None:
        return result
    if proc.exitcode is not None and proc.exitcode < 0:
        signal = -proc.exitcode
        why = " (likely the kernel's OOM killer)" if signal == 9 else ""
        return {"status": "failed", "note": f"killed by signal {signal}{why}"}
    return {"status": "failed", "note": f"timed out after {timeout:.0f} s"}


# --------------------------------------------------------------------------------------------
# Planning, estimates, fits
# --------------------------------------------------------------------------------------------


def _total_memory_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    except (ValueError, OSError, AttributeError):
        return None


def _exact_pair_bytes(head_channels: int, num_frequencies: int) -> float:
    """Prior for exact mode's bytes per within-graph pair (all heads), before any measurement.

    The pair path holds several ``[pairs, heads, d]`` gathers and products and
    ``[pairs, heads, R]`` phases with their cosines and sines, in float32.
    """
    return HEADS * 4 * (4 * head_channels + 4 * num_frequencies)


def estimate_gb(mode: str, n: int, last: dict | None, baseline_gb: float, pair_bytes: float):
    """Estimated peak RSS of ``mode`` at ``n``: scaled from the last measured size, if any."""
    if last is not None:
        grow = (n / last["n"]) ** GROWTH[mode]
        return last["baseline_rss_gb"] + max(last["extra_rss_gb"], 0.0) * grow
    if mode == "exact":
        return baseline_gb + pair_bytes * n * n / GB
    return None


def fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log y against log x."""
    points = [(x, y) for x, y in points if x > 0 and y is not None and y > 0]
    if len(points) < 2:
        return None
    lx = [math.log(x) for x, _ in points]
    ly = [math.log(y) for _, y in points]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def fits(rows: list[dict], fit_min: int) -> dict:
    """Growth exponents per cloud mode: over the sizes from ``fit_min`` up, and between the
    two largest sizes (where fixed costs and cache effects weigh least)."""
    out = {}
    for mode in CLOUD_MODES:
        ok = [r for r in rows if r["task"] == "cloud" and r["mode"] == mode and r["status"] == "ok"]
        large = [r for r in ok if r["n"] >= fit_min]
        used = large if len(large) >= 2 else ok
        if len(used) < 2:
            out[mode] = {"points": len(used), "note": "fewer than two measured sizes"}
            continue
        profiled = [r for r in used if r["torch_peak_gb"]]
        top = used[-2:]
        out[mode] = {
            "n_min": used[0]["n"],
            "n_max": used[-1]["n"],
            "points": len(used),
            "time_slope": fit_slope([(r["n"], r["time_s"]) for r in used]),
            "cpu_slope": fit_slope([(r["n"], r["cpu_s"]) for r in used]),
            "memory_slope": fit_slope([(r["n"], r["extra_rss_gb"]) for r in used]),
            "torch_memory_slope": fit_slope([(r["n"], r["torch_peak_gb"]) for r in profiled]),
            "torch_memory_sizes": [r["n"] for r in profiled],
            "top_sizes": [r["n"] for r in top],
            "top_time_slope": fit_slope([(r["n"], r["time_s"]) for r in top]),
            "top_cpu_slope": fit_slope([(r["n"], r["cpu_s"]) for r in top]),
            "top_memory_slope": fit_slope([(r["n"], r["extra_rss_gb"]) for r in top]),
        }
    return out


def checks(rows: list[dict], slopes: dict, fit_min: int) -> list[dict]:
    """The acceptance criteria, each computed from the measurements."""
    result = []
    lin = slopes.get("linear", {})
    slope = lin.get("memory_slope")
    if slope is None or lin.get("n_min", 0) < fit_min or lin.get("points", 0) < 3:
        result.append(
            {
                "name": "linear memory grows linearly",
                "status": "N/A",
                "detail": f"needs three measured sizes with N >= {fit_min}",
            }
        )
    else:
        result.append(
            {
                "name": "linear memory grows linearly",
                "status": "PASS" if slope <= LINEAR_SLOPE_MAX else "FAIL",
                "detail": (
                    f"peak RSS above baseline grows as N^{slope:.2f} over "
                    f"N = {lin['n_min']:,}..{lin['n_max']:,} (limit N^{LINEAR_SLOPE_MAX}; "
                    "an N x N tensor would give N^2)"
                ),
            }
        )
    row = next(
        (r for r in rows if r["task"] == "cloud" and r["mode"] == "linear" and r["n"] == ACCEPT_N),
        None,
    )
    name = f"{ACCEPT_N:,} points, forward+backward under {ACCEPT_PEAK_GB:g} GB peak RSS"
    if row is None:
        result.append({"name": name, "status": "N/A", "detail": "size not in this run"})
    elif row["status"] != "ok":
        result.append({"name": name, "status": "FAIL", "detail": row.get("note", "")})
    else:
        passed = row["peak_rss_gb"] < ACCEPT_PEAK_GB
        result.append(
            {
                "name": name,
                "status": "PASS" if passed else "FAIL",
                "detail": (
                    f"peak RSS {row['peak_rss_gb']:.2f} GB "
                    f"({row['extra_rss_gb']:.2f} GB above the {row['baseline_rss_gb']:.2f} GB "
                    f"after imports) in {row['time_s']:.2f} s"
                ),
            }
        )
    for row in (r for r in rows if r["task"] == "sequence"):
        name = f"sequence of {row['n']:,} tokens, {row['mode']}: no L x L tensor"
        square_gb = row["n"] ** 2 * 4 / GB
        if row["n"] < SQUARE_CHECK_MIN_LENGTH:
            detail = (
                f"L x L is only {square_gb:.3g} GB here; needs L >= {SQUARE_CHECK_MIN_LENGTH:,}"
            )
            result.append({"name": name, "status": "N/A", "detail": detail})
            continue
        if row["status"] != "ok":
            result.append({"name": name, "status": "FAIL", "detail": row.get("note", "")})
            continue
        result.append(
            {
                "name": name,
                "status": "PASS" if row["peak_rss_gb"] < square_gb else "FAIL",
                "detail": (
                    f"peak RSS {row['peak_rss_gb']:.2f} GB, against {square_gb:,.3g} GB for one "
                    f"L x L float32 matrix and {square_gb * HEADS:,.3g} GB for L x L x heads "
                    f"({row['peak_rss_gb'] / (square_gb * HEADS):.2%} of it)"
                ),
            }
        )
    return result


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _spec(task, n, mode, options, args) -> dict:
    return {
        "task": task,
        "n": n,
        "mode": mode,
        "options": options,
        "seed": args.seed,
        "repeats": args.repeats,
        "max_seconds": args.max_seconds,
        "torch_memory": args.torch_memory,
    }


def _row(task: str, n: int, mode: str, **fields) -> dict:
    return {"task": task, "n": n, "mode": mode, **fields}


def start_context():
    """Fresh processes for the cases: forked from a server that imports torch and flt3d once.

    The server starts now, so that its imports overlap with this process's own.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "flt3d.nn"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return ctx


def run(args, ctx, started: float) -> dict:
    import torch
    from _common import environment

    from flt3d.nn import FLTConv

    probe = FLTConv(CHANNELS, CHANNELS, heads=HEADS)
    num_features = probe.attn.num_features
    num_frequencies = probe.attn.spectrum.num_frequencies
    pair_bytes = _exact_pair_bytes(probe.head_channels, num_frequencies)
    del probe

    timeout = 10 * args.max_seconds + 60
    rows: list[dict] = []
    last: dict[str, dict | None] = dict.fromkeys(CLOUD_MODES)
    stopped: dict[str, str | None] = dict.fromkeys(CLOUD_MODES)
    baseline_gb = 0.3

    def report(row: dict) -> None:
        rows.append(row)
        if row["status"] == "ok":
            print(
                f"  {row['task']:8s} N={row['n']:>9,}  {row['mode']:13s} "
                f"{row['time_s']:9.3f} s  {row['peak_rss_gb']:7.2f} GB peak RSS",
                flush=True,
            )
        else:
            print(
                f"  {row['task']:8s} N={row['n']:>9,}  {row['mode']:13s} {row['status']}: "
                f"{row['note']}",
                flush=True,
            )

    print(f"FLTConv({CHANNELS}, {CHANNELS}, heads={HEADS}), forward+backward, one cloud:")
    for n in args.sizes:
        for mode, options in CLOUD_MODES.items():
            if stopped[mode]:
                report(_row("cloud", n, mode, status="skipped", note=stopped[mode]))
                continue
            need = estimate_gb(mode, n, last[mode], baseline_gb, pair_bytes)
            if need is not None and need > args.memory_budget_gb:
                note = (
                    f"would need ~{need:,.3g} GB peak RSS, over the "
                    f"{args.memory_budget_gb:g} GB budget (--memory-budget-gb)"
                )
                report(_row("cloud", n, mode, status="skipped", note=note, estimated_gb=need))
                continue
            result = run_case(ctx, _spec("cloud", n, mode, options, args), timeout)
            row = _row("cloud", n, mode, estimated_gb=need, **result)
            report(row)
            if row["status"] != "ok":
                stopped[mode] = f"N={n:,} failed ({row['note']})"
                continue
            last[mode] = row
            baseline_gb = row["baseline_rss_gb"]
            if row["first_s"] > args.max_seconds:
                stopped[mode] = (
                    f"N={n:,} took {row['first_s']:.0f} s > --max-seconds {args.max_seconds:g}"
                )

    if args.sequence_length:
        length = args.sequence_length
        print(f"\nOne sequence of {length:,} tokens, pos_dim=1, spectrum='local', linear mode:")
        for mode, options in SEQUENCE_MODES.items():
            result = run_case(ctx, _spec("sequence", length, mode, options, args), timeout)
            report(_row("sequence", length, mode, **result))

    for row in rows:
        ref = next(
            (
                r
                for r in rows
                if r["task"] == row["task"] and r["n"] == row["n"] and r["mode"] == "linear"
            ),
            None,
        )
        both = row["status"] == "ok" and ref is not None and ref["status"] == "ok"
        row["time_ratio"] = row["time_s"] / ref["time_s"] if both else None
        row["memory_ratio"] = (
            row["extra_rss_gb"] / ref["extra_rss_gb"] if both and ref["extra_rss_gb"] > 0 else None
        )

    slopes = fits(rows, args.fit_min)
    machine = environment(torch.get_num_threads())
    machine.update(
        {
            "usable_cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "memory_gb": _total_memory_gb(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "start_method": ctx.get_start_method(),
        }
    )
    return {
        "benchmark": "attention_scaling",
        "layer": {
            "class": "FLTConv",
            "in_channels": CHANNELS,
            "out_channels": CHANNELS,
            "heads": HEADS,
            "num_features": num_features,
            "num_frequencies": num_frequencies,
            "cloud": "uniform in a box of side N^(1/3): about one point per unit volume",
            "modes": {k: dict(v) for k, v in CLOUD_MODES.items()},
            "sequence_modes": {k: dict(v) for k, v in SEQUENCE_MODES.items()},
            "loss": "out.square().mean(), gradients for x and all parameters",
        },
        "settings": {
            "quick": args.quick,
            "sizes": list(args.sizes),
            "sequence_length": args.sequence_length,
            "max_seconds": args.max_seconds,
            "memory_budget_gb": args.memory_budget_gb,
            "repeats": args.repeats,
            "fit_min": args.fit_min,
            "seed": args.seed,
            "exact_pair_bytes_prior": pair_bytes,
        },
        "machine": machine,
        "rows": rows,
        "fits": slopes,
        "checks": checks(rows, slopes, args.fit_min),
        "total_seconds": time.perf_counter() - started,
    }


def _fmt(value, digits: str = ".3g") -> object:
    return "-" if value is None else float(format(value, digits))


def print_summary(payload: dict) -> None:
    from _common import format_table

    headers = [
        "task",
        "N",
        "mode",
        "time s",
        "CPU s",
        "peak RSS GB",
        "+RSS GB",
        "torch GB",
        "time/linear",
        "mem/linear",
        "note",
    ]
    table = []
    for r in payload["rows"]:
        if r["status"] == "ok":
            table.append(
                [
                    r["task"],
                    r["n"],
                    r["mode"],
                    _fmt(r["time_s"]),
                    _fmt(r["cpu_s"]),
                    _fmt(r["peak_rss_gb"]),
                    _fmt(r["extra_rss_gb"]),
                    _fmt(r["torch_peak_gb"]),
                    _fmt(r["time_ratio"]),
                    _fmt(r["memory_ratio"]),
                    f"median of {r['runs']}" if r["runs"] > 1 else "one run",
                ]
            )
        else:
            table.append([r["task"], r["n"], r["mode"], *["-"] * 7, f"{r['status']}: {r['note']}"])
    print()
    print(format_table(headers, table))
    print(
        "\n+RSS: peak RSS above the RSS after imports. torch GB: peak of torch's CPU allocations"
        "\nduring one forward+backward (profiler). Ratios: time and +RSS over linear mode at the"
        "\nsame N (sequence rows: over the bidirectional run)."
    )
    print("\nGrowth exponents (log-log slope against N):")
    for mode, fit in payload["fits"].items():
        if "time_slope" not in fit:
            print(f"  {mode:7s} {fit['note']}")
            continue
        print(
            f"  {mode:7s} time N^{fit['time_slope']:.2f} (CPU N^{fit['cpu_slope']:.2f}), "
            f"+RSS N^{fit['memory_slope']:.2f}  "
            f"[fit over N = {fit['n_min']:,}..{fit['n_max']:,}, {fit['points']} sizes]"
        )
        a, b = fit["top_sizes"]
        print(
            f"  {'':7s} time N^{fit['top_time_slope']:.2f} (CPU N^{fit['top_cpu_slope']:.2f}), "
            f"+RSS N^{fit['top_memory_slope']:.2f}  [between N = {a:,} and {b:,}]"
        )
        sizes = fit["torch_memory_sizes"]
        if fit["torch_memory_slope"] is not None:
            print(
                f"  {'':7s} torch allocations N^{fit['torch_memory_slope']:.2f}  "
                f"[N = {sizes[0]:,}..{sizes[-1]:,}]"
            )
    missing = [r for r in payload["rows"] if r["status"] != "ok"]
    if missing:
        print("\nNot measured:")
        for r in missing:
            print(f"  {r['task']} N={r['n']:,} {r['mode']}: {r['status']}: {r['note']}")
    print("\nAcceptance:")
    for check in payload["checks"]:
        print(f"  {check['status']:4s}  {check['name']}: {check['detail']}")
    machine = payload["machine"]
    ram = "?" if machine["memory_gb"] is None else f"{machine['memory_gb']:.0f}"
    print(
        f"\n{machine['usable_cores']} cores, {ram} GB RAM, "
        f"{machine['threads']} torch threads, torch "
        f"{machine['torch']}, load average {machine['load_average']}, "
        f"{payload['total_seconds']:.0f} s in all."
    )


def parse_args(argv=None):
    total = _total_memory_gb()
    default_budget = 12.0 if total is None else min(12.0, 0.75 * total)
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "attention_scaling.json",
        help="JSON results (default: benchmarks/results/attention_scaling.json)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="per case: a mode stops growing N once one forward+backward takes longer "
        "(default 60); a case is killed after 10x this plus a minute",
    )
    parser.add_argument(
        "--memory-budget-gb",
        type=float,
        default=round(default_budget, 1),
        help="skip a size whose estimated peak RSS exceeds this "
        f"(default min(12, 0.75 x RAM) = {default_budget:.1f})",
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="point counts (default 250 .. 10^6)")
    parser.add_argument(
        "--sequence-length",
        type=int,
        help=f"tokens of the 1D case (default {SEQUENCE_LENGTH:,}; 0 skips it)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed repeats of a cheap case (default 3)"
    )
    parser.add_argument(
        "--fit-min",
        type=int,
        default=10_000,
        help="smallest N in the growth fits, where fixed costs no longer dominate (default 10^4)",
    )
    parser.add_argument(
        "--torch-memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also profile torch's peak CPU allocations of cheap cases (default on)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = QUICK_SIZES if args.quick else SIZES
    args.sizes = sorted(set(args.sizes))
    if args.sequence_length is None:
        args.sequence_length = QUICK_SEQUENCE_LENGTH if args.quick else SEQUENCE_LENGTH
    if args.quick:
        args.repeats = min(args.repeats, 1)
    if min(args.sizes) < 1 or args.max_seconds <= 0 or args.memory_budget_gb <= 0:
        parser.error("sizes, --max-seconds and --memory-budget-gb must be positive")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if sys.platform == "win32":
        raise SystemExit("attention_scaling.py reads peak RSS with the resource module (Unix)")
    started = time.perf_counter()
    ctx = start_context()
    payload = run(args, ctx, started)
    print_summary(payload)
    from _common import write_json

    path = write_json(args.output, payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
