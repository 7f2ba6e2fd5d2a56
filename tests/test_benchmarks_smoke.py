"""Smoke tests of the scripts in benchmarks/: each runs end to end on a tiny setting."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.skipif(sys.platform == "win32", reason="peak RSS comes from the resource module")
def test_attention_scaling_quick(tmp_path):
    output = tmp_path / "scaling.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "attention_scaling.py"),
            "--quick",
            "--output",
            str(output),
            # no size skipped and every torch peak measured, however slow the machine (and a
            # child timeout of 10^7 s, more than one Connection.poll can wait)
            "--max-seconds",
            "1000000",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(output.read_text())

    rows = payload["rows"]
    cloud = [r for r in rows if r["task"] == "cloud"]
    sizes = sorted({r["n"] for r in cloud})
    assert len(sizes) >= 2
    for mode in ("linear", "exact", "favor+"):
        measured = [r for r in cloud if r["mode"] == mode]
        assert [r["n"] for r in measured] == sizes, mode
        for r in measured:
            assert r["status"] == "ok", r
            assert r["time_s"] > 0 and r["cpu_s"] >= 0
            assert r["peak_rss_gb"] > 0 and r["peak_rss_gb"] >= r["baseline_rss_gb"]
    # ratios are computed against linear mode at the same N
    for r in cloud:
        if r["mode"] == "linear":
            assert r["time_ratio"] == pytest.approx(1.0)
    sequence = {r["mode"]: r for r in rows if r["task"] == "sequence"}
    assert set(sequence) == {"linear", "linear causal"}
    assert all(r["status"] == "ok" and r["time_s"] > 0 for r in sequence.values())

    # exact attention allocates for every pair: its torch allocations outgrow linear mode's
    exact = {r["n"]: r["torch_peak_gb"] for r in cloud if r["mode"] == "exact"}
    linear = {r["n"]: r["torch_peak_gb"] for r in cloud if r["mode"] == "linear"}
    assert exact[sizes[-1]] / exact[sizes[0]] > linear[sizes[-1]] / linear[sizes[0]]

    assert payload["machine"]["torch"]
    assert payload["machine"]["usable_cores"] >= 1
    assert {c["status"] for c in payload["checks"]} <= {"PASS", "FAIL", "N/A"}
    assert "Acceptance:" in proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="peak RSS comes from the resource module")
def test_fltnet_scaling_quick(tmp_path):
    """FLTNet on 10^3 and 2 * 10^3 atoms of liquid density: linear mode runs both, uses less
    memory than exact mode at 10^3 atoms, and its attention rate is reported next to the
    machine's matmul rate."""
    output = tmp_path / "fltnet_scaling.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "fltnet_scaling.py"),
            "--sizes",
            "1000",
            "2000",
            "--exact-max",
            "1000",
            "--threads",
            "1",
            "--json",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(output.read_text())
    rows = {(r["mode"], r["n"]): r for r in payload["rows"]}
    assert rows["linear", 1000]["seconds"] > 0 and rows["linear", 2000]["seconds"] > 0
    assert rows["linear", 1000]["peak_rss_gb"] < rows["exact", 1000]["peak_rss_gb"]
    assert 20 < rows["linear", 1000]["pairs_per_atom"] < 60  # 5 Å at 0.1 atoms per Å^3
    assert rows["linear", 1000]["attention_gflops"] > 0 and payload["matmul_gflops"] > 0
    assert "skipped" in rows["exact", 2000]["note"]


def test_linear_vs_exact_quick():
    """The shipped qm9 model, fresh: linear mode within 5% of exact and rotation invariant."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "linear_vs_exact.py"), "--quick", "--molecules", "64"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fresh: linear vs exact ≤ 5%: PASS; rotation ≤ 5%: PASS" in proc.stdout
