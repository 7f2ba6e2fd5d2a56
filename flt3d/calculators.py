"""An ASE calculator on a trained FLTNet: energies and forces for MD, relaxations and analysis.

.. code-block:: python

    from ase.cluster import Icosahedron
    from ase.optimize import BFGS
    from flt3d.calculators import FLTCalculator

    atoms = Icosahedron("Cu", 2)
    atoms.calc = FLTCalculator("runs/cu/checkpoints/best.ckpt")
    BFGS(atoms).run(fmax=0.05)

Forces are the autograd gradient of the model's energy (see
:meth:`flt3d.models.FLTNet.energy_and_forces`): conservative, so NVE dynamics conserve the
energy the model computes. The model runs in eval mode, where its random features (linear
mode) are one fixed draw, and in float64 by default, so that energy differences along a
trajectory are not limited by float32 rounding.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import torch

from flt3d.models import FLTNet

try:
    from ase.calculators.calculator import Calculator, all_changes
except ImportError as err:  # pragma: no cover - ase comes with flt3d[molecules]
    raise ImportError(
        "flt3d.calculators needs ASE: pip install 'flt3d[molecules]'"
    ) from err

__all__ = ["FLTCalculator"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _model_from(model_or_path: FLTNet | str | os.PathLike) -> FLTNet:
    if isinstance(model_or_path, FLTNet):
        return model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        from flt3d.training.run import load_module

        _, module, _ = load_module(model_or_path)
        model = getattr(module, "model", None)
        if not isinstance(model, FLTNet):
            raise ValueError(
                f"checkpoint {os.fspath(model_or_path)!r} holds a {type(model).__name__}, "
                "not an FLTNet"
            )
        return model
    raise ValueError(
        f"FLTCalculator needs an FLTNet or a checkpoint path, got {type(model_or_path).__name__}"
    )


class FLTCalculator(Calculator):
    """ASE calculator for an FLTNet with an energy (``extensive``) head.

    Args:
        model: an :class:`~flt3d.models.FLTNet`, or the path of a checkpoint written by
            ``flt3d train`` (the model is rebuilt from the checkpoint alone).
        dtype: ``"float64"`` (default) or ``"float32"``; the calculator works on its own copy
            of the model, so the model passed in is left as it was.
        device: torch device (default ``"cpu"``).
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator`.

    Properties: ``energy`` and ``free_energy`` (eV, the same number), ``forces`` (eV/Å) and,
    for periodic atoms, ``stress`` (eV/Å³, Voigt order); an energy asked for alone skips the
    backward pass. Periodic atoms need a local model (``FLTNet(far_attention=False)``, no
    long-range parts: :attr:`~flt3d.models.FLTNet.local`); others are refused with a
    ``ValueError``.

    Raises:
        ValueError: for a model without an energy head, atoms with elements the model lacks,
            periodic atoms for a model that sees beyond its cutoff, or non-finite positions
            (naming the problem).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: FLTNet | str | os.PathLike,
        *,
        dtype: str = "float64",
        device: str | torch.device = "cpu",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        net = copy.deepcopy(_model_from(model))
        if net.head_name != "extensive" or net.config["out_channels"] != 1:
            raise ValueError(
                "FLTCalculator needs a model with an energy: the 'extensive' head with one "
                f"output, got head {net.head_name!r}"
            )
        self.dtype = _DTYPES[dtype]
        self.device = torch.device(device)
        self.model = net.to(device=self.device, dtype=self.dtype).eval()

    def calculate(
        self,
        atoms=None,
        properties=("energy",),
        system_changes=all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(np.any(atoms.pbc))
        if periodic and not self.model.local:
            raise ValueError(
                f"FLTCalculator: periodic boundaries (pbc={atoms.pbc.tolist()}) need a local "
                "model (far_attention=False, no long-range parts); this one sees beyond its "
                "cutoff, so use open boundaries (clusters, molecules)"
            )
        if "stress" in properties and not periodic:
            raise ValueError("FLTCalculator: stress needs a periodic cell (atoms.pbc)")
        positions = np.asarray(atoms.get_positions(), dtype=np.float64)
        if not np.isfinite(positions).all():
            rows = sorted(set(np.nonzero(~np.isfinite(positions))[0].tolist()))
            raise ValueError(f"FLTCalculator: positions of atoms {rows[:10]} are not finite")
        z = torch.as_tensor(atoms.get_atomic_numbers(), dtype=torch.long, device=self.device)
        pos = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        periodic_inputs = {}
        if periodic:
            periodic_inputs = {
                "cell": torch.as_tensor(np.asarray(atoms.cell), dtype=self.dtype, device=self.device),
                "pbc": torch.as_tensor(atoms.pbc, dtype=torch.bool),
            }
        if "stress" in properties:
            energy, forces, stress = self.model.energy_and_forces(
                z, pos, stress=True, **periodic_inputs
            )
            s = stress[0].cpu().numpy().astype(np.float64)
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
            )  # Voigt order, eV/Å^3
            self.results["forces"] = forces.cpu().numpy().astype(np.float64)
        elif "forces" in properties:
            energy, forces = self.model.energy_and_forces(z, pos, **periodic_inputs)
            self.results["forces"] = forces.cpu().numpy().astype(np.float64)
        else:  # an energy alone needs no backward pass
            with torch.no_grad():
                energy = self.model(z, pos, **periodic_inputs)
        self.results["energy"] = float(energy.sum())
        self.results["free_energy"] = self.results["energy"]
