r"""The QM9 dataset class: a PyTorch Geometric ``InMemoryDataset`` read offline, cached once.

:class:`QM9` reads the full set from qm9pack or the shipped sample (``sample=True``) and caches
the processed molecules under ``root/processed``.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Callable

from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from .csv_file import read_qm9_csv
from .source import (
    _QM9PACK_PARTS,
    QM9_SAMPLE_PATH,
    QM9_SAMPLE_SIZE,
    QM9_SIZE,
    qm9pack_files,
)
from .split import standard_split

__all__ = ["QM9"]


class QM9(InMemoryDataset):
    r"""QM9 as a PyTorch Geometric ``InMemoryDataset``, read offline.

    The full set (130,831 molecules) is read from the CSV files of the PyPI package
    ``qm9pack``; ``sample=True`` reads the 4,000-molecule sample shipped with flt3d instead
    and needs neither ``qm9pack`` nor a network. Processing happens once and is cached in
    ``root/processed`` (``qm9.pt`` or ``qm9_sample.pt``); later constructions load the cache,
    which no longer needs ``qm9pack``.

    Each molecule is a ``Data`` with ``z`` (``long [n]``), ``pos`` (``float32 [n, 3]``, Å),
    ``y`` (``float32 [1, 12]``, see :data:`TARGETS` and :data:`UNITS`), ``smiles``, ``idx``
    (``long [1]``, the QM9 ``Index``, 1-based as in the original files) and ``num_nodes``.
    Molecules are in ``Index`` order.

    Args:
        root: folder for the processed cache.
        sample: read the shipped sample instead of the full set. Default ``False``.
        transform: applied to each ``Data`` on access. Default ``None``.
        pre_transform: applied to each ``Data`` once, before caching. Default ``None``.
        pre_filter: keeps the ``Data`` for which it returns ``True``, before caching.
            Default ``None``.
        force_reload: process again even if a cache exists. Default ``False``.
        log: print progress while processing. Default ``True``.

    Raises:
        ImportError: naming the ``molecules`` extra if the full set is requested and
            ``qm9pack`` or pandas is missing.

    Example:
        >>> import tempfile
        >>> dataset = QM9(tempfile.mkdtemp(), sample=True, log=False)
        >>> len(dataset), dataset[0].y.shape
        (4000, torch.Size([1, 12]))
    """

    def __init__(
        self,
        root: str,
        *,
        sample: bool = False,
        transform: Callable[[Data], Data] | None = None,
        pre_transform: Callable[[Data], Data] | None = None,
        pre_filter: Callable[[Data], bool] | None = None,
        force_reload: bool = False,
        log: bool = True,
    ) -> None:
        if not isinstance(sample, bool):
            raise ValueError(f"sample must be True or False, got {sample!r}")
        self.sample = sample
        super().__init__(
            root, transform, pre_transform, pre_filter, log=log, force_reload=force_reload
        )
        self.load(self.processed_paths[0])

    @property
    def raw_dir(self) -> str:
        if self.sample:
            return osp.dirname(QM9_SAMPLE_PATH)
        return osp.dirname(qm9pack_files()[0])

    @property
    def raw_file_names(self) -> list[str]:
        if self.sample:
            return [osp.basename(QM9_SAMPLE_PATH)]
        return list(_QM9PACK_PARTS)

    @property
    def processed_file_names(self) -> str:
        return "qm9_sample.pt" if self.sample else "qm9.pt"

    def process(self) -> None:
        data_list = read_qm9_csv(self.raw_paths)
        expected = QM9_SAMPLE_SIZE if self.sample else QM9_SIZE
        if len(data_list) != expected:
            raise ValueError(
                f"expected {expected} molecules in {self.raw_paths}, found {len(data_list)}; "
                "the files are incomplete or of another version"
            )
        if self.pre_filter is not None:
            data_list = [data for data in data_list if self.pre_filter(data)]
        if self.pre_transform is not None:
            data_list = [self.pre_transform(data) for data in data_list]
        self.save(data_list, self.processed_paths[0])

    def standard_split(self, *, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """The standard split of this dataset; see :func:`standard_split`.

        Args:
            seed: seed of the permutation. Default ``0``.

        Returns:
            ``(train_idx, val_idx, test_idx)``, positions in this dataset.
        """
        return standard_split(len(self), seed=seed)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, sample={self.sample})"
