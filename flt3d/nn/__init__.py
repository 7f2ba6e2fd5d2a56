"""Random features, spectral densities, the attention functions and the FLT layers."""

from flt3d.nn.attention import exact_attention, linear_attention
from flt3d.nn.densities import (
    SPECTRA,
    CoulombKernel,
    GaussianKernel,
    GaussianMixture,
    IsotropicMixture,
    LaplaceKernel,
    LocalRPE,
    MLPSpectrum,
    RadialBasis,
    RadialMixture,
    make_spectrum,
)
from flt3d.nn.flt_attention import FLTAttention
from flt3d.nn.flt_block import FLTBlock
from flt3d.nn.flt_conv import FLTConv
from flt3d.nn.latent_charges import LatentCharges
from flt3d.nn.neighbors import Neighbors, cosine_cutoff, neighbor_list
from flt3d.nn.pairs import differentiable_pair_sums, pair_sum
from flt3d.nn.patches import PatchEmbedding
from flt3d.nn.random_features import orthogonal_gaussian, positive_features
from flt3d.nn.samplers import FrequencySampler
from flt3d.nn.spectral_filter import SpectralFilter
from flt3d.nn.spectrum import Spectrum, spectral_features, spectral_rpe
from flt3d.nn.switches import set_attention, set_redraw

__all__ = [
    "FLTAttention",
    "FLTConv",
    "FLTBlock",
    "set_attention",
    "set_redraw",
    "Neighbors",
    "neighbor_list",
    "cosine_cutoff",
    "pair_sum",
    "differentiable_pair_sums",
    "FrequencySampler",
    "SpectralFilter",
    "LatentCharges",
    "PatchEmbedding",
    "Spectrum",
    "GaussianMixture",
    "IsotropicMixture",
    "GaussianKernel",
    "LaplaceKernel",
    "LocalRPE",
    "MLPSpectrum",
    "RadialBasis",
    "RadialMixture",
    "CoulombKernel",
    "SPECTRA",
    "make_spectrum",
    "spectral_features",
    "spectral_rpe",
    "orthogonal_gaussian",
    "positive_features",
    "linear_attention",
    "exact_attention",
]
