"""The synthetic shapes sample shipped with flt3d: :data:`SHAPES_SAMPLE_PATH` and its unpacking.

:func:`shapes_sample_root` unpacks the archive once, atomically, into a ModelNet-layout folder.
"""

from __future__ import annotations

import hashlib
import os
import os.path as osp
import shutil
import tarfile
import tempfile

from ..cache import default_data_root

SHAPES_SAMPLE_PATH = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), "data", "shapes_sample.tar.gz"
)
"""Ten classes of synthetic, randomly deformed shapes (40 training and 10 test meshes each) as
OFF files in the ModelNet layout, shipped with flt3d as one archive; see ``datasets/shapes.md``
and :func:`shapes_sample_root`."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shapes_sample_root(root: str | os.PathLike | None = None) -> str:
    """The folder of the shipped shapes sample, unpacked from :data:`SHAPES_SAMPLE_PATH` once.

    The archive is unpacked into ``root/shapes_sample-<hash>/shapes``, with ``<hash>`` the
    first 12 hex digits of the archive's sha256, so an updated archive is unpacked afresh. It
    is unpacked into a temporary folder next to it and renamed, so a folder that exists is
    complete; two processes racing keep the first one's.

    Args:
        root: where to unpack. Default: ``$FLT3D_DATA``, or ``~/.cache/flt3d`` without
            ``FLT3D_DATA``.

    Returns:
        The path of a folder in the ModelNet layout (ten classes, 40 ``train`` and 10 ``test``
        OFF files each), ready for :class:`ModelNetFolder`.
    """
    parent = default_data_root() if root is None else os.fspath(root)
    parent = osp.abspath(osp.expanduser(parent))
    target = osp.join(parent, f"shapes_sample-{_sha256(SHAPES_SAMPLE_PATH)[:12]}")
    folder = osp.join(target, "shapes")
    if osp.isdir(folder):
        return folder
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=".shapes_sample-", dir=parent)
    os.chmod(temporary, 0o755)  # mkdtemp makes it private; the unpacked sample is not
    try:
        with tarfile.open(SHAPES_SAMPLE_PATH, "r:gz") as archive:
            # The "data" filter (Python >= 3.10.12) refuses links and paths out of the folder.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(temporary, **safe)
        try:
            os.rename(temporary, target)
        except OSError:
            if not osp.isdir(folder):
                raise
    finally:
        if osp.isdir(temporary):
            shutil.rmtree(temporary)
    return folder
