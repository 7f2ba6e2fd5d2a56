"""``benchmarks/qm9_peers.py``: the peers' graphs and adapters, the goal check, a quick run.

The adapters run on a few random molecules with small sizes; the graph functions are compared
with pair and triplet lists built by brute force; the quick run (about 25 CPU seconds) checks
the rows and fields of the JSON it writes.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import qm9_peers as peers  # noqa: E402
from qm9_budget import RadiusGraph  # noqa: E402


def molecules(sizes=(5, 1, 7, 4), seed=0):
    """Random molecules (H, C, N, O, F) of the given sizes, about 1.5 Å between atoms."""
    gen = torch.Generator().manual_seed(seed)
    batch = torch.cat([torch.full((n,), g) for g, n in enumerate(sizes)])
    z = torch.tensor([1, 6, 7, 8, 9])[torch.randint(0, 5, (batch.numel(),), generator=gen)]
    pos = 1.5 * torch.randn(batch.numel(), 3, generator=gen)
    return z, pos, batch


def brute_force_pairs(pos, batch, r, loop=False):
    return {
        (j, i)
        for i, j in itertools.product(range(pos.shape[0]), repeat=2)
        if batch[i] == batch[j] and (loop or i != j) and float((pos[i] - pos[j]).norm()) < r
    }


def statistics(extensive: bool):
    """Hand-made shared statistics: references for H, C, N, O, F when extensive."""
    from flt3d.atomistic import HeadStatistics

    if not extensive:
        return HeadStatistics(torch.tensor([6.5]), torch.tensor([1.3]), None)
    atomref = torch.zeros(101, 1, dtype=torch.float64)
    references = [-13.6, -1029.0, -1485.0, -2042.0, -2713.0]
    atomref[[1, 6, 7, 8, 9], 0] = torch.tensor(references, dtype=torch.float64)
    return HeadStatistics(torch.tensor([-0.2]), torch.tensor([0.19]), atomref)


def rotation(seed=3):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed)))
    return q


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("r", [1.0, 2.5, 100.0])
def test_radius_graph_matches_brute_force(r, loop):
    _, pos, batch = molecules()
    edge_index = peers.radius_graph(pos, r, batch, loop=loop)
    pairs = [tuple(e) for e in edge_index.t().tolist()]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == brute_force_pairs(pos, batch, r, loop)
    centers = edge_index[1]
    assert bool((centers[1:] >= centers[:-1]).all())  # grouped by centre
    if not loop:  # the graph qm9_budget gives SchNet is the same pair set
        schnet_edges, dist = RadiusGraph(r)(pos, batch)
        assert {tuple(e) for e in schnet_edges.t().tolist()} == set(pairs)
        assert torch.allclose(dist, (pos[schnet_edges[0]] - pos[schnet_edges[1]]).norm(dim=-1))


def test_radius_graph_checks_inputs():
    _, pos, batch = molecules()
    with pytest.raises(ValueError, match="sorted"):
        peers.radius_graph(pos, 2.0, batch.flip(0))
    with pytest.raises(ValueError, match="max_num_neighbors"):
        peers.radius_graph(pos, 100.0, batch, max_num_neighbors=3)
    with pytest.raises(ValueError, match=r"pos must be \[N, 3\]"):
        peers.radius_graph(pos[:, :2], 2.0, batch)
    assert peers.radius_graph(pos, 2.0).shape[0] == 2  # batch=None: one molecule


def test_triplets_match_brute_force():
    _, pos, batch = molecules()
    edge_index = peers.radius_graph(pos, 2.5, batch)
    i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = peers.triplets(edge_index, pos.shape[0])
    assert torch.equal(i, edge_index[1]) and torch.equal(j, edge_index[0])
    edges = [tuple(e) for e in edge_index.t().tolist()]  # (source, target)
    expected = {
        (b[1], b[0], a[0])  # (i, j, k) for the edges a = k -> j and b = j -> i, k != i
        for a, b in itertools.product(edges, repeat=2)
        if a[1] == b[0] and a[0] != b[1]
    }
    found = list(zip(idx_i.tolist(), idx_j.tolist(), idx_k.tolist(), strict=True))
    assert len(found) == len(set(found)) and set(found) == expected
    # the edge ids name the triplet's two edges
    assert torch.equal(edge_index[0, idx_kj], idx_k) and torch.equal(edge_index[1, idx_kj], idx_j)
    assert torch.equal(edge_index[0, idx_ji], idx_j) and torch.equal(edge_index[1, idx_ji], idx_i)


def _forbid(module, name, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"{module.__name__}.{name} must not be called")

    monkeypatch.setattr(module, name, forbidden)
    return forbidden


# as build_model makes them from the arguments below, so that one template serves all tests
DIMENET = dict(
    hidden_channels=16,
    out_channels=1,
    num_blocks=1,
    int_emb_size=8,
    basis_emb_size=8,
    out_emb_channels=32,
    num_spherical=2,
    num_radial=3,
    cutoff=5.0,
)


def small_args():
    args = peers.parse_args(["--quick"])
    args.dimenet_hidden, args.dimenet_blocks, args.dimenet_int_emb = 16, 1, 8
    args.dimenet_spherical, args.dimenet_radial = 2, 3
    return args


def _small(name: str, readout: str):
    if name == "dimenet":
        return peers.dimenet_plus_plus(readout=readout, **DIMENET)
    if name == "visnet":
        return peers.PlainViSNet(readout=readout, hidden_channels=16, num_layers=1, num_heads=2)
    return peers.PaiNN(hidden_channels=16, num_layers=1, readout=readout)


@pytest.mark.parametrize("readout", ["sum", "mean"])
@pytest.mark.parametrize("name", ["dimenet", "visnet", "painn"])
def test_adapter_forward_backward_without_torch_cluster(name, readout, monkeypatch):
    from torch_geometric.nn.models import dimenet, visnet

    if name == "painn":
        try:
            peers.import_schnetpack()
        except ImportError as error:
            pytest.skip(str(error))

    # PyG's own graph builders (torch-cluster, torch-sparse) must never run
    forbidden = _forbid(dimenet, "radius_graph", monkeypatch)
    _forbid(dimenet, "triplets", monkeypatch)
    _forbid(visnet, "radius_graph", monkeypatch)
    z, pos, batch = molecules()
    model = _small(name, readout)
    out = model(z, pos, batch).reshape(-1)
    assert out.shape == (4,) and bool(torch.isfinite(out).all())
    # not out.square(): DimeNet++'s output layers start at zero, and so would every gradient
    (out * torch.linspace(1.0, 2.0, 4)).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert dimenet.radius_graph is forbidden  # restored after the forward pass

    model.eval()
    with torch.no_grad():
        ref = model(z, pos, batch).reshape(-1)
        rotated = model(z, pos @ rotation().T + torch.tensor([1.0, -2.0, 0.5]), batch)
        # each molecule alone gives the same value as in the batch
        alone = model(z[batch == 2], pos[batch == 2], torch.zeros(7, dtype=torch.long))
    assert torch.allclose(rotated.reshape(-1), ref, atol=1e-4, rtol=1e-4)
    assert torch.allclose(alone.reshape(-1), ref[2:3], atol=1e-5, rtol=1e-5)


def test_dimenet_copies_are_seeded_not_ordered():
    """Two builds from one seed are the same model, whether or not the template existed."""
    options = {**DIMENET, "readout": "sum"}
    peers._DIMENET_TEMPLATES.clear()
    torch.manual_seed(5)
    first = peers.dimenet_plus_plus(**options)
    torch.manual_seed(5)
    second = peers.dimenet_plus_plus(**options)
    torch.manual_seed(6)
    other = peers.dimenet_plus_plus(**options)
    pairs = list(zip(first.parameters(), second.parameters(), other.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b, _ in pairs)
    assert not all(torch.equal(a, c) for a, _, c in pairs)
    assert first is not second


@pytest.mark.parametrize("extensive", [True, False])
def test_standardised_applies_the_shared_statistics(extensive):
    z, pos, batch = molecules()
    raw = torch.tensor([0.5, -1.0, 2.0, 0.25])

    class Fixed(torch.nn.Module):
        def forward(self, z, pos, batch):
            return raw.unsqueeze(-1)

    stats = statistics(extensive)
    out = peers.Standardised(Fixed(), stats)(z, pos, batch)
    for g in range(4):
        atoms = z[batch == g]
        expected = float(stats.std[0]) * float(raw[g])
        if extensive:
            expected += float(stats.mean[0]) * atoms.numel()
            expected += float(stats.atomref[atoms, 0].sum())
        else:
            expected += float(stats.mean[0])
        assert float(out[g]) == pytest.approx(expected, rel=1e-6, abs=1e-4)


@pytest.mark.parametrize("name", ["dimenet", "visnet"])
def test_build_model_turns_the_peers_own_statistics_off(name):
    args = small_args()
    model = peers.build_model(name, "U0", statistics(True), args)
    assert isinstance(model, peers.Standardised) and model.extensive
    assert model.atomref.requires_grad is False
    assert float(model.atomref[6]) == pytest.approx(-1029.0)
    if name == "visnet":
        inner = model.model
        assert inner.prior_model is None and inner.reduce_op == "sum"
        assert float(inner.mean) == 0.0 and float(inner.std) == 1.0
        assert isinstance(inner.representation_model.distance, peers.PlainDistance)
    gap = peers.build_model(name, "gap", statistics(False), args)
    assert not gap.extensive and gap.model.readout == "mean"


def _row(target, budget, model, mae):
    return {"target": target, "budget_seconds": budget, "model": model, "test_mae": mae}


def test_goals_met_and_not_met():
    met = [
        _row("gap", 150.0, "flt", 0.16),
        _row("gap", 150.0, "schnet", 0.25),
        _row("gap", 150.0, "dimenet", 0.21),  # best peer: 0.16 / 0.21 = 0.76
        _row("U0", 150.0, "flt", 70.0),
        _row("U0", 150.0, "visnet", 90.0),  # 0.78
    ]
    summary = peers.goals(met)
    assert summary["goal_met"] is True
    gap = next(c for c in summary["per_case"] if c["target"] == "gap")
    assert gap["best_peer"] == "dimenet"
    assert gap["ratio_to_best_peer"] == pytest.approx(0.16 / 0.21)
    assert peers.goal_line(summary).endswith(": MET")

    # one budget where FLTNet is not 0.8 x the best peer fails the whole goal
    missed = met + [_row("gap", 900.0, "flt", 0.15), _row("gap", 900.0, "painn", 0.18)]
    summary = peers.goals(missed)
    assert summary["goal_met"] is False
    late = next(c for c in summary["per_case"] if c["budget_seconds"] == 900.0)
    assert late["goal_met"] is False and late["ratio_to_best_peer"] == pytest.approx(0.15 / 0.18)
    assert peers.goal_line(summary).endswith(": NOT MET")

    # no peer, or no FLTNet, is not a met goal
    assert peers.goals([_row("gap", 150.0, "flt", 0.1)])["goal_met"] is False
    assert peers.goals([_row("gap", 150.0, "schnet", 0.1)])["goal_met"] is False
    assert peers.goals([])["goal_met"] is False


def test_best_lrs_picks_the_lowest_relative_error_over_cases():
    rows = [
        {**_row("gap", 150.0, "flt", 0.20), "lr": 1e-3},
        {**_row("gap", 150.0, "flt", 0.18), "lr": 2e-3},
        {**_row("U0", 150.0, "flt", 50.0), "lr": 1e-3},
        {**_row("U0", 150.0, "flt", 60.0), "lr": 2e-3},
        {**_row("gap", 150.0, "painn", 0.30), "lr": 5e-4},
        {**_row("gap", 150.0, "painn", 0.25), "lr": 2.5e-4},
    ]
    # flt: 1e-3 scores (0.20/0.18 + 1) / 2 = 1.056; 2e-3 scores (1 + 60/50) / 2 = 1.1
    assert peers.best_lrs(rows) == {"flt": 1e-3, "painn": 2.5e-4}


def test_lrs_from_reads_best_lr_and_rejects_bad_files(tmp_path):
    good = tmp_path / "tuning.json"
    good.write_text(json.dumps({"best_lr": {"flt": 0.002, "visnet": 0.00025}}))
    args = peers.parse_args(["--lrs-from", str(good)])
    assert args.lr_flt == 0.002 and args.lr_visnet == 0.00025
    assert args.lr_schnet == 1e-3  # models the file does not name keep their own lr
    for text in ["{}", "not json", json.dumps({"best_lr": {"gpt": 1e-3}}),
                 json.dumps({"best_lr": {"flt": -1}})]:  # fmt: skip
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match="bad.json"):
            peers.lrs_from(str(bad))
    with pytest.raises(SystemExit):
        peers.parse_args(["--lrs-from", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit):
        peers.parse_args(["--lr-factors", "0"])


def test_quick_run(tmp_path):
    out = tmp_path / "peers.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable, str(BENCHMARKS / "qm9_peers.py"), "--quick", "--targets", "gap",
            "--budget-seconds", "0.5", "--json", str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == "qm9_peers"
    assert payload["train_molecules"] == 300 and payload["test_molecules"] == 100
    models = payload["models"]
    assert set(models) | set(payload["left_out"]) == set(peers.MODELS)
    assert {"flt", "schnet", "dimenet", "visnet"} <= set(models)
    budgets = payload["config"]["budget_seconds"]
    assert budgets == [0.5]
    rows = payload["rows"]
    expected = {("gap", 0.5, m) for m in models}
    assert {(r["target"], r["budget_seconds"], r["model"]) for r in rows} == expected
    assert len(rows) == len(expected)
    for r in rows:
        assert math.isfinite(r["test_mae"]) and r["test_mae"] > 0
        assert r["train_steps"] >= 1 and r["parameters"] > 0
        assert r["cpu_seconds"] >= r["budget_seconds"]
        assert r["unit"] == ("meV" if r["target"] == "U0" else "eV")
        peer_mae = min(
            q["test_mae"]
            for q in rows
            if q["model"] != "flt"
            and (q["target"], q["budget_seconds"]) == (r["target"], r["budget_seconds"])
        )
        assert r["ratio_to_best_peer"] == pytest.approx(r["test_mae"] / peer_mae)
    cases = payload["goals"]["per_case"]
    assert len(cases) == 1
    assert payload["goals"]["goal_met"] == all(c["ratio_to_best_peer"] <= 0.8 for c in cases)
    verdict = "MET" if payload["goals"]["goal_met"] else "NOT MET"
    assert payload["goal_lines"][0].endswith(f": {verdict}")
    assert payload["goal_lines"][0] in result.stdout
    table = payload["table"].splitlines()
    assert len(table) == 2 + len(rows)
    assert "/ best peer" in table[0] and "FLTNet (shipped qm9)" in payload["table"]


def test_painn_left_out_only_when_not_asked_for(monkeypatch):
    def missing():
        raise ImportError("PaiNN needs SchNetPack (No module named 'schnetpack')")

    monkeypatch.setattr(peers, "import_schnetpack", missing)
    models, left_out = peers.available_models(list(peers.MODELS), explicit=False)
    assert models == ["flt", "schnet", "dimenet", "visnet"]
    assert "SchNetPack" in left_out["painn"]
    with pytest.raises(ImportError, match="SchNetPack"):
        peers.available_models(["flt", "painn"], explicit=True)
    assert peers.available_models(["flt", "dimenet"], explicit=True) == (["flt", "dimenet"], {})
