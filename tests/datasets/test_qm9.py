import importlib.util
import os
import re
import sys
from collections import Counter

import numpy as np
import pytest
import torch

import flt3d
from flt3d.datasets import (
    HARTREE_TO_EV,
    QM9,
    QM9_COLUMNS,
    QM9_SAMPLE_PATH,
    QM9_SAMPLE_SIZE,
    QM9_SIZE,
    QM9_Z,
    TARGETS,
    UNITS,
    qm9pack_files,
    read_qm9_csv,
    read_qm9_frame,
    standard_split,
    target_index,
)

FLT3D_DIR = os.path.dirname(os.path.abspath(flt3d.__file__))

HAS_QM9PACK = importlib.util.find_spec("qm9pack") is not None
needs_qm9pack = pytest.mark.skipif(not HAS_QM9PACK, reason="qm9pack is not installed")

# kT at 298.15 K in eV: H = U + kT for an ideal gas.
KT_298 = 8.617333262e-5 * 298.15

# Methane, QM9 Index 1, values from the original data.
CH4_HOMO_EV = -10.5499
CH4_U0_EV = -1101.4878


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return QM9(str(tmp_path_factory.mktemp("qm9")), sample=True, log=False)


def test_constants():
    assert len(TARGETS) == len(UNITS) == 12
    assert TARGETS[7] == "U0" and UNITS[7] == "eV" and UNITS[0] == "D"
    assert HARTREE_TO_EV == pytest.approx(27.211386246)
    assert QM9_Z == (1, 6, 7, 8, 9)


def test_sample_file_small():
    assert os.path.getsize(QM9_SAMPLE_PATH) < 3 * 2**20


def test_sample_loads(sample):
    assert len(sample) == QM9_SAMPLE_SIZE == 4000
    assert repr(sample) == "QM9(4000, sample=True)"
    data = sample[0]
    assert data.z.dtype == torch.long and data.z.dim() == 1
    assert data.pos.dtype == torch.float32 and data.pos.shape == (data.num_nodes, 3)
    assert data.y.dtype == torch.float32 and data.y.shape == (1, 12)
    assert data.idx.dtype == torch.long and data.idx.shape == (1,)
    assert isinstance(data.smiles, str) and data.smiles
    assert data.num_nodes == data.z.numel()


def test_sample_contents(sample):
    z, y, idx = sample._data.z, sample._data.y, sample._data.idx
    assert y.shape == (4000, 12)
    assert set(np.unique(z.numpy()).tolist()) <= set(QM9_Z)
    assert set(np.unique(z.numpy()).tolist()) >= {1, 6, 7, 8}
    # distinct QM9 indices, in increasing order, within the 133,885 of the original numbering
    assert (idx[1:] > idx[:-1]).all() and idx.min() >= 1 and idx.max() <= 133_885
    sizes = torch.tensor([sample[i].num_nodes for i in range(0, 4000, 97)])
    assert sizes.min() >= 3 and sizes.max() <= 29
    assert len(sample._data.smiles) == 4000


def test_sample_units(sample):
    y = sample._data.y.double()
    homo, lumo, gap = y[:, 2], y[:, 3], y[:, 4]
    # gap = LUMO - HOMO in eV (the file rounds each to 1e-4 Ha, 2.7 meV)
    assert torch.allclose(gap, lumo - homo, atol=3e-3)
    assert ((homo > -15) & (homo < -3)).all()
    # H = U + kT (needs eV); U0 < U; G < H
    u0, u, h, g = y[:, 7], y[:, 8], y[:, 9], y[:, 10]
    assert torch.allclose(h - u, torch.full_like(h, KT_298), atol=3e-3)
    assert (u > u0).all() and (g < h).all()
    # total energies of molecules with up to 9 heavy atoms: roughly 1,000 to 20,000 eV
    assert (u0 < -1000).all() and (u0 > -2.0e4).all()
    assert (y[:, 0] >= 0).all() and (y[:, 11] > 0).all() and (y[:, 5] > 0).all()
    # ZPVE in eV is tenths of an eV to a few eV (in Hartree it would be below 0.3)
    assert y[:, 6].max() > 1.0 and y[:, 6].min() > 0.1


def test_sample_matches_raw_file(sample):
    frame = read_qm9_frame(QM9_SAMPLE_PATH)
    assert list(frame.columns) == list(QM9_COLUMNS)
    raw = frame[list(QM9_COLUMNS[4:])].to_numpy(dtype=np.float64)
    expected = raw * np.array([1, 1] + [HARTREE_TO_EV] * 3 + [1] + [HARTREE_TO_EV] * 5 + [1])
    assert np.allclose(sample._data.y.numpy(), expected, rtol=1e-6)
    assert sample._data.idx.tolist() == frame["Index"].tolist()
    assert sample._data.smiles[:5] == frame["SMILES"].tolist()[:5]


def test_cache_is_used(tmp_path, monkeypatch):
    QM9(str(tmp_path), sample=True, log=False)
    assert (tmp_path / "processed" / "qm9_sample.pt").is_file()

    def fail(self):
        raise AssertionError("processed again although the cache exists")

    monkeypatch.setattr(QM9, "process", fail)
    assert len(QM9(str(tmp_path), sample=True, log=False)) == 4000
    with pytest.raises(AssertionError, match="processed again"):
        QM9(str(tmp_path), sample=True, log=False, force_reload=True)


def test_pre_filter_and_transform(tmp_path):
    def small(data):
        return data.num_nodes <= 12

    def center(data):
        data.pos = data.pos - data.pos.mean(dim=0)
        return data

    dataset = QM9(str(tmp_path), sample=True, pre_filter=small, pre_transform=center, log=False)
    assert 0 < len(dataset) < 4000
    assert max(dataset[i].num_nodes for i in range(len(dataset))) <= 12
    assert dataset[0].pos.mean(dim=0).abs().max() < 1e-5


def test_sample_argument_checked(tmp_path):
    with pytest.raises(ValueError, match="sample"):
        QM9(str(tmp_path), sample="yes")


@needs_qm9pack
def test_ch4_first_rows_of_part1():
    molecules = read_qm9_csv(qm9pack_files()[0], nrows=3)
    assert len(molecules) == 3
    ch4 = molecules[0]
    assert ch4.idx.tolist() == [1] and ch4.smiles == "C"
    assert ch4.z.tolist() == [6, 1, 1, 1, 1]
    assert ch4.y[0, target_index("homo")].item() == pytest.approx(CH4_HOMO_EV, abs=1e-3)
    assert ch4.y[0, target_index("U0")].item() == pytest.approx(CH4_U0_EV, abs=1e-3)
    assert ch4.y[0, target_index("alpha")].item() == pytest.approx(13.21, abs=1e-4)
    # C-H bonds of 1.09 Å: positions are in Å
    bonds = (ch4.pos[1:] - ch4.pos[0]).norm(dim=1)
    assert torch.allclose(bonds, torch.full((4,), 1.0919), atol=2e-3)
    assert [m.smiles for m in molecules[1:]] == ["N", "O"]


def test_missing_qm9pack(tmp_path, monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "qm9pack" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r"flt3d\[molecules\]"):
        qm9pack_files()
    with pytest.raises(ImportError, match=r"flt3d\[molecules\]"):
        QM9(str(tmp_path), log=False)
    # the sample needs no qm9pack
    assert len(QM9(str(tmp_path), sample=True, log=False)) == 4000


def test_missing_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"flt3d\[molecules\]"):
        read_qm9_csv(QM9_SAMPLE_PATH)


HEADER = ",".join(QM9_COLUMNS)
TARGETS_CH4 = "0.,13.21,-0.3877,0.1171,0.5048,35.3641,0.044749,-40.47893,-40.476062,-40.475117,-40.498597,6.469"  # noqa: E501
ELEMENTS_CH4 = "\"['C','H','H','H','H']\""
XYZ_CH4 = '"[[0.,0.,0.],[0.63,0.63,0.63],[-0.63,-0.63,0.63],[-0.63,0.63,-0.63],[0.63,-0.63,-0.63]]"'


def _write_csv(path, rows):
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_parser_reads_a_small_file(tmp_path):
    path = _write_csv(
        tmp_path / "ok.csv",
        [
            f"7,C,{ELEMENTS_CH4},{XYZ_CH4},{TARGETS_CH4}",
            f"8,C,{ELEMENTS_CH4},{XYZ_CH4},{TARGETS_CH4}",
        ],
    )
    molecules = read_qm9_csv(path)
    assert [m.idx.item() for m in molecules] == [7, 8]
    assert molecules[1].pos[1].tolist() == pytest.approx([0.63, 0.63, 0.63])
    assert molecules[0].y[0, 7].item() == pytest.approx(CH4_U0_EV, abs=1e-3)


@pytest.mark.parametrize(
    ("elements", "xyz", "targets", "message"),
    [
        ("\"['C','Xq','H','H','H']\"", XYZ_CH4, TARGETS_CH4, r"unknown element symbol 'Xq'.*Index 9"),
        (ELEMENTS_CH4, '"[[0.,0.,0.],[1.,0.,0.]]"', TARGETS_CH4, r"3 coordinates.*Index 9"),
        (ELEMENTS_CH4, XYZ_CH4.replace("0.63,0.63,0.63", "0.63,abc,0.63"), TARGETS_CH4,
         r"non-numeric coordinate.*Index 9"),
        (ELEMENTS_CH4, XYZ_CH4.replace("0.63,0.63,0.63", "0.63,nan,0.63"), TARGETS_CH4,
         r"non-finite coordinate.*Index 9"),
        (ELEMENTS_CH4, XYZ_CH4, TARGETS_CH4.replace("13.21", ""), r"target.*Index 9"),
    ],
)  # fmt: skip
def test_parser_errors_name_the_row(tmp_path, elements, xyz, targets, message):
    good = f"8,C,{ELEMENTS_CH4},{XYZ_CH4},{TARGETS_CH4}"
    path = _write_csv(tmp_path / "bad.csv", [good, f"9,C,{elements},{xyz},{targets}"])
    with pytest.raises(ValueError, match=message):
        read_qm9_csv(path)


def test_parser_missing_column(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("Index,SMILES\n1,C\n")
    with pytest.raises(ValueError, match="lacks the column"):
        read_qm9_csv(path)


@pytest.mark.parametrize(
    ("name", "index"),
    [("mu", 0), ("alpha", 1), ("HOMO", 2), ("lumo", 3), ("gap", 4), ("r2", 5), ("zpve", 6),
     ("U0", 7), ("u0", 7), ("U", 8), ("h", 9), ("G", 10), ("cv", 11), ("Cv", 11),
     ("dipole", 0), (" Heat_Capacity ", 11), (3, 3), (np.int64(11), 11), (0, 0)],
)  # fmt: skip
def test_target_index(name, index):
    assert target_index(name) == index


@pytest.mark.parametrize("bad", ["energy", "", 12, -1, 1.5, True, None])
def test_target_index_errors(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        target_index(bad)


def test_standard_split_full_size():
    train, val, test = standard_split(QM9_SIZE)
    assert (len(train), len(val), len(test)) == (110_000, 10_000, 10_831)
    everything = torch.cat([train, val, test])
    assert everything.dtype == torch.long
    assert torch.equal(torch.bincount(everything, minlength=QM9_SIZE), torch.ones(QM9_SIZE).long())


def test_standard_split_deterministic_and_seeded():
    first = standard_split(QM9_SIZE, seed=0)
    second = standard_split(QM9_SIZE, seed=0)
    other = standard_split(QM9_SIZE, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[2], other[2])
    # pinned: if these change, published splits are no longer reproduced
    assert first[2][:6].tolist() == [59, 60, 75, 92, 102, 104]
    assert first[1][:6].tolist() == [29, 30, 33, 61, 67, 82]
    assert standard_split(4000)[2][:6].tolist() == [13, 14, 23, 51, 53, 56]


def test_standard_split_proportional():
    train, val, test = standard_split(4000)
    assert (len(train), len(val), len(test)) == (3363, 305, 332)
    assert len(set(train.tolist()) | set(val.tolist()) | set(test.tolist())) == 4000
    train, val, test = standard_split(4000, train=3000, val=500, reference=None)
    assert (len(train), len(val), len(test)) == (3000, 500, 500)
    assert (train[1:] > train[:-1]).all()


@pytest.mark.parametrize(
    "kwargs",
    [{"num": 0}, {"num": -5}, {"num": 10, "seed": -1}, {"num": 100, "train": 100, "val": 0,
     "reference": None}, {"num": 1}, {"num": 1.5}],
)  # fmt: skip
def test_standard_split_errors(kwargs):
    num = kwargs.pop("num")
    with pytest.raises(ValueError):
        standard_split(num, **kwargs)


def test_dataset_split(sample):
    train, val, test = sample.standard_split()
    assert all(
        torch.equal(a, b) for a, b in zip((train, val, test), standard_split(4000), strict=True)
    )
    assert not set(train.tolist()) & set(test.tolist())
    assert len(sample[train]) == 3363


def flt3d_calls(fn):
    """``(fn(), calls)``: ``calls`` counts the calls of flt3d's own Python functions (by
    function name) made while ``fn`` runs."""
    calls = Counter()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(FLT3D_DIR):
            calls[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        result = fn()
    finally:
        sys.setprofile(None)
    return result, calls


# Reading QM9 runs flt3d's Python a fixed number of times, whatever the number of molecules
# (19 calls for the sample, one file): every row and atom is parsed and checked by pandas,
# numpy and torch, element symbols are looked up once per distinct element. Per-molecule
# Python in flt3d would make the full set (130,831 molecules, 2.4 M atoms) take minutes.
MAX_READ_CALLS = 40


def test_reading_runs_no_python_per_molecule():
    few, few_calls = flt3d_calls(lambda: read_qm9_csv(QM9_SAMPLE_PATH, nrows=400))
    everything, calls = flt3d_calls(lambda: read_qm9_csv(QM9_SAMPLE_PATH))
    assert len(few) == 400 and len(everything) == QM9_SAMPLE_SIZE
    assert calls["atomic_number"] == len(QM9_Z)  # once per element, not per atom
    assert sum(calls.values()) <= MAX_READ_CALLS, calls
    assert sum(calls.values()) - sum(few_calls.values()) <= 2, (calls, few_calls)


@pytest.mark.slow
@needs_qm9pack
def test_full_qm9(tmp_path):
    # processed with a number of calls into flt3d's Python of the sample's order, not of the
    # molecules': 41 against the 4,000-molecule sample's 26 (three files instead of one)
    dataset, calls = flt3d_calls(lambda: QM9(str(tmp_path / "full"), log=False))
    _, sample_calls = flt3d_calls(lambda: QM9(str(tmp_path / "sample"), sample=True, log=False))
    assert len(dataset) == QM9_SIZE == 130_831
    assert calls["atomic_number"] == len(QM9_Z)
    assert sum(calls.values()) <= 2 * sum(sample_calls.values()), (calls, sample_calls)
    ch4 = dataset[0]
    assert ch4.idx.item() == 1 and ch4.smiles == "C"
    assert ch4.y[0, 2].item() == pytest.approx(CH4_HOMO_EV, abs=1e-3)
    assert ch4.y[0, 7].item() == pytest.approx(CH4_U0_EV, abs=1e-3)
    assert set(np.unique(dataset._data.z.numpy()).tolist()) == set(QM9_Z)
    assert dataset._data.idx.max().item() == 133_885
    train, val, test = dataset.standard_split()
    assert (len(train), len(val), len(test)) == (110_000, 10_000, 10_831)
