import inspect

import pytest

from flt3d.training.atoms import AtomsDataModule
from flt3d.training.digits import DigitsDataModule
from flt3d.training.molecules import QM9DataModule
from flt3d.training.pointcloud import PointCloudDataModule
from flt3d.training.text import PydocDataModule

DATAMODULES = [
    AtomsDataModule,
    DigitsDataModule,
    QM9DataModule,
    PointCloudDataModule,
    PydocDataModule,
]


@pytest.mark.parametrize("cls", DATAMODULES)
def test_settings_name_every_constructor_argument_in_order(cls):
    assert cls.setting_names == tuple(inspect.signature(cls).parameters)


@pytest.mark.parametrize(
    ("cls", "factor"), [(QM9DataModule, 4), (AtomsDataModule, 4), (PointCloudDataModule, 2)]
)
def test_loader_options_are_checked_and_default(cls, factor):
    module = cls(batch_size=3)
    assert (module.batch_size, module.eval_batch_size, module.num_workers) == (3, 3 * factor, 0)
    assert cls(batch_size=3, eval_batch_size=5).eval_batch_size == 5
    with pytest.raises(ValueError, match="data.batch_size must be a positive integer"):
        cls(batch_size=0)
    with pytest.raises(ValueError, match="data.num_workers must be a non-negative integer"):
        cls(num_workers=-1)
    with pytest.raises(ValueError, match="data.eval_batch_size"):
        cls(eval_batch_size=1.5)
