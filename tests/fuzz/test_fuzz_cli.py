"""Fuzzing the ``flt3d`` command in-process: ``predict`` inputs, ``train --set`` and ``eval --set``
overrides.

Every run either succeeds with sane output (finite predictions, one line per molecule or atom)
or exits non-zero with no traceback: status 1 with one line ``flt3d COMMAND: error: ...`` that
names one of its inputs, or status 2 with argparse's usage message. ``train`` runs stop after
:func:`~flt3d.training.run.prepare_fit`: nothing trains; a refused one leaves no run folder.
``eval`` runs evaluate untrained checkpoints on a few batches.
"""

import itertools
import math
import os
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
from hypothesis import example, given
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


# Numbers beyond every size limit (flt3d.training.limits) must be refused; between 1e3 and
# those limits they are allowed sizes, whose models and data would take minutes, not test the CLI.
HUGE_VALUES = ("100000000", "1000000000", "1e12", "-1e12", "1e300", "9" * 30, "2147483648")


def _small(text: str) -> bool:
    from flt3d.training.config import ConfigError, parse_override

    try:
        value = parse_override(f"key={text}")[1]
    except ConfigError:
        return True
    return not isinstance(value, (int, float)) or abs(value) <= 1e3 or abs(value) >= 1e8


VALUES = st.one_of(
    st.sampled_from(OVERRIDE_VALUES),
    st.sampled_from(OVERRIDE_VALUES),
    st.sampled_from(HUGE_VALUES),
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
        examples.outcome(f"exit {code}")
        if code != 0:
            _check_failure(argv, code, err)
            assert not os.path.exists(output), "a refused run left its folder"
            return
        assert f"run folder: {output}" in out

    run()


@pytest.fixture(scope="module")
def qm9_checkpoint(tmp_path_factory):
    """An untrained QM9 gap checkpoint of the shipped sample (only its inputs matter)."""
    from flt3d.training.molecules import MoleculeRegression

    module = MoleculeRegression(
        {"hidden_channels": 8, "num_layers": 1, "heads": 2, "num_frequencies": 4, "target": "gap"}
    )
    path = tmp_path_factory.mktemp("qm9") / "qm9.ckpt"
    entry = {"task": "qm9", "model": module.model.config, "module": {}, "data": {}}
    torch.save({"flt3d": entry, "state_dict": module.state_dict()}, path)
    return str(path)


EVAL_ODD_KEYS = ("model.hidden_channels", "seed", "data", "trainer", "data.x.y", "optim.lr", "x")
VALID_EVAL_OVERRIDES = (
    "data.batch_size=8", "data.eval_batch_size=4", "data.split_seed=1", "data.num_workers=0",
    "trainer.accelerator=cpu", "trainer.precision=32", "trainer.limit_test_batches=1",
    "trainer.devices=1", "trainer.enable_progress_bar=false", "trainer.deterministic=true",
    "trainer.inference_mode=false", "trainer.max_time=00:00:01:00",
)  # fmt: skip
_INDEX = st.integers(min_value=0, max_value=40)
_EVAL_EDITS = st.one_of(
    st.tuples(st.just("delete"), _INDEX),
    st.tuples(st.just("insert"), _INDEX, st.sampled_from(list("=.,:[]{}'\" -_0aZ\u00e9 "))),
    st.tuples(st.just("replace"), _INDEX, st.characters(blacklist_categories=("Cs",))),
    st.tuples(st.just("value"), VALUES),
    st.tuples(st.just("upper")),
)


def _edit(text: str, edits) -> str:
    """``text`` with character edits, a new value (after the ``=``) or upper case."""
    for kind, *args in edits:
        k = args[0] % (len(text) + 1) if args and isinstance(args[0], int) else 0
        if kind == "delete":
            text = text[:k] + text[k + 1 :]
        elif kind == "insert":
            text = text[:k] + args[1] + text[k:]
        elif kind == "replace":
            text = text[:k] + args[1] + text[k + 1 :]
        elif kind == "value":
            text = f"{text.partition('=')[0]}={args[0]}"
        else:
            text = text.upper()
    return text


@st.composite
def eval_arguments(draw, keys: dict[str, list[str]]) -> tuple[str, str | None, list[str]]:
    """A checkpoint (its task), a ``--split`` or none, and up to three overrides: mostly of
    that task's data and trainer keys with fuzzed values, or valid overrides mutated."""
    task = draw(st.sampled_from(["qm9", "atoms"]))
    own = st.sampled_from(keys[task])
    key = st.one_of(own, own, own, st.text(max_size=15), st.sampled_from(EVAL_ODD_KEYS))
    override = st.one_of(
        st.tuples(key, VALUES).map(lambda pair: f"{pair[0]}={pair[1]}"),
        st.builds(_edit, st.sampled_from(VALID_EVAL_OVERRIDES), st.lists(_EVAL_EDITS, max_size=3)),
    )
    split = draw(st.sampled_from([None, None, None, "test", "val", "train", "all", "TEST"]))
    return task, split, draw(st.lists(override, min_size=1, max_size=3))


def _eval_keys() -> dict[str, list[str]]:
    """The keys ``eval --set`` may set, for each task fuzzed."""
    from flt3d.training.tasks import TASKS, section_keys

    keys = {}
    for name in ("qm9", "atoms"):
        sections = section_keys(TASKS[name])
        dotted = {
            f"{section}.{key}" for section in ("data", "trainer") for key in sections[section]
        }
        keys[name] = sorted(dotted - {"data.root", "data.path"})
    return keys


@pytest.mark.parametrize("tier", CLI_TIERS)
def test_eval_overrides(tier, examples, tmp_path, capsys, qm9_checkpoint, atoms_checkpoint):
    checkpoints = {"qm9": qm9_checkpoint, "atoms": atoms_checkpoint}
    threads = torch.get_num_threads()
    # each evaluation runs a few batches, unless an override asks for more
    fixed = [f"data.root={tmp_path / 'cache'}", "trainer.limit_test_batches=2"]

    @tier
    @given(eval_arguments(_eval_keys()))
    @example(("qm9", None, ["data.batch_size=8"]))  # evaluations that run, in every tier
    @example(("atoms", "val", ["trainer.precision=64", "data.eval_batch_size=2"]))
    def run(arguments):
        examples()
        task, split, overrides = arguments
        fuzzed = [*(["--split", split] if split else []), "--set", *overrides]
        argv = ["eval", "--checkpoint", checkpoints[task], "--set", *fixed, *fuzzed]
        try:
            code, out, err = _run(argv, capsys)
        finally:
            torch.set_num_threads(threads)
        examples.outcome(f"exit {code}")
        if code != 0:
            _check_failure(["eval", *fuzzed], code, err)
            return
        # trainer.enable_progress_bar (true, or null: Lightning's default) shows the bar
        lines = [line for line in out.splitlines() if line and not line.startswith("Testing")]
        shown = split or "test"
        unit = r"meV(/Å)?" if task == "atoms" else "meV"
        assert lines and all(
            re.fullmatch(rf"{shown} MAE (gap|energy|forces): {NUMBER} {unit}", line)
            for line in lines
        ), out
        assert _finite(out.replace(" meV", " eV")), out

    run()


# ----------------------------------------------------------------------------- regressions


def test_train_value_of_the_wrong_type_is_a_message(tmp_path, capsys, no_training):
    argv = ["train", "--output", str(tmp_path / "run"), "--set", "optim.lr="]
    code, _, err = _run(argv, capsys)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "the configuration cannot be used: TypeError: '>' not supported" in err
    assert err.rstrip().endswith("(--set overrides: 'optim.lr=')")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # Lightning's own check, after the config's: its message, with the overrides
        ("trainer.profiler=x", "the configuration cannot be used: "),
        # the config's type check, from Trainer's annotation, before Lightning sees it
        ("trainer.max_time=-1", "config key 'trainer.max_time' must be str | timedelta"),
    ],
)
def test_train_values_lightning_rejects_are_messages(
    tmp_path, capsys, override, expected, no_training
):
    argv = ["train", "--output", str(tmp_path / "run"), "--set", override]
    code, _, err = _run(argv, capsys)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert expected in err
    assert override.partition("=")[0].split(".")[-1] in err  # in the message or the overrides


def test_train_value_of_the_wrong_type_names_its_key(tmp_path, capsys, no_training):
    argv = ["train", "--output", str(tmp_path / "run"), "--set", "model.latent_charges=cpu"]
    code, _, err = _run(argv, capsys)
    assert code == 1
    assert "config key 'model.latent_charges' must be int, got 'cpu'" in err


def test_train_value_rejected_without_its_key_names_the_overrides(tmp_path, capsys, no_training):
    # of the right type (a list of symbols), rejected by the model, whose message names the
    # value but not the key
    argv = ["train", "--output", str(tmp_path / "run"), "--set", "model.elements=[cpu]"]
    code, _, err = _run(argv, capsys)
    assert code == 1
    assert "unknown element symbol 'cpu' (--set overrides: 'model.elements=[cpu]')" in err


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


@pytest.mark.parametrize("command", ["train", "eval"])
def test_override_that_contains_itself_is_a_message(command, tmp_path, capsys, qm9_checkpoint):
    # eval raised RecursionError (train: "the configuration cannot be used: RecursionError")
    argv = [command, "--set", "trainer.strategy=&a [*a]"]
    argv += ["--checkpoint", qm9_checkpoint] if command == "eval" else ["--output", str(tmp_path)]
    code, _, err = _run(argv, capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip() == (
        f"flt3d {command}: error: bad override 'trainer.strategy=&a [*a]': the value contains "
        "itself (a YAML alias inside its own anchor)"
    )


EVAL_REFUSED = [
    # a second process re-ran the command and both printed metrics on replicated samples
    ("trainer.devices=2", "evaluation runs in one process on one device; the trainer settings "
     "(devices=2, num_nodes=1) ask for 2"),
    # hung, waiting for the other node
    ("trainer.num_nodes=2", "evaluation runs in one process on one device; the trainer settings "
     "(devices=1, num_nodes=2) ask for 2"),
    # tracebacks of lightning's MisconfigurationException and TypeError
    ("trainer.devices=0", "the trainer settings cannot be used: MisconfigurationException: "
     "`Trainer(devices=0)` value is not a valid input using cpu accelerator."),
    ("trainer.devices=[0]", "the trainer settings cannot be used: TypeError: `devices` selected "
     "with `CPUAccelerator` should be an int > 0."),
    # "not enough values to unpack (expected 1, got 0)", naming nothing
    ("trainer.limit_test_batches=0", "on the 'test' split gave no metrics; the trainer settings "
     "(trainer.accelerator='cpu', trainer.limit_test_batches=0) run no batch or log nothing"),
    # KeyError: 'mae' traceback
    ("trainer.barebones=true", "on the 'test' split gave no metrics; the trainer settings "
     "(trainer.accelerator='cpu', trainer.barebones=True) run no batch or log nothing"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "message"), EVAL_REFUSED, ids=[o for o, _ in EVAL_REFUSED])
def test_eval_trainer_settings_it_cannot_use_are_messages(
    override, message, tmp_path, capsys, qm9_checkpoint
):
    argv = ["eval", "--checkpoint", qm9_checkpoint, "--set", f"data.root={tmp_path}"]
    argv += ["trainer.accelerator=cpu", override]
    code, out, err = _run(argv, capsys)
    assert code == 1 and out == "" and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("flt3d eval: error: ") and line.endswith(message), line


@pytest.mark.parametrize("command", ["train", "eval"])
def test_profiler_that_is_not_a_name_is_a_message(command, tmp_path, capsys, qm9_checkpoint):
    # lightning.Trainer took it and failed in test (or fit): AttributeError: 'int' object has
    # no attribute 'profile'
    argv = [command, "--set", "trainer.profiler=-1", f"data.root={tmp_path / 'cache'}"]
    output = tmp_path / "run"
    argv += ["--checkpoint", qm9_checkpoint] if command == "eval" else ["--output", str(output)]
    code, _, err = _run(argv, capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip() == (
        f"flt3d {command}: error: config key 'trainer.profiler' must be a profiler name "
        "('simple', 'advanced', 'pytorch', 'xla') or null, got -1"
    )
    assert not output.exists()


def test_eval_value_rejected_without_its_key_names_the_overrides(tmp_path, capsys, qm9_checkpoint):
    # the message was Lightning's alone: "'<=' not supported between instances of 'int' and 'str'"
    argv = ["eval", "--checkpoint", qm9_checkpoint, "--set", "trainer.limit_predict_batches=nan"]
    code, _, err = _run(argv + [f"data.root={tmp_path}"], capsys)
    assert code == 1
    assert err.startswith("flt3d eval: error: the trainer settings cannot be used: TypeError: ")
    assert err.rstrip().endswith(
        f"(--set overrides: 'trainer.limit_predict_batches=nan', 'data.root={tmp_path}')"
    )
