r"""Point clouds from mesh and point files, and a ModelNet-style folder of labelled shapes.

:func:`read_point_cloud` reads one OFF, PLY, OBJ or STL file with ``trimesh`` and returns a
``Data`` with

==========  ===================  ==============================================================
``pos``     ``float32 [P, 3]``   points, in the file's units (or in the unit sphere, see
                                 ``normalize``)
``normal``  ``float32 [P, 3]``   unit normals, where known (always for meshes)
``y``       ``long [1]``         the class label, when one is given
==========  ===================  ==============================================================

A mesh (a file with faces) gives ``P = num_points`` points drawn uniformly on its surface: a
face is chosen with probability proportional to its area, then a point uniformly inside it
(``trimesh.sample.sample_surface``). Each point's normal is the unit normal of its face, with
the sign the face's winding gives (outward on a consistently wound closed mesh). A file without
faces (a PLY point cloud, an OBJ of ``v`` lines, an OFF with no faces) gives its vertices: a
random subset of ``num_points`` of them in file order if it has more, all of them followed by
randomly repeated ones if it has fewer. Such a file has normals only when it is a PLY with
``nx, ny, nz`` vertex properties. Both ways draw from a ``numpy`` generator made from ``seed``
(no global random state), so the same file and seed give the same points.

:class:`ModelNetFolder` reads a folder in the layout of ModelNet10/40,
``root/<class>/{train,test}/<name>.off``, into a cached ``InMemoryDataset`` of point clouds
centred and scaled to the unit sphere, and :func:`shape_augmentation` is the usual training
augmentation for it. :data:`SHAPES_SAMPLE_PATH` is a small synthetic set of ten classes of
shapes shipped with flt3d (see ``datasets/shapes.md``); :func:`shapes_sample_root` unpacks it
into such a folder.

Nothing is dropped silently: a missing file, an unknown extension, a file that cannot be parsed
or is truncated, an empty mesh, faces of zero total area, NaN or infinite coordinates and faces
that point past the vertices raise ``ValueError`` naming the file. A truncated OFF or PLY file
is recognised by its header's counts; OBJ has no counts, so an OBJ cut between two lines reads
as a smaller mesh.

``trimesh`` comes with ``pip install 'flt3d[pointclouds]'`` and is imported only when a file is
read; it needs nothing but NumPy for these four formats.

The package holds one part per module: :mod:`~flt3d.datasets.pointclouds.checks` (argument
checks, the trimesh import), :mod:`~flt3d.datasets.pointclouds.mesh_file` (parsing and checking
one file), :mod:`~flt3d.datasets.pointclouds.reader` (:func:`read_point_cloud`, the sampling),
:mod:`~flt3d.datasets.pointclouds.folder` (the :class:`ModelNetFolder` dataset),
:mod:`~flt3d.datasets.pointclouds.augmentation` (:func:`shape_augmentation`) and
:mod:`~flt3d.datasets.pointclouds.shapes_sample` (the shipped sample); every public name is
re-exported here.
"""

from .augmentation import shape_augmentation
from .folder import ModelNetFolder
from .mesh_file import MESH_EXTENSIONS
from .reader import read_point_cloud
from .shapes_sample import SHAPES_SAMPLE_PATH, shapes_sample_root

__all__ = [
    "MESH_EXTENSIONS",
    "SHAPES_SAMPLE_PATH",
    "ModelNetFolder",
    "read_point_cloud",
    "shape_augmentation",
    "shapes_sample_root",
]
