import os

import pytest
import torch

from flt3d.training.checkpoint import AtomicCheckpointIO, CheckpointError, read_checkpoint


def _flt3d_checkpoint():
    return {
        "flt3d": {"task": "qm9", "model": {}, "module": {}, "data": {}},
        "state_dict": {"w": torch.ones(2)},
    }


def test_atomic_save_writes_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_flt3d_checkpoint(), str(path))
    assert read_checkpoint(path)["state_dict"]["w"].tolist() == [1.0, 1.0]
    assert os.listdir(path.parent) == ["last.ckpt"]


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_flt3d_checkpoint(), str(path))
    before = path.read_bytes()

    def broken_save(obj, file, *args, **kwargs):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"other": 1}, str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_read_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="is not a file"):
        read_checkpoint(tmp_path)
    good = tmp_path / "good.ckpt"
    torch.save(_flt3d_checkpoint(), good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        read_checkpoint(truncated)
    text = tmp_path / "text.ckpt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        read_checkpoint(text)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not written by a flt3d training run"):
        read_checkpoint(foreign)
    no_weights = tmp_path / "no_weights.ckpt"
    torch.save({"flt3d": _flt3d_checkpoint()["flt3d"]}, no_weights)
    with pytest.raises(CheckpointError, match="no model weights"):
        read_checkpoint(no_weights)


def test_read_checkpoint_refuses_pickled_code(tmp_path):
    # weights_only loading: a checkpoint that would run code on load is rejected, not run
    path = tmp_path / "evil.ckpt"
    torch.save({"flt3d": _flt3d_checkpoint()["flt3d"], "state_dict": {}, "x": os.getcwd}, path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(path)
