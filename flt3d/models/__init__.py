"""Ready models: molecular properties (FLTNet), a character language model, an image classifier,
a point-cloud classifier."""

from flt3d.models.fltnet import FLTNet, fit_statistics
from flt3d.models.image import ImageClassifier
from flt3d.models.pointcloud import PointCloudClassifier
from flt3d.models.sequence import SequenceModel

__all__ = [
    "FLTNet",
    "ImageClassifier",
    "PointCloudClassifier",
    "SequenceModel",
    "fit_statistics",
]
