r"""Write the QM9 sample that ships with flt3d: ``flt3d/datasets/data/qm9_sample.csv.gz``.

Draws ``--count`` molecules uniformly at random, without replacement, from the 130,831 molecules
of the full QM9 set as the PyPI package ``qm9pack`` distributes it, with NumPy's default
generator seeded by ``--seed``, and keeps them in QM9 ``Index`` order. Only the columns that
:func:`flt3d.datasets.read_qm9_csv` needs are written, with their values unchanged (targets in
the original units), so the same parser reads the sample and the full set. The gzip stream is
written with a zero timestamp, so rerunning the script reproduces the file byte for byte.

Usage (from the repository root, with ``pip install 'flt3d[molecules]'``)::

    python datasets/make_qm9_sample.py
    python datasets/make_qm9_sample.py --count 4000 --seed 0 \
        --out flt3d/datasets/data/qm9_sample.csv.gz
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np

from flt3d.datasets.qm9 import (
    QM9_COLUMNS,
    QM9_SAMPLE_PATH,
    QM9_SAMPLE_SIZE,
    QM9_SIZE,
    qm9pack_files,
    read_qm9_csv,
    read_qm9_frame,
)


def main(argv: list[str] | None = None) -> None:
    """Draw the sample and write it.

    Args:
        argv: command-line arguments; default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=QM9_SAMPLE_SIZE, help="molecules to draw")
    parser.add_argument("--seed", type=int, default=0, help="seed of numpy.random.default_rng")
    parser.add_argument("--out", type=Path, default=Path(QM9_SAMPLE_PATH), help="output file")
    args = parser.parse_args(argv)

    frame = read_qm9_frame(qm9pack_files())
    if len(frame) != QM9_SIZE:
        raise SystemExit(f"expected {QM9_SIZE} molecules in qm9pack, found {len(frame)}")
    if not 0 < args.count <= len(frame):
        raise SystemExit(f"--count must be in [1, {len(frame)}], got {args.count}")

    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(len(frame), size=args.count, replace=False))
    sample = frame.iloc[rows][list(QM9_COLUMNS)]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    sample.to_csv(
        args.out,
        index=False,
        compression={"method": "gzip", "compresslevel": 9, "mtime": 0},
    )
    check = read_qm9_csv(args.out)
    if len(check) != args.count:
        raise SystemExit(f"wrote {args.out} but read back {len(check)} molecules")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(
        f"wrote {args.count} molecules (seed {args.seed}) to {args.out}: "
        f"{os.path.getsize(args.out)} bytes, sha256 {digest}"
    )


if __name__ == "__main__":
    main()
