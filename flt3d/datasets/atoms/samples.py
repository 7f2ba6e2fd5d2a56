"""The atomistic samples shipped with flt3d: paths of their extxyz files.

Copper clusters with EMT (:data:`EMT_COPPER_SAMPLE_PATH`), ions in water droplets
(:data:`ION_WATER_SAMPLE_PATH`) and net-charged salt clusters (:data:`SALT_CLUSTERS_SAMPLE_PATH`).
"""

from __future__ import annotations

import os.path as osp

EMT_COPPER_SAMPLE_PATH = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), "data", "emt_copper_sample.extxyz"
)
"""Copper clusters from Langevin MD with ASE's EMT potential, shipped with flt3d; see
``datasets/emt_copper.md``."""

ION_WATER_SAMPLE_PATH = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), "data", "ion_water_sample.extxyz"
)
"""Water droplets with Na+ and Cl- ions from Langevin MD, labelled with OpenMM (Amber14, TIP3P,
exact Coulomb), shipped with flt3d; see ``datasets/ion_water.md``."""

SALT_CLUSTERS_SAMPLE_PATH = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), "data", "salt_clusters_sample.extxyz"
)
"""Isolated, net-charged Na+/Cl- clusters (no water, unscreened Coulomb) from Langevin MD,
labelled with OpenMM (Joung-Cheatham ions, exact Coulomb), shipped with flt3d; see
``datasets/salt_clusters.md``."""
