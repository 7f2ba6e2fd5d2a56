import pytest

import flt3d.training
from flt3d.training import evaluation, run
from flt3d.training.config import ConfigError


def test_evaluation_keeps_its_import_paths():
    for name in ("Evaluation", "evaluate", "load_module"):
        assert getattr(run, name) is getattr(evaluation, name)
        assert getattr(flt3d.training, name) is getattr(evaluation, name)


def test_evaluate_checks_the_split_before_reading(tmp_path):
    with pytest.raises(ConfigError, match="split must be 'train', 'val', 'test' or 'all'"):
        evaluation.evaluate(tmp_path / "missing.ckpt", "dev")
