"""FLTNet against the strongest peers on real QM9 at equal CPU time.

Every model trains on the same molecules, in the same batch order, with the same optimiser
(AdamW), batch size, loss (L1 on the standardised target), schedule (warm-up then cosine decay
over the budget) and target statistics, for the same number of CPU seconds, then predicts the
same held-out molecules; all of that is :mod:`qm9_budget`'s machinery, imported from there. Two
budgets (150 and 900 CPU s by default) show whether a ranking holds once the slower peers have
had time to catch up. Models:

- ``flt``: FLTNet in its shipped settings, the model section of ``flt3d/configs/qm9.yaml``
  (exact attention, 96 channels, 4 heads, 2 layers; ``qm9_budget``'s ``flt_exact``);
- ``schnet``: ``torch_geometric.nn.models.SchNet`` exactly as in ``qm9_budget`` (PyG's
  defaults: 128 channels and filters, 6 interactions, 50 Gaussians, 5 Å);
- ``dimenet``: ``torch_geometric.nn.models.DimeNetPlusPlus`` at the published QM9 size
  (128 channels, 256 output, 64 interaction and 8 basis embedding channels, 4 blocks,
  7 spherical and 6 radial functions, 5 Å; lr 1e-3, the published one);
- ``visnet``: ``torch_geometric.nn.models.ViSNet`` at PyG's default size (128 channels,
  6 layers, l_max 1, 32 radial functions, 8 heads, 5 Å), smaller than the published QM9 model
  (512 channels, 9 layers, l_max 2, 64 radial functions), which at one thread takes several
  CPU seconds a step and would train a few dozen steps in the short budget. Its published lr,
  1e-4 with 10,000 warm-up steps, belongs to that model's 1,000 epochs; here 5e-4, the scale
  of PaiNN's and of TorchMD-Net's equivariant models at this width;
- ``painn``: ``schnetpack.representation.PaiNN`` with SchNetPack's ``Atomwise`` head, at the
  published size (128 channels, 3 interactions, 20 Gaussians, cosine cutoff 5 Å; lr 5e-4).

Statistics are shared: the per-element references and the residual's mean and std are fitted
on the training molecules by the package's heads (``qm9_budget.target_statistics``). FLTNet
holds them in its head and SchNet in its ``mean``/``std``/``atomref`` options, as in
``qm9_budget``; the other peers run with their own references and scaling off (ViSNet's
``prior_model`` removed, mean 0, std 1; DimeNet++ and PaiNN have none) and :class:`Standardised`
applies the same arithmetic to their raw readout: a sum over atoms for U0 and a mean for the
gap, as for SchNet and FLTNet (DimeNet++'s own readout is always a sum; for the gap it is
divided by the number of atoms).

Graphs: PyG's ``radius_graph`` needs ``torch-cluster`` or ``pyg-lib``, neither installable
here. :func:`radius_graph` builds the same edge list in plain torch from the pairs within each
molecule. ViSNet builds its graph in a submodule, which :class:`PlainViSNet` replaces by
:class:`PlainDistance`; DimeNet++ calls the functions ``radius_graph`` and ``triplets`` of
``torch_geometric.nn.models.dimenet`` (the second builds a ``torch_sparse.SparseTensor``, which
without torch-sparse raises an ImportError), so :class:`PlainDimeNetPlusPlus` points both
names at the plain-torch :func:`radius_graph` and :func:`triplets` for the duration of its own
forward pass and restores them after. PaiNN takes a neighbour list as input.

PaiNN needs SchNetPack, whose requirements (``sympy<=1.12``) conflict with torch's
(``sympy>=1.13.3``), so it is installed without them and the few it needs to import are added
by hand::

    pip install --no-deps schnetpack matscipy dirsync fasteners h5py omegaconf \\
        "antlr4-python3-runtime==4.9.3" torch-ema

SchNetPack 2.1.1 then imports ``T_co`` from ``torch.utils.data.dataloader``, which torch no
longer defines; :func:`import_schnetpack` defines that type variable before the import. Without
SchNetPack the default run leaves PaiNN out and says so.

Default run (full QM9 from ``qm9pack``; 10,000 training and 2,000 test molecules drawn with a
fixed seed from the standard split; gap in eV and U0 in meV; 150 and 900 CPU seconds per model,
target and budget; two processes of one thread each)::

    python benchmarks/qm9_peers.py

Quick smoke run (< 60 s), a run on the shipped sample, and tuning on the validation part::

    python benchmarks/qm9_peers.py --quick
    python benchmarks/qm9_peers.py --sample --budget-seconds 60
    python benchmarks/qm9_peers.py --validation --models visnet --lr-visnet 1e-3

Tuning is the same for every model: a learning-rate sweep on the validation part, each
model's own lr times each of ``--lr-factors``; the run records each model's best lr
(``best_lr``), and ``--lrs-from`` takes them into a later run::

    python benchmarks/qm9_peers.py --validation --targets gap --budget-seconds 150 \
        --lr-factors 0.5 1 2 --json benchmarks/results/qm9_peers_tuning.json
    python benchmarks/qm9_peers.py --lrs-from benchmarks/results/qm9_peers_tuning.json
"""

from __future__ import annotations

import os

# Spinning OpenMP threads would charge a model for other processes' load (see qm9_budget).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import typing  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch_geometric.nn.models import DimeNetPlusPlus, ViSNet  # noqa: E402
from torch_geometric.nn.models.visnet import Distance  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS_DIR,
    environment,
    format_table,
    parameter_count,
    write_json,
)
from qm9_budget import (  # noqa: E402
    TARGETS,
    add_data_arguments,
    composition_mae,
    load_splits,
    run_jobs,
    target_statistics,
    train_and_evaluate,
)
from qm9_budget import build_model as budget_model  # noqa: E402

__all__ = [
    "MODELS",
    "PaiNN",
    "PlainDimeNetPlusPlus",
    "PlainDistance",
    "PlainViSNet",
    "Standardised",
    "build_model",
    "dimenet_plus_plus",
    "goals",
    "import_schnetpack",
    "main",
    "radius_graph",
    "triplets",
]

MODELS = ("flt", "schnet", "dimenet", "visnet", "painn")
PEERS = MODELS[1:]
LABELS = {
    "flt": "FLTNet (shipped qm9)",
    "schnet": "SchNet (PyG)",
    "dimenet": "DimeNet++ (PyG)",
    "visnet": "ViSNet (PyG)",
    "painn": "PaiNN (SchNetPack)",
}
GOAL_RATIO = 0.8


def radius_graph(
    pos: Tensor,
    r: float,
    batch: Tensor | None = None,
    *,
    loop: bool = False,
    max_num_neighbors: int = 32,
) -> Tensor:
    r"""Pairs of atoms of one molecule closer than ``r``, laid out as PyG's ``radius_graph``.

    .. math::
        E = \{(j, i) : b_j = b_i,\ \lVert x_j - x_i \rVert < r,\ j \ne i \text{ unless loop}\}

    Plain torch (PyG's needs torch-cluster or pyg-lib). Only the pairs within each molecule are
    formed, :math:`\sum_G n_G^2` of them, so the cost does not grow with the batch squared.
    ``edge_index[0]`` is the neighbour ``j``, ``edge_index[1]`` the centre ``i`` (PyG's
    ``flow="source_to_target"``); edges come grouped by centre, neighbours in index order.

    Args:
        pos: coordinates.
        r: cutoff radius.
        batch: molecule of each atom, sorted (default: one molecule).
        loop: also return the self pairs ``(i, i)`` (default ``False``).
        max_num_neighbors: PyG keeps at most this many neighbours per atom (default 32); here
            an atom with more raises instead of losing some (a QM9 atom has at most 28).

    Shapes:
        - **input:** pos ``[N, 3]``, batch ``[N]``.
        - **output:** edge_index ``[2, E]``.

    Example:
        >>> pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
        >>> radius_graph(pos, 2.0)
        tensor([[1, 0],
                [0, 1]])
    """
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must be [N, 3], got {tuple(pos.shape)}")
    n, device = pos.shape[0], pos.device
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=device)
    if batch.shape != (n,):
        raise ValueError(f"batch must be [N] = [{n}], got {tuple(batch.shape)}")
    if n == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=device)
    if bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted (atoms of one molecule contiguous)")
    sizes = torch.bincount(batch)
    start = sizes.cumsum(0) - sizes
    pairs = sizes * sizes
    molecule = torch.repeat_interleave(torch.arange(sizes.numel(), device=device), pairs)
    local = torch.arange(int(pairs.sum()), device=device)
    local = local - torch.repeat_interleave(pairs.cumsum(0) - pairs, pairs)
    width = sizes[molecule]
    center = start[molecule] + local // width
    neighbour = start[molecule] + local % width
    with torch.no_grad():
        keep = (pos[center] - pos[neighbour]).square().sum(-1) < r * r
    distinct = center != neighbour
    if not loop:
        keep &= distinct
    degree = torch.bincount(center[keep & distinct], minlength=n)
    if int(degree.max()) > max_num_neighbors:
        raise ValueError(
            f"an atom has {int(degree.max())} neighbours within {r}, more than "
            f"max_num_neighbors={max_num_neighbors}"
        )
    return torch.stack([neighbour[keep], center[keep]])


def triplets(
    edge_index: Tensor, num_nodes: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    r"""Angle triplets :math:`k \to j \to i` of a graph, as DimeNet's ``triplets`` returns them.

    One triplet for each edge :math:`j \to i` and each edge :math:`k \to j` with
    :math:`k \ne i`. Plain torch: PyG's version builds a torch-sparse ``SparseTensor``.

    Args:
        edge_index: edges ``(j, i)``, neighbour first.
        num_nodes: number of atoms.

    Returns:
        ``(i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji)``: centre and neighbour of every edge
        ``[E]``; the three atoms of every triplet and the ids of its edges ``k → j`` and
        ``j → i`` ``[T]``.

    Example:
        >>> edge_index = torch.tensor([[1, 0, 2, 1], [0, 1, 1, 2]])  # the chain 0 - 1 - 2
        >>> triplets(edge_index, 3)[2:5]  # i, j, k: the angle at atom 1, from both sides
        (tensor([0, 2]), tensor([1, 1]), tensor([2, 0]))
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
    row, col = edge_index
    device = row.device
    by_center = torch.argsort(col, stable=True)
    degree = torch.bincount(col, minlength=num_nodes)
    first = degree.cumsum(0) - degree
    count = degree[row]  # the edges k -> j of each edge j -> i
    idx_ji = torch.repeat_interleave(torch.arange(row.numel(), device=device), count)
    offset = torch.arange(idx_ji.numel(), device=device)
    offset = offset - torch.repeat_interleave(count.cumsum(0) - count, count)
    idx_kj = by_center[first[row[idx_ji]] + offset]
    idx_i, idx_j, idx_k = col[idx_ji], row[idx_ji], row[idx_kj]
    keep = idx_i != idx_k
    return col, row, idx_i[keep], idx_j[keep], idx_k[keep], idx_kj[keep], idx_ji[keep]


@contextmanager
def _replaced(module, **names) -> Iterator[None]:
    """Point ``module.<name>`` at the given objects inside the block, then restore them."""
    saved = {name: getattr(module, name) for name in names}
    for name, value in names.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def _check_readout(readout: str) -> str:
    if readout not in ("sum", "mean"):
        raise ValueError(f"readout must be 'sum' or 'mean', got {readout!r}")
    return readout


def _counts(batch: Tensor, num_graphs: int) -> Tensor:
    return torch.bincount(batch, minlength=num_graphs).to(torch.get_default_dtype())


class PlainDimeNetPlusPlus(DimeNetPlusPlus):
    r"""PyG's DimeNet++ on a plain-torch radius graph and triplets, with a choice of readout.

    ``DimeNet.forward`` calls the module-level functions ``radius_graph`` and ``triplets`` of
    ``torch_geometric.nn.models.dimenet``; during this class's forward pass (and only then)
    those two names point to :func:`radius_graph` and :func:`triplets`, which return the same
    edges and triplets without torch-cluster or torch-sparse. Not safe for threads that run
    PyG's own DimeNet at the same time.

    Args:
        readout: ``"sum"`` over atoms (PyG's, for extensive targets) or ``"mean"``.
        **kwargs: :class:`torch_geometric.nn.models.DimeNetPlusPlus` arguments.

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``.
        - **output:** ``[G, out_channels]``.
    """

    def __init__(self, *, readout: str = "sum", **kwargs) -> None:
        super().__init__(**kwargs)
        self.readout = _check_readout(readout)

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        from torch_geometric.nn.models import dimenet

        if batch is None:
            batch = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        with _replaced(dimenet, radius_graph=radius_graph, triplets=triplets):
            out = super().forward(z, pos, batch)
        if self.readout == "mean":
            out = out / _counts(batch, out.shape[0]).unsqueeze(-1)
        return out


class PlainDistance(Distance):
    """ViSNet's ``Distance`` on :func:`radius_graph`: edges ``(j, i)``, lengths, ``x_j - x_i``."""

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        edge_index = radius_graph(
            pos,
            self.cutoff,
            batch,
            loop=self.add_self_loops,
            max_num_neighbors=self.max_num_neighbors,
        )
        edge_vec = pos[edge_index[0]] - pos[edge_index[1]]
        # the norm's gradient is undefined at zero: self loops get length 0 without it
        distinct = edge_index[0] != edge_index[1]
        edge_weight = torch.zeros(edge_vec.shape[0], dtype=pos.dtype, device=pos.device)
        edge_weight[distinct] = edge_vec[distinct].norm(dim=-1)
        return edge_index, edge_weight, edge_vec


class PlainViSNet(ViSNet):
    """PyG's ViSNet on :class:`PlainDistance`, without its own references and scaling.

    The ``Atomref`` prior (a trainable per-element offset) is removed and ``mean``/``std``
    are 0 and 1, so that :class:`Standardised` applies the shared statistics instead.

    Args:
        readout: ``"sum"`` or ``"mean"`` over atoms (ViSNet's ``reduce_op``).
        **kwargs: :class:`torch_geometric.nn.models.ViSNet` arguments other than ``atomref``,
            ``reduce_op``, ``mean``, ``std`` and ``derivative``.

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``.
        - **output:** ``[G, 1]``.
    """

    def __init__(self, *, readout: str = "sum", **kwargs) -> None:
        super().__init__(reduce_op=_check_readout(readout), **kwargs)
        self.readout = readout
        old = self.representation_model.distance
        self.representation_model.distance = PlainDistance(
            old.cutoff, max_num_neighbors=old.max_num_neighbors, add_self_loops=old.add_self_loops
        )
        self.prior_model = None

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        if batch is None:
            batch = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        return super().forward(z, pos, batch)[0]


def import_schnetpack():
    """SchNetPack, imported under a torch that no longer defines ``dataloader.T_co``.

    SchNetPack 2.1.1's data loader imports the type variable ``T_co`` from
    ``torch.utils.data.dataloader``; it is defined there (covariant, as torch had it) when
    missing, which changes nothing else in torch.

    Raises:
        ImportError: SchNetPack or one of the packages it imports is not installed.
    """
    import torch.utils.data.dataloader as loader

    if not hasattr(loader, "T_co"):
        loader.T_co = typing.TypeVar("T_co", covariant=True)
    try:
        import schnetpack
    except ImportError as error:
        raise ImportError(
            f"PaiNN needs SchNetPack ({error}); install it without its requirements, which "
            "would replace torch: pip install --no-deps schnetpack matscipy dirsync "
            "fasteners h5py omegaconf 'antlr4-python3-runtime==4.9.3' torch-ema"
        ) from error
    return schnetpack


class PaiNN(nn.Module):
    r"""SchNetPack's PaiNN representation and ``Atomwise`` head on :func:`radius_graph`.

    Args:
        hidden_channels: ``n_atom_basis`` (default 128).
        num_layers: ``n_interactions`` (default 3).
        num_rbf: Gaussians of the radial basis (default 20).
        cutoff: radius of the graph and of the cosine cutoff, Å (default 5.0).
        readout: ``"sum"`` or ``"mean"`` over atoms (``Atomwise``'s ``"sum"``, ``"avg"``).

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``.
        - **output:** ``[G]``.
    """

    def __init__(
        self,
        *,
        hidden_channels: int = 128,
        num_layers: int = 3,
        num_rbf: int = 20,
        cutoff: float = 5.0,
        readout: str = "sum",
    ) -> None:
        super().__init__()
        spk = import_schnetpack()
        self.cutoff = cutoff
        self.readout = _check_readout(readout)
        self.representation = spk.representation.PaiNN(
            n_atom_basis=hidden_channels,
            n_interactions=num_layers,
            radial_basis=spk.nn.GaussianRBF(n_rbf=num_rbf, cutoff=cutoff),
            cutoff_fn=spk.nn.CosineCutoff(cutoff),
        )
        self.output = spk.atomistic.Atomwise(
            n_in=hidden_channels, aggregation_mode="sum" if readout == "sum" else "avg"
        )
        names = ("Z", "Rij", "idx_i", "idx_j", "idx_m", "n_atoms")
        self._keys = {name: getattr(spk.properties, name) for name in names}

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        if batch is None:
            batch = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        # SchNetPack's neighbour lists keep every neighbour within the cutoff
        neighbour, center = radius_graph(pos, self.cutoff, batch, max_num_neighbors=z.numel())
        keys = self._keys
        inputs = {
            keys["Z"]: z,
            keys["Rij"]: pos[neighbour] - pos[center],
            keys["idx_i"]: center,
            keys["idx_j"]: neighbour,
            keys["idx_m"]: batch,
            keys["n_atoms"]: torch.bincount(batch),
        }
        return self.output(self.representation(inputs))[self.output.output_key]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.representation.n_atom_basis}, "
            f"num_layers={self.representation.n_interactions}, cutoff={self.cutoff})"
        )


class Standardised(nn.Module):
    r"""A peer's raw readout :math:`r_G`, brought to the target's units by shared statistics.

    .. math::
        y_G = \sigma\, r_G + \mu\, n_G + \sum_{i \in G} a_{z_i} \quad \text{(extensive)},
        \qquad y_G = \sigma\, r_G + \mu \quad \text{(intensive)}

    with :math:`r_G` a sum over atoms for an extensive target and a mean for an intensive one:
    the arithmetic of FLTNet's heads and of SchNet's ``mean``, ``std`` and ``atomref``. The
    statistics are buffers (never trained, never decayed).

    Args:
        model: maps ``(z, pos, batch)`` to ``[G]`` or ``[G, 1]``.
        stats: ``(mean, std, atomref)`` from :func:`qm9_budget.target_statistics`;
            ``atomref`` ``None`` for an intensive target.

    Shapes:
        - **input:** z ``[N]``, pos ``[N, 3]``, batch ``[N]``.
        - **output:** ``[G]``.
    """

    def __init__(self, model: nn.Module, stats) -> None:
        super().__init__()
        self.model = model
        self.extensive = stats.atomref is not None
        dtype = torch.get_default_dtype()
        self.register_buffer("mean", torch.as_tensor(float(stats.mean[0]), dtype=dtype))
        self.register_buffer("std", torch.as_tensor(float(stats.std[0]), dtype=dtype))
        atomref = stats.atomref[:, 0] if self.extensive else torch.zeros(1)
        self.register_buffer("atomref", atomref.to(dtype))

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        raw = self.model(z, pos, batch).reshape(-1)
        if not self.extensive:
            return self.std * raw + self.mean
        counts = _counts(batch, raw.shape[0])
        references = torch.zeros_like(raw).index_add_(0, batch, self.atomref[z])
        return self.std * raw + self.mean * counts + references

    def __repr__(self) -> str:
        kind = "extensive" if self.extensive else "intensive"
        return f"{type(self).__name__}({type(self.model).__name__}, {kind})"


_DIMENET_TEMPLATES: dict[tuple, PlainDimeNetPlusPlus] = {}


def dimenet_plus_plus(*, readout: str = "sum", **options) -> PlainDimeNetPlusPlus:
    """A :class:`PlainDimeNetPlusPlus`, initialised from torch's global random state.

    Building DimeNet's Bessel and spherical bases with sympy takes about 10 CPU seconds, so
    each process builds one template per set of options (without drawing from the global
    random state) and returns copies of it with freshly drawn parameters: the same model for
    the same seed, whichever job came first.
    """
    key = tuple(sorted(options.items()))
    if key not in _DIMENET_TEMPLATES:
        with torch.random.fork_rng():
            _DIMENET_TEMPLATES[key] = PlainDimeNetPlusPlus(**options)
    model = copy.deepcopy(_DIMENET_TEMPLATES[key])
    model.readout = _check_readout(readout)
    model.reset_parameters()
    return model


def build_model(name: str, target: str, stats, args) -> nn.Module:
    """Model ``name`` for ``target``, carrying the shared ``stats``; sizes from ``args``."""
    readout = "sum" if stats.atomref is not None else "mean"
    if name == "flt":
        from flt3d.models import FLTNet
        from flt3d.training import load_config

        options = {**load_config("qm9")["model"], "target": target}
        if args.quick:
            options.update(hidden_channels=32, num_features=16)
        model = FLTNet(**options)
        model.set_statistics(*stats)
        return model
    if name == "schnet":
        return budget_model("schnet", target, stats, args)
    if name == "dimenet":
        model = dimenet_plus_plus(
            readout=readout,
            hidden_channels=args.dimenet_hidden,
            out_channels=1,
            num_blocks=args.dimenet_blocks,
            int_emb_size=args.dimenet_int_emb,
            basis_emb_size=8,
            out_emb_channels=2 * args.dimenet_hidden,
            num_spherical=args.dimenet_spherical,
            num_radial=args.dimenet_radial,
            cutoff=args.cutoff,
        )
    elif name == "visnet":
        model = PlainViSNet(
            readout=readout,
            hidden_channels=args.visnet_hidden,
            num_layers=args.visnet_layers,
            lmax=args.visnet_lmax,
            num_rbf=32,
            num_heads=8,
            cutoff=args.cutoff,
        )
    elif name == "painn":
        model = PaiNN(
            hidden_channels=args.painn_hidden,
            num_layers=args.painn_layers,
            num_rbf=20,
            cutoff=args.cutoff,
            readout=readout,
        )
    else:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return Standardised(model, stats)


def run_one(job: dict) -> dict:
    """Train one model on one target for one budget, then evaluate (runs in a worker)."""
    args, name, target, budget = job["args"], job["model"], job["target"], job["budget"]
    train, test, stats, scale = job["train"], job["test"], job["stats"], job["scale"]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    column, unit, factor = TARGETS[target]
    model = build_model(name, target, stats, args)
    lr = job.get("lr", getattr(args, f"lr_{name}"))
    wall = time.perf_counter()
    log, mae = train_and_evaluate(
        model,
        train,
        test,
        column,
        scale,
        lr=lr,
        budget_seconds=budget,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        seed=args.seed,
    )
    return {
        "target": target,
        "unit": unit,
        "budget_seconds": budget,
        "model": name,
        "label": LABELS[name],
        "parameters": parameter_count(model),
        "lr": lr,
        "train_steps": log["steps"],
        "epochs": round(log["steps"] * args.batch_size / len(train), 2),
        "cpu_seconds": log["cpu_seconds"],
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "final_train_loss": log["final_train_loss"],
        "test_mae": mae * factor,
    }


def goals(rows: list[dict]) -> dict:
    """FLTNet against the best peer, for each target and budget found in ``rows``.

    The goal is met at a target and budget when FLTNet's MAE is at most ``GOAL_RATIO`` times
    the lowest peer MAE there, and overall when it is met at every target and budget present;
    a pair without FLTNet or without any peer does not meet it (ratio NaN).
    """
    cases: dict[tuple[str, float], dict[str, float]] = {}
    for r in rows:
        cases.setdefault((r["target"], r["budget_seconds"]), {})[r["model"]] = r["test_mae"]
    result: dict = {"ratio": GOAL_RATIO, "per_case": []}
    for (target, budget), mae in cases.items():
        peers = {m: v for m, v in mae.items() if m in PEERS}
        best = min(peers, key=peers.get) if peers else None
        flt = mae.get("flt")
        ratio = flt / peers[best] if flt is not None and best is not None else math.nan
        result["per_case"].append(
            {
                "target": target,
                "budget_seconds": budget,
                "flt_mae": flt,
                "best_peer": best,
                "best_peer_mae": peers.get(best),
                "ratio_to_best_peer": ratio,
                "goal_met": bool(ratio <= GOAL_RATIO),
            }
        )
    result["goal_met"] = bool(result["per_case"]) and all(c["goal_met"] for c in result["per_case"])
    return result


def goal_line(summary: dict) -> str:
    """``FLTNet MAE ≤ 0.8 × best peer ...: MET`` (or ``NOT MET``), with the ratios."""
    ratios = ", ".join(
        f"{c['target']} {c['budget_seconds']:g} s {c['ratio_to_best_peer']:.3g}"
        for c in summary["per_case"]
    )
    verdict = "MET" if summary["goal_met"] else "NOT MET"
    return (
        f"FLTNet MAE ≤ {GOAL_RATIO} × best peer at equal CPU time, every target and budget "
        f"({ratios}): {verdict}"
    )


def available_models(names: list[str], explicit: bool) -> tuple[list[str], dict[str, str]]:
    """The models that can run here, and why the others cannot.

    PaiNN asked for by name must run (its ImportError is raised); in the default list it is
    left out, with the reason, when SchNetPack cannot be imported.
    """
    left_out = {}
    if "painn" in names:
        try:
            import_schnetpack()
        except ImportError as error:
            if explicit:
                raise
            left_out["painn"] = str(error)
    return [n for n in names if n not in left_out], left_out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(
        parser,
        quick="smoke run (< 60 s): sample, small models, budgets of 0.5 and 1 CPU s, one process",
    )
    parser.add_argument("--models", nargs="+", default=None, choices=MODELS)
    parser.add_argument(
        "--budget-seconds",
        type=float,
        nargs="+",
        default=[150.0, 900.0],
        help="CPU seconds (process time) of training per model, target and budget",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--processes", type=int, default=2, help="runs in parallel")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--lr-flt", type=float, default=1e-3)
    parser.add_argument("--lr-schnet", type=float, default=1e-3)
    parser.add_argument("--lr-dimenet", type=float, default=1e-3)
    parser.add_argument("--lr-visnet", type=float, default=5e-4)
    parser.add_argument("--lr-painn", type=float, default=5e-4)
    parser.add_argument(
        "--lr-factors",
        type=float,
        nargs="+",
        default=[1.0],
        help="run every model at its lr times each factor (a sweep; use with --validation)",
    )
    parser.add_argument(
        "--lrs-from",
        default=None,
        help="JSON of an earlier run whose best_lr entry sets each model's lr",
    )
    parser.add_argument("--cutoff", type=float, default=5.0, help="peers' radius (Å)")
    parser.add_argument("--schnet-hidden", type=int, default=128)
    parser.add_argument("--schnet-layers", type=int, default=6)
    parser.add_argument("--dimenet-hidden", type=int, default=128)
    parser.add_argument("--dimenet-blocks", type=int, default=4)
    parser.add_argument("--dimenet-int-emb", type=int, default=64)
    parser.add_argument("--dimenet-spherical", type=int, default=7)
    parser.add_argument("--dimenet-radial", type=int, default=6)
    parser.add_argument("--visnet-hidden", type=int, default=128)
    parser.add_argument("--visnet-layers", type=int, default=6)
    parser.add_argument("--visnet-lmax", type=int, default=1)
    parser.add_argument("--painn-hidden", type=int, default=128)
    parser.add_argument("--painn-layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json",
        default=None,
        help="output JSON (default benchmarks/results/qm9_peers.json; "
        "quick runs: qm9_peers_quick.json)",
    )
    args = parser.parse_args(argv)
    args.explicit_models = args.models is not None
    args.models = list(MODELS) if args.models is None else args.models
    if args.quick:
        args.sample = True
        args.train_size, args.test_size = min(args.train_size, 300), min(args.test_size, 100)
        args.budget_seconds = [min(b, 1.0) for b in args.budget_seconds]
        if len(args.budget_seconds) > 1:
            args.budget_seconds = [0.5, 1.0]
        args.processes = 1
        args.schnet_hidden, args.schnet_layers = 32, 2
        args.dimenet_hidden, args.dimenet_blocks, args.dimenet_int_emb = 32, 2, 16
        args.dimenet_spherical, args.dimenet_radial = 3, 4
        args.visnet_hidden, args.visnet_layers = 32, 2
        args.painn_hidden, args.painn_layers = 32, 2
    args.budget_seconds = sorted(set(args.budget_seconds))
    if any(not (f > 0 and math.isfinite(f)) for f in args.lr_factors):
        parser.error(f"--lr-factors must be positive numbers, got {args.lr_factors}")
    args.lr_factors = sorted(set(args.lr_factors))
    if args.lrs_from is not None:
        try:
            tuned = lrs_from(args.lrs_from)
        except ValueError as error:
            parser.error(str(error))
        for name, lr in tuned.items():
            setattr(args, f"lr_{name}", lr)
    return args


def lrs_from(path: str) -> dict[str, float]:
    """The ``best_lr`` entry of an earlier run's JSON: ``{model: lr}``."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            best = json.load(handle)["best_lr"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"--lrs-from {path}: expected the JSON of a qm9_peers run with a 'best_lr' "
            f"entry ({type(error).__name__}: {error})"
        ) from None
    unknown = sorted(set(best) - set(MODELS))
    if unknown or not all(isinstance(v, (int, float)) and v > 0 for v in best.values()):
        raise ValueError(
            f"--lrs-from {path}: 'best_lr' must map models ({', '.join(MODELS)}) to positive "
            f"learning rates, got {best!r}"
        )
    return {name: float(lr) for name, lr in best.items()}


def best_lrs(rows: list[dict]) -> dict[str, float]:
    """Each model's lr with the lowest mean of MAE / best MAE of its target and budget."""
    best_case: dict[tuple, float] = {}
    for r in rows:
        key = (r["target"], r["budget_seconds"])
        best_case[key] = min(best_case.get(key, math.inf), r["test_mae"])
    scores: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        relative = r["test_mae"] / best_case[(r["target"], r["budget_seconds"])]
        scores.setdefault(r["model"], {}).setdefault(r["lr"], []).append(relative)
    return {
        model: min(by_lr, key=lambda lr: sum(by_lr[lr]) / len(by_lr[lr]))
        for model, by_lr in scores.items()
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    models, left_out = available_models(args.models, args.explicit_models)
    for name, reason in left_out.items():
        print(f"{LABELS[name]} left out: {reason}")
    train, test, dataset_name = load_splits(args)
    part = "validation" if args.validation else "test"
    budgets = ", ".join(f"{b:g}" for b in args.budget_seconds)
    print(
        f"{dataset_name}: {len(train)} training, {len(test)} {part} molecules; "
        f"{budgets} CPU s per run, {args.threads} thread(s), {args.processes} process(es)"
    )
    jobs, baseline = [], {}
    for target in args.targets:
        stats, scale = target_statistics(train, target)
        baseline[target] = composition_mae(test, TARGETS[target][0], stats) * TARGETS[target][2]
        for budget in args.budget_seconds:
            for name in models:
                for factor in args.lr_factors:
                    jobs.append(
                        {
                            "args": args,
                            "model": name,
                            "target": target,
                            "budget": budget,
                            "lr": getattr(args, f"lr_{name}") * factor,
                            "train": train,
                            "test": test,
                            "stats": stats,
                            "scale": scale,
                        }
                    )
    # the longest runs first, so that the processes finish together
    jobs.sort(key=lambda job: -job["budget"])
    rows = run_jobs(jobs, args.processes, worker=run_one)

    def order(r):
        return (
            args.targets.index(r["target"]),
            r["budget_seconds"],
            MODELS.index(r["model"]),
            r["lr"],
        )

    rows.sort(key=order)
    best_lr = best_lrs(rows)
    # with a sweep, each model competes at its best lr
    chosen = [r for r in rows if r["lr"] == best_lr[r["model"]]]
    summary = goals(chosen)
    best = {(c["target"], c["budget_seconds"]): c["best_peer_mae"] for c in summary["per_case"]}
    for r in rows:
        peer = best.get((r["target"], r["budget_seconds"]))
        r["ratio_to_best_peer"] = r["test_mae"] / peer if peer else None
    headers = [
        "target",
        "budget s",
        "model",
        "params",
        "lr",
        "steps",
        "epochs",
        "CPU s",
        f"{part} MAE",
        "unit",
        "/ best peer",
    ]
    table = format_table(
        headers,
        [
            [
                r["target"],
                r["budget_seconds"],
                r["label"],
                r["parameters"],
                f"{r['lr']:.3g}",
                r["train_steps"],
                r["epochs"],
                r["cpu_seconds"],
                r["test_mae"],
                r["unit"],
                "-" if r["ratio_to_best_peer"] is None else r["ratio_to_best_peer"],
            ]
            for r in rows
        ],
    )
    print(table)
    for target, value in baseline.items():
        print(
            f"  {target}: the training statistics alone (references, mean; no model) give "
            f"MAE {value:.4g} {TARGETS[target][1]}"
        )
    for c in summary["per_case"]:
        print(
            f"  {c['target']}, {c['budget_seconds']:g} CPU s: best peer "
            f"{LABELS.get(c['best_peer'], '-')}; FLTNet / best peer = "
            f"{c['ratio_to_best_peer']:.3f}"
        )
    line = goal_line(summary)
    print(line)
    payload = {
        "benchmark": "qm9_peers",
        "dataset": dataset_name,
        "evaluated_on": part,
        "train_molecules": len(train),
        "test_molecules": len(test),
        "models": models,
        "left_out": left_out,
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "environment": environment(args.threads),
        "rows": rows,
        "statistics_only_mae": baseline,
        "best_lr": best_lr,
        "goals": summary,
        "goal_lines": [line],
        "table": table,
        "wall_seconds_total": round(time.perf_counter() - started, 1),
    }
    default = "qm9_peers_quick.json" if args.quick else "qm9_peers.json"
    path = write_json(args.json or RESULTS_DIR / default, payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
