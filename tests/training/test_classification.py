import pytest
import torch

from flt3d.training.classification import ClassificationModule
from flt3d.training.digits import DigitClassification
from flt3d.training.pointcloud import PointCloudClassification

TINY = {"hidden_channels": 8, "num_layers": 1, "heads": 2, "num_features": 8, "num_frequencies": 4}


@pytest.mark.parametrize("cls", [DigitClassification, PointCloudClassification])
def test_classification_modules_share_options_and_hyperparameters(cls):
    assert issubclass(cls, ClassificationModule)
    assert (cls.monitor, cls.monitor_mode) == ("val/acc", "max")
    model = {**TINY, "num_classes": 3} if cls is PointCloudClassification else TINY
    module = cls(model, label_smoothing=0.1, optim={"lr": 1e-3})
    assert module.module_options() == {"label_smoothing": 0.1}
    assert dict(module.hparams) == {"model": model, "label_smoothing": 0.1, "optim": {"lr": 1e-3}}
    with pytest.raises(ValueError, match=r"module.label_smoothing must be in \[0, 1\)"):
        cls(model, label_smoothing=1.0)


def test_classification_loss_is_cross_entropy_and_accuracy():
    module = DigitClassification(TINY, label_smoothing=0.0)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    loss, name, acc, size = module.classification_loss(logits, labels)
    assert name == "acc" and size == 3
    assert acc.item() == pytest.approx(2 / 3)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    assert module.report({"acc": 0.5}, "test") == ["test accuracy: 50.00 %"]
