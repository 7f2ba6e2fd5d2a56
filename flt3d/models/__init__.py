"""Ready models: molecular properties (FLTNet), a character language model, an image classifier."""

from flt3d.models.fltnet import FLTNet, fit_statistics, head_for_target
from flt3d.models.image import ImageClassifier
from flt3d.models.sequence import SequenceModel

__all__ = [
    "FLTNet",
    "ImageClassifier",
    "SequenceModel",
    "fit_statistics",
    "head_for_target",
]
