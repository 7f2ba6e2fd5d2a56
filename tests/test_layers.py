"""The package's layers: every module imports only from its own layer or the layers below.

Each module under ``flt3d/`` is parsed with :mod:`ast` (nothing is imported), every
``flt3d.*`` import in it is collected (absolute and relative, at module level or inside
functions, classes and ``if TYPE_CHECKING:`` blocks) and compared with the layer map below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flt3d"

#: bottom to top; a module may import from its own layer and the layers below it
LAYERS: dict[str, int] = {
    # layers and their parts: random features, spectra, attention, FLT layers, patches; the
    # invariance checks in ``testing`` import nothing of flt3d, so they sit at the bottom too
    "flt3d.nn": 0,
    "flt3d.testing": 0,
    # elements, units, masses, statistics, atomistic heads
    "flt3d.atomistic": 1,
    # data only: QM9, molecule and mesh files, your own structures, grid coordinates, text
    "flt3d.datasets": 2,
    # ready models, and the figures of what layers and models learned (which read nn only;
    # the training layer draws them through its RPEFigures callback)
    "flt3d.models": 3,
    "flt3d.plot": 3,
    # Lightning modules, configs, checkpoints, runs
    "flt3d.training": 4,
    # uses of trained models: the ASE calculator loads runs, ``pretrained.export`` reads them
    "flt3d.calculators": 5,
    "flt3d.pretrained": 5,
    # front end: the command line (it loads pretrained models), also as ``python -m flt3d``
    "flt3d.cli": 6,
    "flt3d.__main__": 6,
}

#: upward imports that stay for now, as (importing module, imported module): each with its reason
ALLOWED: dict[tuple[str, str], str] = {}

#: the one vocabulary of option names inside ``flt3d.nn``
MODES = "flt3d.nn.modes"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """``(module, names, line)`` of every ``flt3d`` import in a file, relative ones resolved.

    ``from flt3d import pretrained`` counts as an import of ``flt3d.pretrained`` (a submodule);
    ``from flt3d import __version__`` as one of the root package.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = tuple(alias.name for alias in node.names)
            found.append((module, names, node.lineno))
            found += [
                (f"{module}.{n}", (), node.lineno) for n in names if f"{module}.{n}" in MODULES
            ]
    return [item for item in found if item[0] == "flt3d" or item[0].startswith("flt3d.")]


def _layer(module: str) -> int | None:
    """Layer of a module: that of its longest prefix in :data:`LAYERS`."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = LAYERS.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def _upward_imports() -> list[tuple[str, str, int]]:
    upward = []
    for name, path in MODULES.items():
        if name == "flt3d":
            continue
        own = _layer(name)
        for module, _, line in _imports(name, path):
            if module == "flt3d":  # the root package holds only ``__version__``
                continue
            other = _layer(module)
            if other is not None and other > own:
                upward.append((name, module, line))
    return upward


def test_every_module_has_a_layer():
    missing = [name for name in MODULES if name != "flt3d" and _layer(name) is None]
    assert not missing, f"place these modules in LAYERS: {missing}"
    unknown = [
        (name, module)
        for name, path in MODULES.items()
        for module, _, _ in _imports(name, path)
        if module != "flt3d" and _layer(module) is None
    ]
    assert not unknown, f"imports of modules outside every layer: {unknown}"


def test_root_package_imports_nothing_of_flt3d():
    assert _imports("flt3d", MODULES["flt3d"]) == []


def test_no_module_imports_a_higher_layer():
    upward = _upward_imports()
    new = [
        f"{name}:{line} imports {module}"
        for name, module, line in upward
        if not any(name == a and (module == b or module.startswith(b + ".")) for a, b in ALLOWED)
    ]
    assert not new, "imports from a higher layer:\n" + "\n".join(new)


def test_allow_list_is_still_needed():
    used = {
        (a, b)
        for name, module, _ in _upward_imports()
        for a, b in ALLOWED
        if name == a and (module == b or module.startswith(b + "."))
    }
    assert used == set(ALLOWED), f"no longer needed, remove: {set(ALLOWED) - used}"


def _defined_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id != "__all__"
    }


def test_mode_names_come_from_one_module():
    modes = MODULES[MODES]
    assert _imports(MODES, modes) == [], f"{MODES} must import nothing of flt3d"
    vocabulary = _defined_names(modes)
    assert {"ATTENTIONS", "REDRAWS"} <= vocabulary
    elsewhere = []
    for name, path in MODULES.items():
        if name == MODES:
            continue
        if vocabulary & _defined_names(path):
            elsewhere.append(f"{name} defines {sorted(vocabulary & _defined_names(path))}")
        for module, names, line in _imports(name, path):
            if module != MODES and vocabulary & set(names):
                elsewhere.append(
                    f"{name}:{line} takes {sorted(vocabulary & set(names))} from {module}"
                )
    assert not elsewhere, f"mode names outside {MODES}:\n" + "\n".join(elsewhere)


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if _layer(n) == LAYERS["flt3d.datasets"])
)
def test_datasets_define_no_modules(name):
    """The data layer holds data: no ``nn.Module`` subclasses (those live in ``flt3d.nn``)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    modules = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(
            ast.unparse(base) in {"nn.Module", "Module", "torch.nn.Module"} for base in node.bases
        )
    ]
    assert not modules, f"{name} defines nn.Module subclasses {modules}; move them to flt3d.nn"


#: the longest a module may be: one concept per file
MAX_LINES = 400


def test_every_module_is_one_concept_of_at_most_max_lines():
    """Each module opens with a docstring (naming the concept it holds) and stays short."""
    problems = []
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if not ast.get_docstring(ast.parse(text)):
            problems.append(f"{name} has no opening docstring")
        lines = text.count("\n")
        if lines > MAX_LINES:
            problems.append(f"{name} has {lines} lines (at most {MAX_LINES})")
    assert not problems, "\n".join(problems)
