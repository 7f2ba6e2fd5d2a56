"""Smoke runs of the accuracy benchmarks (``--quick``): one JSON row per variant, finite metrics.

Each script runs in a subprocess, as a user would run it; a quick run trains every variant for
one CPU second, so the numbers are meaningless and only their shape and finiteness are checked.
Each takes 12-16 s on an idle two-core machine (not marked slow); the timeout allows for load.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{Path(script).stem}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(out.read_text())


def test_qm9_budget_quick(tmp_path):
    payload = _run("qm9_budget.py", "--root", str(tmp_path / "qm9"), tmp_path=tmp_path)
    rows = payload["rows"]
    variants = ("flt_exact", "flt_linear", "flt_linear_steps", "flt_norpe", "schnet")
    expected = {(t, v) for t in ("gap", "U0") for v in variants}
    assert {(r["target"], r["variant"]) for r in rows} == expected
    assert len(rows) == len(expected)
    steps = {(r["target"], r["variant"]): r["train_steps"] for r in rows}
    for r in rows:
        assert math.isfinite(r["test_mae"]) and r["test_mae"] > 0
        assert r["train_steps"] >= 1
        if r["variant"] == "flt_linear_steps":  # as many steps as exact mode, any CPU time
            assert r["train_steps"] == steps[r["target"], "flt_exact"]
        else:
            assert r["cpu_seconds"] >= payload["config"]["budget_seconds"]
        assert r["unit"] == ("meV" if r["target"] == "U0" else "eV")
    schnet = {r["target"]: r["test_mae"] for r in rows if r["variant"] == "schnet"}
    for r in rows:
        assert r["ratio_to_schnet"] == pytest.approx(r["test_mae"] / schnet[r["target"]])
    assert payload["goal_lines"][0].endswith(("MET", "NOT MET"))
    assert payload["goal_lines"][1].endswith(("YES", "NO"))
    assert payload["goal_lines"][2].startswith("linear ≤ 1.15 × exact at equal steps: ")
    assert payload["train_molecules"] == 300 and payload["test_molecules"] == 100


def test_grid_tasks_quick(tmp_path):
    payload = _run("grid_tasks.py", tmp_path=tmp_path)
    rows = payload["rows"]
    variants = ("flt_gmm", "flt_local", "performer", "performer_ape", "exact_gmm")
    expected = {(t, v) for t in ("text", "digits") for v in variants}
    assert {(r["task"], r["variant"]) for r in rows} == expected
    assert len(rows) == len(expected)
    for r in rows:
        assert math.isfinite(r["value"])
        if r["task"] == "text":
            assert 0 < r["value"] < 10  # bits per character; uniform over ~100 chars is 6.7
        else:
            assert 0 <= r["value"] <= 1
        assert r["train_steps"] >= 1
    # the reference and the exact variant share the same modules, hence the same size
    size = {(r["task"], r["variant"]): r["parameters"] for r in rows}
    for task in ("text", "digits"):
        assert size[(task, "exact_gmm")] == size[(task, "flt_gmm")]
    claims = payload["claims"]
    assert isinstance(claims["learned_rpe_beats_linear_baselines"]["held"], bool)
    assert isinstance(claims["local_rpe_helps_language_modelling"]["held"], bool)
