"""Where QM9 is read from: the qm9pack package's CSV files, or the sample shipped with flt3d.

Also what those files hold: :data:`QM9_SIZE` and :data:`QM9_SAMPLE_SIZE` molecules over the
elements :data:`QM9_ELEMENTS`. :func:`qm9pack_files` finds qm9pack's files without importing it.
"""

from __future__ import annotations

import importlib.util
import os.path as osp

from .._optional import MOLECULES_EXTRA

__all__ = [
    "QM9_ELEMENTS",
    "QM9_SAMPLE_PATH",
    "QM9_SAMPLE_SIZE",
    "QM9_SIZE",
    "QM9_Z",
    "qm9pack_files",
]

QM9_SIZE = 130_831
"""Number of molecules in the full set."""

QM9_SAMPLE_SIZE = 4_000
"""Number of molecules in the sample shipped with flt3d."""

QM9_SAMPLE_PATH = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), "data", "qm9_sample.csv.gz"
)
"""The shipped sample; see ``datasets/qm9_sample.md``."""

QM9_ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F")
"""Element vocabulary of QM9."""

QM9_Z: tuple[int, ...] = (1, 6, 7, 8, 9)
"""Atomic numbers of :data:`QM9_ELEMENTS`."""

_QM9PACK_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")


def qm9pack_files() -> list[str]:
    """Paths of the three QM9 CSV files inside the installed ``qm9pack`` package.

    The package is located with ``importlib.util.find_spec`` and never imported (its modules
    import ``pkg_resources``, which recent environments lack).

    Returns:
        Paths of ``qm9_part1.csv``, ``qm9_part2.csv`` and ``qm9_part3.csv``.

    Raises:
        ImportError: naming the ``molecules`` extra if ``qm9pack`` is not installed.
        FileNotFoundError: if ``qm9pack`` is installed without its data files.
    """
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the full QM9 dataset is read from the package 'qm9pack', which is not installed; "
            f"install it with {MOLECULES_EXTRA} (or use QM9(root, sample=True))"
        )
    folder = osp.join(next(iter(spec.submodule_search_locations)), "data")
    paths = [osp.join(folder, name) for name in _QM9PACK_PARTS]
    missing = [path for path in paths if not osp.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"qm9pack is installed but lacks its data files {missing}; reinstall it with "
            "pip install --force-reinstall qm9pack"
        )
    return paths
