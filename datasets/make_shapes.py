r"""Write ten classes of randomly deformed 3D shapes as OFF meshes in the ModelNet layout.

Classes (sorted, so that the class index of :class:`flt3d.datasets.ModelNetFolder` is the
position here), each a ``trimesh`` primitive with random proportions (uniform in the ranges
given, lengths in arbitrary units):

=============  ==============================================================================
annulus        ``creation.annulus``, outer radius 1, inner radius 0.3-0.8, height 0.1-1.0, 16
               sections: a ring with flat ends, from a washer to a thick tube
box            ``creation.box``, edges 0.3-1.5
capsule        ``creation.capsule``, radius 0.2-0.5, length of the straight part 0.3-1.5
cone           ``creation.cone``, base radius 0.3-1.0, height 0.3-1.8, 16 sections
cylinder       ``creation.cylinder``, radius 0.3-1.0, height 0.1-2.0, 16 sections: from a disc
               to a rod
ellipsoid      ``creation.icosphere(2)`` with semi-axes 0.3-1.0 (spheres are ellipsoids whose
               axes happen to be close)
octahedron     six vertices at the ends of three perpendicular half-axes 0.4-1.0, eight faces
pyramid        ``creation.cone`` with 4 sections: a square base, half-diagonal 0.5-1.0, height
               0.3-1.6
tetrahedron    ``creation.cone`` with 3 sections: a triangular base, radius 0.5-1.0, height
               0.3-1.6
torus          ``creation.torus``, major radius 1, minor radius 0.15-0.5, 16 x 8 sections
=============  ==============================================================================

The pairs a classifier must tell apart are near each other by construction: a short cylinder,
a washer-like annulus and a thin torus; a capsule and an elongated ellipsoid; a cone, a pyramid
and a tetrahedron; a box and an octahedron after shearing. Then every mesh is

1. subdivided (each triangle into four, ``Trimesh.subdivide``) until it has at least 60
   vertices, so that flat faces can bend under the noise of step 4;
2. rotated by a uniformly random rotation;
3. stretched along the three coordinate axes by factors drawn log-uniformly from
   [1/1.4, 1.4], which shears it in its own frame (a box becomes a parallelepiped);
4. perturbed by Gaussian noise on every vertex, of standard deviation drawn uniformly from 0
   to 2 % of the mesh's radius (largest distance of a vertex from the vertex mean);
5. rotated again by a uniformly random rotation and centred on its vertex mean,

and written with 4 decimals as ``<output>/<class>/<split>/<class>_<number>.off``, numbered
from 0001 through the training then the test shapes as in ModelNet. The shape
``(class k, split s, i-th)`` draws from ``numpy.random.default_rng([seed, k, s, i])`` (s = 0
for train, 1 for test), so asking for more shapes adds files and leaves the others as they
were, and a rerun with the same seed, NumPy and trimesh writes the same bytes. An output
ending in ``.tar.gz`` is written as a gzipped tar of one folder ``shapes/`` with sorted members
and zeroed times and owners, also byte for byte reproducible.

Usage (from the repository root, with ``pip install 'flt3d[pointclouds]'``)::

    python datasets/make_shapes.py                  # the shipped sample
    python datasets/make_shapes.py --train 400 --test 100 --seed 1 --output shapes_400
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    import trimesh
except ImportError:  # pragma: no cover - depends on the environment
    raise SystemExit("make_shapes.py needs trimesh: pip install 'flt3d[pointclouds]'") from None

from flt3d.datasets.pointclouds import SHAPES_SAMPLE_PATH

MIN_VERTICES = 60
STRETCH = 1.4
MAX_NOISE = 0.02
DIGITS = 4


def _annulus(rng: np.random.Generator) -> trimesh.Trimesh:
    return trimesh.creation.annulus(
        r_min=rng.uniform(0.3, 0.8), r_max=1.0, height=rng.uniform(0.1, 1.0), sections=16
    )


def _box(rng: np.random.Generator) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=rng.uniform(0.3, 1.5, size=3))


def _capsule(rng: np.random.Generator) -> trimesh.Trimesh:
    return trimesh.creation.capsule(
        height=rng.uniform(0.3, 1.5), radius=rng.uniform(0.2, 0.5), count=[8, 8]
    )


def _cone(rng: np.random.Generator) -> trimesh.Trimesh:
    return trimesh.creation.cone(
        radius=rng.uniform(0.3, 1.0), height=rng.uniform(0.3, 1.8), sections=16
    )


def _cylinder(rng: np.random.Generator) -> trimesh.Trimesh:
    return trimesh.creation.cylinder(
        radius=rng.uniform(0.3, 1.0), height=rng.uniform(0.1, 2.0), sections=16
    )


def _ellipsoid(rng: np.random.Generator) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    mesh.apply_scale(rng.uniform(0.3, 1.0, size=3))
    return mesh


def _octahedron(rng: np.random.Generator) -> trimesh.Trimesh:
    a, b, c = rng.uniform(0.4, 1.0, size=3)
    vertices = [[a, 0, 0], [-a, 0, 0], [0, b, 0], [0, -b, 0], [0, 0, c], [0, 0, -c]]
    faces = [
        [0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
        [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5],
    ]  # fmt: skip
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def _pyramid(rng: np.random.Generator) -> trimesh.Trimesh:
    return trimesh.creation.cone(
        radius=rng.uniform(0.5, 1.0), height=rng.uniform(0.3, 1.6), sections=4
    )


def _tetrahedron(rng: np.random.Generator) -> trimesh.Trimesh:
    return trimesh.creation.cone(
        radius=rng.uniform(0.5, 1.0), height=rng.uniform(0.3, 1.6), sections=3
    )


def _torus(rng: np.random.Generator) -> trimesh.Trimesh:
    return trimesh.creation.torus(
        major_radius=1.0,
        minor_radius=rng.uniform(0.15, 0.5),
        major_sections=16,
        minor_sections=8,
    )


SHAPES: dict[str, Callable[[np.random.Generator], trimesh.Trimesh]] = {
    "annulus": _annulus,
    "box": _box,
    "capsule": _capsule,
    "cone": _cone,
    "cylinder": _cylinder,
    "ellipsoid": _ellipsoid,
    "octahedron": _octahedron,
    "pyramid": _pyramid,
    "tetrahedron": _tetrahedron,
    "torus": _torus,
}
"""The builders of the canonical shapes, by class name, in sorted order."""


def _rotation(rng: np.random.Generator) -> np.ndarray:
    return trimesh.transformations.random_rotation_matrix(rand=rng.random(3))


def make_shape(name: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One randomly proportioned and deformed shape of class ``name`` (steps 1-5 above)."""
    mesh = SHAPES[name](rng)
    while len(mesh.vertices) < MIN_VERTICES:
        mesh = mesh.subdivide()
    mesh.apply_transform(_rotation(rng))
    stretch = np.exp(rng.uniform(-np.log(STRETCH), np.log(STRETCH), size=3))
    vertices = np.asarray(mesh.vertices) * stretch
    vertices = vertices - vertices.mean(axis=0)
    radius = np.linalg.norm(vertices, axis=1).max()
    vertices = vertices + rng.normal(0.0, rng.uniform(0.0, MAX_NOISE) * radius, vertices.shape)
    vertices = vertices @ _rotation(rng)[:3, :3].T
    vertices = vertices - vertices.mean(axis=0)
    return trimesh.Trimesh(vertices=vertices, faces=mesh.faces, process=False)


def generate(folder: Path, *, train: int, test: int, seed: int) -> list[Path]:
    """Write the shapes into ``folder`` (which must not exist) in the ModelNet layout.

    Args:
        folder: the dataset folder to create.
        train: training shapes per class.
        test: test shapes per class.
        seed: seed of every draw.

    Returns:
        The written files, relative to ``folder``, sorted.
    """
    written = []
    for label, name in enumerate(SHAPES):
        number = 0
        for part, (split, count) in enumerate((("train", train), ("test", test))):
            (folder / name / split).mkdir(parents=True)
            for i in range(count):
                number += 1
                mesh = make_shape(name, np.random.default_rng([seed, label, part, i]))
                relative = Path(name, split, f"{name}_{number:04d}.off")
                text = trimesh.exchange.off.export_off(mesh, digits=DIGITS)
                (folder / relative).write_bytes(text.encode("ascii"))
                written.append(relative)
    return sorted(written)


def write_archive(folder: Path, files: list[Path], archive: Path, *, name: str = "shapes") -> None:
    """A reproducible ``.tar.gz`` of ``files`` under one top folder ``name``.

    Members are sorted, folders included, with zero times, owner 0 and modes 755 / 644; the
    gzip header has no name and a zero time.
    """
    folders = sorted({parent for file in files for parent in file.parents if parent != Path(".")})
    entries = [(Path(name), None)] + [(Path(name, f), None) for f in folders]
    entries += [(Path(name, f), folder / f) for f in files]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, source in sorted(entries):
            info = tarfile.TarInfo(member.as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if source is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = source.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    with open(archive, "wb") as file, gzip.GzipFile("", "wb", 9, file, mtime=0) as zipped:
        zipped.write(buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    """Generate the shapes and write them as a folder or a ``.tar.gz``.

    Args:
        argv: command-line arguments; default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(SHAPES_SAMPLE_PATH),
        help="folder to create, or a .tar.gz archive (default: the shipped sample)",
    )
    parser.add_argument("--train", type=int, default=40, help="training shapes per class")
    parser.add_argument("--test", type=int, default=10, help="test shapes per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw")
    args = parser.parse_args(argv)
    if args.train < 1 or args.test < 1:
        raise SystemExit(f"--train and --test must be positive, got {args.train}, {args.test}")
    if args.seed < 0:
        raise SystemExit(f"--seed must be non-negative, got {args.seed}")
    archive = args.output.name.endswith(".tar.gz")
    if not archive and args.output.exists():
        raise SystemExit(f"{args.output} exists; remove it or name another --output")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output.parent, prefix=".make_shapes-") as work:
        folder = Path(work, "shapes")
        files = generate(folder, train=args.train, test=args.test, seed=args.seed)
        if archive:
            partial = Path(work, "shapes.tar.gz")
            write_archive(folder, files, partial)
            os.replace(partial, args.output)
        else:
            shutil.move(folder, args.output)
    size = (
        args.output.stat().st_size
        if archive
        else sum((args.output / file).stat().st_size for file in files)
    )
    print(
        f"wrote {len(files)} shapes ({len(SHAPES)} classes x {args.train} train + {args.test} "
        f"test) to {args.output}: {size:,} bytes"
    )
    if archive:
        digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
        print(f"sha256 {digest}")


if __name__ == "__main__":
    main()
