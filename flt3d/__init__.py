"""flt3d: FourierLearner-Transformers for 3D molecules, point clouds, sequences and images."""

__version__ = "0.1.0"

__all__ = ["__version__"]
