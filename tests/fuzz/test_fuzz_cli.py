"""Fuzzing the ``flt3d`` command in-process: ``predict`` inputs and ``train --set`` overrides.

Every run either succeeds with sane output (finite predictions, one line per molecule or atom)
or exits non-zero with no traceback: status 1 with one line ``flt3d COMMAND: error: ...`` that
names one of its inputs, or status 2 with argparse's usage message. ``train`` runs stop after
:func:`~flt3d.training.run.prepare_fit`: nothing trains.
"""

import itertools
import math
import re

import pytest
import torch
from fuzz_strategies import (
    CLI_TIERS,
    CLUSTER_EXTXYZ,
    MOL_SEEDS,
    SDF_SEEDS,
    SMILES_SEEDS,
    STRUCTURE_SEEDS,
    WATER_EXTXYZ,
    XYZ_SEEDS,
    file_contents,
    smiles_strings,
    xyz_files,
)
from hypothesis import given
from hypothesis import strategies as st

from flt3d.cli import main

pytest.importorskip("ase")
pytest.importorskip("lightning")
RDLogger = pytest.importorskip("rdkit.RDLogger")

NUMBER = r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?"
EXTENSIONS = [".xyz", ".extxyz", ".sdf", ".mol", ".smi", ".smiles", ".XYZ", ".pdb", "", ".db"]
MOLECULE_FILES = st.one_of(
    file_contents(XYZ_SEEDS), file_contents(SDF_SEEDS), file_contents(MOL_SEEDS),
    file_contents(SMILES_SEEDS), xyz_files(),
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _quiet_rdkit():
    RDLogger.DisableLog("rdApp.*")
    yield
    RDLogger.EnableLog("rdApp.*")


@pytest.fixture(scope="module")
def atoms_checkpoint(tmp_path_factory):
    """An untrained energy-and-forces checkpoint for H, O and Cu (only its inputs matter)."""
    from flt3d.training.atoms import EnergyForcesRegression

    module = EnergyForcesRegression(
        {"hidden_channels": 8, "num_layers": 1, "heads": 2, "num_frequencies": 4,
         "elements": [1, 8, 29], "target": "energy"}
    )  # fmt: skip
    path = tmp_path_factory.mktemp("atoms") / "atoms.ckpt"
    entry = {"task": "atoms", "model": module.model.config, "module": {}, "data": {}}
    torch.save({"flt3d": entry, "state_dict": module.state_dict()}, path)
    return str(path)


class Files:
    """Writes each input to a fresh file of the folder."""

    def __init__(self, folder):
        self.folder, self.count = folder, 0

    def __call__(self, content: bytes, extension: str) -> str:
        self.count += 1
        path = self.folder / f"input{self.count}{extension}"
        path.write_bytes(content)
        return str(path)


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def _names(argv) -> set[str]:
    """The ways a message may name an input: a value, its repr, an override's key."""
    names = set()
    for value in argv[1:]:
        if value.startswith("--"):
            continue
        names |= {value, repr(value)[1:-1]}
        key = value.partition("=")[0].strip()
        if "=" in value and key:
            names |= {key, key.split(".")[-1]}
    return names


def _check_failure(argv, code, err) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    if code == 2:  # usage error: argparse's usage line, then its error line
        assert lines and ": error: " in lines[-1], err
        return
    assert code == 1, (argv, code, err)
    assert len(lines) == 1 and lines[0].startswith(f"flt3d {argv[0]}: error: "), err
    assert any(name in lines[0] for name in _names(argv)), (argv, lines[0])


def _finite(text: str) -> bool:
    return all(math.isfinite(float(value)) for value in re.findall(r"\S+(?= eV)", text))


@pytest.mark.parametrize("tier", CLI_TIERS)
def test_predict_molecules(tier, examples, tmp_path, capsys):
    write = Files(tmp_path)

    @tier
    @given(
        st.lists(smiles_strings(), max_size=2),
        st.lists(st.tuples(MOLECULE_FILES, st.sampled_from(EXTENSIONS)), max_size=2),
        st.one_of(st.none(), st.sampled_from(["1", "-1", "x", "2147483648", "9" * 25])),
    )
    def run(smiles, files, seed):
        examples()
        argv = ["predict", "--model", "qm9-gap"]
        argv += [part for text in smiles for part in ("--smiles", text)]
        argv += [part for content, ext in files for part in ("--file", write(content, ext))]
        argv += [] if seed is None else ["--seed", seed]
        code, out, err = _run(argv, capsys)
        if code != 0:
            _check_failure(argv, code, err)
            return
        values = re.findall(rf"\tgap = ({NUMBER}) eV$", out, re.M)
        assert len(values) == out.count("\tgap = ") >= len(smiles) + len(files), out
        assert _finite(out), out

    run()


@pytest.mark.parametrize("tier", CLI_TIERS)
def test_predict_structures(tier, examples, tmp_path, capsys, atoms_checkpoint):
    write = Files(tmp_path)

    @tier
    @given(
        st.lists(
            st.tuples(
                st.one_of(file_contents(STRUCTURE_SEEDS), MOLECULE_FILES),
                st.sampled_from([".extxyz", ".xyz", ".sdf", ".mol", ".db", ".traj", ""]),
            ),
            min_size=1,
            max_size=2,
        ),
        st.lists(st.sampled_from(["C", "O"]), max_size=1),
    )
    def run(files, smiles):
        examples()
        argv = ["predict", "--checkpoint", atoms_checkpoint]
        argv += [part for content, ext in files for part in ("--file", write(content, ext))]
        argv += [part for text in smiles for part in ("--smiles", text)]
        code, out, err = _run(argv, capsys)
        if code != 0:
            _check_failure(argv, code, err)
            return
        energies = [line for line in out.splitlines() if not line.startswith("  ")]
        assert len(energies) >= len(files)
        force = rf"  \d+\t\w+\tforce = {NUMBER} {NUMBER} {NUMBER} eV/Å"
        for line in out.splitlines():
            assert re.fullmatch(rf".*\tenergy = {NUMBER} eV|{force}", line), line

    run()


@pytest.mark.parametrize("tier", CLI_TIERS)
def test_checkpoints_and_models(tier, examples, tmp_path, capsys, atoms_checkpoint):
    from flt3d import pretrained

    write = Files(tmp_path)
    originals = [open(atoms_checkpoint, "rb").read(), open(pretrained.path("qm9-gap"), "rb").read()]
    sources = st.one_of(
        st.binary(max_size=200).map(lambda data: ("bytes", data)),
        st.tuples(st.just("cut"), st.sampled_from([0, 1]), st.integers(0, 999)),
        st.tuples(
            st.just("flip"),
            st.sampled_from([0, 1]),
            st.integers(0, 10**7),
            st.binary(min_size=1, max_size=4),
        ),
        st.sampled_from(["", ".", "/", "/dev/null", "/nonexistent/x.ckpt", str(tmp_path)]).map(
            lambda path: ("path", path)
        ),
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(["qm9-gap ", "QM9-GAP", "../qm9-gap", "qm9-U0.pt", "__init__", ""]),
        ).map(lambda name: ("model", name)),
    )

    @tier
    @given(sources)
    def run(source):
        examples()
        kind = source[0]
        if kind == "model":
            argv = ["predict", "--model", source[1]]
        elif kind == "path":
            argv = ["predict", "--checkpoint", source[1]]
        else:
            if kind == "bytes":
                content = source[1]
            elif kind == "cut":
                original = originals[source[1]]
                content = original[: source[2] * len(original) // 1000]
            else:
                content = bytearray(originals[source[1]])
                at = source[2] % len(content)
                content[at : at + len(source[3])] = source[3]
            argv = ["predict", "--checkpoint", write(bytes(content), ".ckpt")]
        checkpoint = argv[2]
        if kind in ("cut", "flip") and source[1] == 0:  # the energy-and-forces checkpoint
            argv += ["--file", write(CLUSTER_EXTXYZ.encode(), ".extxyz")]
        else:
            argv += ["--smiles", "C"]
        code, out, err = _run(argv, capsys)
        if code != 0:
            _check_failure(argv, code, err)
            if code == 1:  # not argparse's usage error (a --model value such as "-x")
                assert checkpoint in err or repr(checkpoint)[1:-1] in err, err
            return
        assert _finite(out), out

    run()


CONFIGS = ("qm9", "atoms", "digits", "pointcloud", "pydoc_lm")
ODD_KEYS = ("model", "trainer", "data.", ".x", "a..b", "seed.x", "optim", "1a")


def _config_keys() -> dict[str, list[str]]:
    """The keys ``--set`` may set, for each shipped configuration (named as its task)."""
    from flt3d.training.tasks import TASKS, section_keys

    keys = {}
    for name in CONFIGS:
        sections = section_keys(TASKS[name]).items()
        dotted = {f"{section}.{key}" for section, names in sections for key in names}
        dotted = (dotted - {"data.root", "data.path"}) | {"task", "seed", "num_threads"}
        keys[name] = sorted(dotted)
    return keys


OVERRIDE_VALUES = (
    "", "0", "-1", "1", "2", "3", "1e-3", "nan", ".nan", ".inf", "-.inf", "true", "false",
    "null", "~", "[]", "{}", "[1, 2]", "{a: 1}", "x", "'8'", "cpu", "gpu", "auto", "16-mixed",
    "exact", "linear", "gap", "U0", "energy", "l1", "mse", "cosine", "00:00:00:01",
    "!!python/object:os.system", "&a [*a]", "*a", "qm9", "atoms", "digits", "0.5", "-0.0",
)  # fmt: skip


# Sizes stay small: the configuration accepts any number of layers, heads or channels, and
# building a model of a million layers would exhaust the machine's memory, not test the CLI.
def _small(text: str) -> bool:
    from flt3d.training.config import ConfigError, parse_override

    try:
        value = parse_override(f"key={text}")[1]
    except ConfigError:
        return True
    return not isinstance(value, (int, float)) or abs(value) <= 1e3


VALUES = st.one_of(
    st.sampled_from(OVERRIDE_VALUES),
    st.sampled_from(OVERRIDE_VALUES),
    st.text(max_size=10).filter(_small),
    st.integers(min_value=-5, max_value=64).map(str),
    st.floats(min_value=-1e3, max_value=1e3).map(repr),
)


@pytest.fixture
def no_training(monkeypatch):
    """Runs that pass every check stop before training."""
    from flt3d.training import run as training_run

    monkeypatch.setattr(training_run.Run, "run", lambda self, **options: [])


@st.composite
def train_arguments(draw, keys: dict[str, list[str]]) -> tuple[str | None, list[tuple]]:
    """A shipped configuration (or the default) and up to three ``KEY=VALUE`` overrides,
    mostly of that configuration's keys."""
    config = draw(st.sampled_from([None, *CONFIGS]))
    own = st.sampled_from(keys[config or "qm9"])
    key = st.one_of(
        own,
        own,
        own,
        st.sampled_from(sorted({key for names in keys.values() for key in names})),
        st.text(max_size=15),
        st.sampled_from(ODD_KEYS),
    )
    return config, draw(st.lists(st.tuples(key, VALUES), min_size=1, max_size=3))


@pytest.mark.parametrize("tier", CLI_TIERS)
def test_train_overrides(tier, examples, tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    runs = itertools.count()

    @tier
    @given(train_arguments(_config_keys()))
    def run(arguments):
        examples()
        config, pairs = arguments
        output = str(tmp_path / f"run{next(runs)}")
        argv = ["train", "--output", output, *(["--config", config] if config else [])]
        argv += ["--set", *[f"{k}={v}" for k, v in pairs], f"data.root={tmp_path / 'cache'}"]
        try:
            code, out, err = _run(argv, capsys)
        finally:
            torch.set_num_threads(threads)
        if code != 0:
            _check_failure(argv, code, err)
            return
        assert f"run folder: {output}" in out

    run()


# ----------------------------------------------------------------------------- regressions


def test_train_value_of_the_wrong_type_is_a_message(tmp_path, capsys, no_training):
    argv = ["train", "--output", str(tmp_path / "run"), "--set", "optim.lr="]
    code, _, err = _run(argv, capsys)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "the configuration cannot be used: TypeError: '>' not supported" in err
    assert err.rstrip().endswith("(--set overrides: 'optim.lr=')")


@pytest.mark.parametrize(
    "override", ["trainer.profiler=x", "trainer.max_time=-1", "trainer.strategy=&a [*a]"]
)
def test_train_values_lightning_rejects_are_messages(tmp_path, capsys, override, no_training):
    argv = ["train", "--output", str(tmp_path / "run"), "--set", override]
    code, _, err = _run(argv, capsys)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "the configuration cannot be used: " in err
    assert override.partition("=")[0].split(".")[-1] in err  # in the message or the overrides


def test_train_value_rejected_without_its_key_names_the_overrides(tmp_path, capsys, no_training):
    argv = ["train", "--output", str(tmp_path / "run"), "--set", "model.latent_charges=cpu"]
    code, _, err = _run(argv, capsys)
    assert code == 1
    assert "invalid literal for int() with base 10: 'cpu' (--set overrides: " in err
    assert "'model.latent_charges=cpu'" in err


def test_train_more_threads_than_cores(tmp_path, capsys, no_training):
    argv = ["train", "--output", str(tmp_path / "run"), "--set", "num_threads=100000"]
    code, _, err = _run(argv, capsys)
    assert code == 1
    assert "config key 'num_threads' is 100000, more than the" in err


def test_predict_seed_beyond_c_int(capsys):
    code, _, err = _run(
        ["predict", "--model", "qm9-gap", "--smiles", "C", "--seed", "2147483648"], capsys
    )
    assert code == 1
    assert "seed must be a non-negative integer below 2**31, got 2147483648" in err


def test_predict_smiles_with_an_energy_checkpoint_names_both(capsys, atoms_checkpoint):
    code, _, err = _run(["predict", "--checkpoint", atoms_checkpoint, "--smiles", "CO"], capsys)
    assert code == 1
    assert f"{atoms_checkpoint!r} is an energy-and-forces checkpoint" in err
    assert "(got --smiles 'CO')" in err


def test_predict_periodic_file_names_the_file(tmp_path, capsys, atoms_checkpoint):
    path = tmp_path / "cell.extxyz"
    path.write_text(WATER_EXTXYZ)
    code, _, err = _run(["predict", "--checkpoint", atoms_checkpoint, "--file", str(path)], capsys)
    assert code == 1
    assert f"cannot predict {str(path)!r}: periodic cells need a local FLTNet" in err


def test_multiline_errors_are_one_line(tmp_path, capsys, atoms_checkpoint):
    checkpoint = torch.load(atoms_checkpoint, weights_only=True)
    name = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"]["renamed." + name] = checkpoint["state_dict"].pop(name)
    path = tmp_path / "renamed.ckpt"
    torch.save(checkpoint, path)
    code, _, err = _run(["predict", "--checkpoint", str(path), "--smiles", "C"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "does not rebuild into a model: Error(s) in loading state_dict" in err
    assert "Missing key(s) in state_dict" in err and "Unexpected key(s)" in err


def _damaged(atoms_checkpoint, tmp_path, value: float) -> tuple[str, str]:
    checkpoint = torch.load(atoms_checkpoint, weights_only=True)
    name = next(
        k for k, v in checkpoint["state_dict"].items() if v.is_floating_point() and v.dim() == 2
    )
    checkpoint["state_dict"][name].view(-1)[0] = value
    path = tmp_path / f"damaged-{value}.ckpt"
    torch.save(checkpoint, path)
    return str(path), name


def test_nan_weights_are_a_corrupt_checkpoint(tmp_path, capsys, atoms_checkpoint):
    path, name = _damaged(atoms_checkpoint, tmp_path, math.nan)
    structure = tmp_path / "copper.extxyz"
    structure.write_text(CLUSTER_EXTXYZ)
    code, _, err = _run(["predict", "--checkpoint", path, "--file", str(structure)], capsys)
    assert code == 1
    assert f"checkpoint {path!r} is corrupt: its weights {name!r} hold NaN" in err


def test_huge_weights_predicting_nan_are_an_error(tmp_path, capsys):
    from flt3d import pretrained

    checkpoint = torch.load(pretrained.path("qm9-gap"), weights_only=True)
    name = "model.blocks.2.conv.qkv.weight"
    checkpoint["state_dict"][name].view(-1)[0] = 3e38  # finite: a flipped exponent byte
    path = tmp_path / "huge.ckpt"
    torch.save(checkpoint, path)
    code, _, err = _run(["predict", "--checkpoint", str(path), "--smiles", "C"], capsys)
    assert code == 1
    assert f"the model of checkpoint {str(path)!r} predicts NaN or infinite values for 'C'" in err
