"""The ``flt3d`` command: train, eval, predict, and every input error as a message."""

import os
import re
import subprocess
import sys

import pytest
import torch
import yaml

from flt3d.cli import main

TINY = [
    "model.hidden_channels=8", "model.num_layers=1", "model.heads=2", "model.num_frequencies=4",
    "data.batch_size=16", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1", "trainer.accelerator=cpu", "optim.warmup_steps=2",
]  # fmt: skip
NUMBER = r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?"


@pytest.fixture(scope="module")
def qm9_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("qm9"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, qm9_root):
    """A tiny QM9 run made with ``flt3d train``: its folder and what it printed."""
    output = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--output", str(output), "--set", *TINY, f"data.root={qm9_root}"]
    from contextlib import redirect_stdout
    from io import StringIO

    buffer = StringIO()
    with redirect_stdout(buffer):
        assert main(argv) == 0
    return output, buffer.getvalue()


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_prints_validation_and_test_mae_in_mev(trained):
    output, printed = trained
    assert re.search(rf"^val MAE gap: {NUMBER} meV$", printed, re.M)
    assert re.search(rf"^test MAE gap: {NUMBER} meV$", printed, re.M)
    assert f"run folder: {output}" in printed
    assert (output / "checkpoints" / "best.ckpt").is_file()
    assert (output / "checkpoints" / "last.ckpt").is_file()


def test_eval_prints_mae_per_target(trained, capsys):
    output, printed = trained
    best = str(output / "checkpoints" / "best.ckpt")
    code, out, err = _run(["eval", "--checkpoint", best], capsys)
    assert code == 0, err
    assert re.fullmatch(rf"test MAE gap: {NUMBER} meV\n", out)
    # the run evaluated its best checkpoint on the batches its config allows
    limit = ["--set", "trainer.limit_test_batches=2"]
    code, out, _ = _run(["eval", "--checkpoint", best, "--split", "val", *limit], capsys)
    assert code == 0
    assert out.strip() in printed.splitlines()
    results = yaml.safe_load((output / "results.yaml").read_text())
    assert float(out.split()[3]) == pytest.approx(results["val"]["mae"], rel=1e-3)


def test_eval_data_overrides(trained, capsys):
    output, _ = trained
    best = str(output / "checkpoints" / "best.ckpt")
    code, out, err = _run(
        ["eval", "--checkpoint", best, "--split", "train", "--set", "data.eval_batch_size=512"],
        capsys,
    )
    assert code == 0, err
    assert out.startswith("train MAE gap: ")


def test_predict_prints_one_line_per_molecule(trained, capsys, tmp_path):
    output, _ = trained
    water = tmp_path / "water.xyz"
    water.write_text("3\nwater\nO 0.0 0.0 0.117\nH 0.0 0.757 -0.467\nH 0.0 -0.757 -0.467\n")
    two = tmp_path / "two.xyz"
    two.write_text(water.read_text() * 2)
    argv = ["predict", "--checkpoint", str(output / "checkpoints" / "best.ckpt"),
            "--smiles", "CCO", "--smiles", "c1ccccc1", "--file", str(water), "--file", str(two)]  # fmt: skip
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    lines = out.splitlines()
    labels = ["CCO", "c1ccccc1", str(water), f"{two}#0", f"{two}#1"]  # from 0, as ASE
    assert len(lines) == len(labels)
    for label, line in zip(labels, lines):
        assert re.fullmatch(rf"{re.escape(label)}\tgap = {NUMBER} eV", line), line
    assert lines[3].split("=")[1] == lines[4].split("=")[1] == lines[2].split("=")[1]


def test_resume_continues_the_step_count(tmp_path, qm9_root, capsys):
    output = str(tmp_path / "run")
    base = ["--set", *TINY, f"data.root={qm9_root}"]
    assert main(["train", "--output", output, *base]) == 0
    first = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 3
    code = main(["train", "--output", output, "--resume", "--set", "trainer.max_epochs=2"])
    assert code == 0
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 6
    state = next(iter(last["optimizer_states"][0]["state"].values()))
    assert float(state["step"]) == 6.0  # Adam's moments went on from the checkpoint
    assert last["lr_schedulers"][0]["last_epoch"] == 6
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 2 and saved["model"]["hidden_channels"] == 8
    capsys.readouterr()


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory, trained):
    folder = tmp_path_factory.mktemp("bad")
    best = (trained[0] / "checkpoints" / "best.ckpt").read_bytes()
    (folder / "truncated.ckpt").write_bytes(best[: len(best) // 3])
    (folder / "text.ckpt").write_text("hello\n")
    return folder


ERRORS = [
    (["predict", "--smiles", "C1CC"], "could not parse SMILES 'C1CC'"),
    (["predict", "--smiles", "ClCCl"], "'ClCCl': it contains Cl, and the model was trained on H, C, N, O, F"),
    (["predict", "--smiles", "CC", "--file", "{tmp}/missing.xyz"], "missing.xyz': no such file"),
    (["predict", "--smiles", "CC", "--file", "{tmp}/mol.pdb"], "unknown extension '.pdb'"),
    (["eval", "--checkpoint", "{tmp}/missing.ckpt"], "checkpoint '{tmp}/missing.ckpt' does not exist"),
    (["eval", "--checkpoint", "{bad}/truncated.ckpt"], "is corrupt, truncated or not a PyTorch"),
    (["eval", "--checkpoint", "{bad}/text.ckpt"], "is corrupt, truncated or not a PyTorch"),
    (["predict", "--checkpoint", "{bad}/truncated.ckpt", "--smiles", "C"], "is corrupt"),
    (["eval", "--set", "model.hidden_channels=3"], "eval accepts data.KEY=VALUE and trainer.KEY=VALUE"),
    (["eval", "--set", "data.batchsize=3"], "unknown config key 'data.batchsize'; did you mean 'data.batch_size'"),
    (["train", "--set", "model.hidden_chanels=8"], "unknown config key 'model.hidden_chanels'; did you mean 'model.hidden_channels'"),
    (["train", "--set", "model.hidden_channels"], "bad override 'model.hidden_channels': expected KEY=VALUE"),
    (["train", "--set", "model.heads=[2"], "bad override 'model.heads=[2': the value is not valid YAML"),
    (["train", "--config", "qm10"], "config 'qm10' is neither a file nor a shipped config"),
    (["train", "--config", "{tmp}/broken.yaml"], "cannot parse config"),
    (["train", "--set", "model.target=xyz"], "unknown QM9 target 'xyz'"),
    (["train", "--set", "optim.schedule=linear"], "optim.schedule must be one of"),
    (["train", "--output", "{tmp}/empty", "--resume"], "cannot resume: '{tmp}/empty' holds no checkpoint"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_errors_are_messages_with_nonzero_exit(argv, message, trained, corrupt, tmp_path, capsys):
    best = str(trained[0] / "checkpoints" / "best.ckpt")
    (tmp_path / "broken.yaml").write_text("model: [\n")
    (tmp_path / "mol.pdb").write_text("")
    fill = {"tmp": str(tmp_path), "bad": str(corrupt)}
    argv = [part.format(**fill) for part in argv]
    if argv[0] in ("predict", "eval") and "--checkpoint" not in argv:
        argv += ["--checkpoint", best]
    if argv[0] == "train" and "--output" not in argv:
        argv += ["--output", str(tmp_path / "run")]
    code, out, err = _run(argv, capsys)
    assert code == 1
    assert f"flt3d {argv[0]}: error: " in err
    assert message.format(**fill) in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_train_refuses_a_folder_that_holds_a_run(trained, capsys):
    code, _, err = _run(["train", "--output", str(trained[0]), "--set", *TINY], capsys)
    assert code == 1
    assert "already holds a run" in err and "--resume" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", "x.ckpt"])
    assert exit_info.value.code == 2
    assert "at least one --smiles or --file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["eval"])
    assert exit_info.value.code == 2
    assert main([]) == 2


def test_booleans_are_flags():
    with pytest.raises(SystemExit):
        main(["train", "--resume", "true"])


def test_console_entry_point_runs_as_a_process(tmp_path):
    missing = str(tmp_path / "missing.ckpt")
    result = subprocess.run(
        [sys.executable, "-m", "flt3d.cli", "predict", "--checkpoint", missing, "--smiles", "C"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"checkpoint '{missing}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("flt3d ")


def test_default_output_folders(tmp_path, monkeypatch):
    from flt3d.cli import _default_output

    monkeypatch.chdir(tmp_path)
    assert _default_output("qm9", resume=False) == "runs/qm9"
    assert _default_output("qm9", resume=True) == "runs/qm9"
    for name in ("qm9", "qm9-2"):
        (tmp_path / "runs" / name / "checkpoints").mkdir(parents=True)
        (tmp_path / "runs" / name / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert _default_output("qm9", resume=False) == "runs/qm9-3"  # never overwrite a run
    assert _default_output("qm9", resume=True) == "runs/qm9-2"  # the latest run


def test_predict_needs_a_molecular_checkpoint(tmp_path, capsys):
    from flt3d.training.digits import DigitClassification

    module = DigitClassification({"hidden_channels": 8, "num_layers": 1, "heads": 2})
    path = tmp_path / "digits.ckpt"
    torch.save(
        {
            "flt3d": {"task": "digits", "model": module.model.config, "module": {}, "data": {}},
            "state_dict": module.state_dict(),
        },
        path,
    )
    code, _, err = _run(["predict", "--checkpoint", str(path), "--smiles", "C"], capsys)
    assert code == 1
    assert "predict needs a molecular property, energy or point-cloud checkpoint" in err
    assert "'digits'" in err


def test_missing_training_extra_is_a_message(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_lightning(name, *args, **kwargs):
        if name == "flt3d.training" or name.startswith("lightning"):
            raise ModuleNotFoundError("No module named 'lightning'", name="lightning")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lightning)
    for name in [n for n in sys.modules if n == "flt3d.training"]:
        monkeypatch.delitem(sys.modules, name)
    code, _, err = _run(["eval", "--checkpoint", "x.ckpt"], capsys)
    assert code == 1
    assert "needs the optional package 'lightning'" in err and "flt3d[train]" in err


ABSURD = [
    ("model.num_layers=1000000", "config key 'model.num_layers' is 1000000, beyond the allowed range 1 to 1024"),
    ("model.hidden_channels=1000000000", "config key 'model.hidden_channels' is 1000000000, beyond the allowed range 1 to 16384"),
    ("data.batch_size=1000000000", "config key 'data.batch_size' is 1000000000, beyond the allowed range 1 to 65536"),
]  # fmt: skip


@pytest.mark.parametrize("output", ["given", "default"])
@pytest.mark.parametrize(("override", "message"), ABSURD, ids=[o for o, _ in ABSURD])
def test_train_refuses_absurd_sizes_and_writes_nothing(
    override, message, output, tmp_path, monkeypatch, capsys, no_fltnet
):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "run"
    argv = ["train", *(["--output", str(folder)] if output == "given" else [])]
    argv += ["--set", override, f"data.root={tmp_path / 'cache'}"]
    code, out, err = _run(argv, capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [f"flt3d train: error: {message}"]
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no run folder, no cache


def test_train_refuses_a_model_beyond_the_parameter_budget(tmp_path, capsys, no_fltnet):
    folder = tmp_path / "run"
    argv = ["train", "--output", str(folder), "--set", "model.hidden_channels=16384"]
    code, out, err = _run(argv, capsys)
    assert code == 1
    [line] = err.strip().splitlines()
    assert re.fullmatch(
        r"flt3d train: error: the model would hold about \d\.\de\+09 parameters, more than "
        r"the 1e\+09 allowed; reduce model\.hidden_channels=16384",
        line,
    ), line
    assert not folder.exists()


def test_a_reader_that_leaves_early_gives_no_traceback():
    """``flt3d models | head``: stdout closed before the listing is written (EPIPE)."""
    read, write = os.pipe()
    os.close(read)  # the reader has left before the first write
    proc = subprocess.run(
        [sys.executable, "-m", "flt3d.cli", "models"],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(write)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr


@pytest.mark.parametrize("module", ["flt3d", "flt3d.cli"])
def test_the_command_runs_as_a_module(module):
    listing = subprocess.run(
        [sys.executable, "-m", module, "models"], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    assert "qm9-gap" in listing.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", module, "fly"], capture_output=True, text=True, timeout=120
    )
    assert wrong.returncode != 0 and "fly" in wrong.stderr and "Traceback" not in wrong.stderr
