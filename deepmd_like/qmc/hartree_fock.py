"""Hartree–Fock orbitals and quantum-chemistry references from PySCF.

PySCF is an optional dependency (``pip install deepmd_like[label]``); it is
imported only inside these functions. Orbitals are evaluated in PyTorch (so
that they can be differentiated) from the Cartesian Gaussian basis PySCF
used; the normalisation of each basis function is taken from PySCF's own
evaluator, so the two agree to rounding.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from deepmd_like.errors import UserError
from deepmd_like.qmc.system import Molecule

logger = logging.getLogger(__name__)


def _pyscf():
    try:
        import pyscf  # noqa: F401
        from pyscf import gto, scf
    except ImportError:
        raise UserError(
            "PySCF is needed for Hartree–Fock orbitals and references; install it "
            "with 'pip install deepmd_like[label]', or set pretrain.steps: 0 and "
            "use ansatz.kind: ferminet"
        ) from None
    return gto, scf


def build_pyscf_molecule(molecule: Molecule, basis: str, cartesian: bool = True):
    """A ``pyscf.gto.Mole`` for ``molecule`` (coordinates in bohr)."""
    gto, _ = _pyscf()
    atoms = [(s, p) for s, p in zip(molecule.symbols, molecule.positions)]
    try:
        # PySCF warns about optional packages for unknown names; the error
        # below says what is wrong.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return gto.M(
                atom=atoms,
                unit="Bohr",
                basis=basis,
                charge=molecule.charge,
                spin=molecule.spin,
                cart=cartesian,
                verbose=0,
            )
    except (KeyError, RuntimeError, ValueError) as err:
        raise UserError(
            f"PySCF cannot build basis {basis!r} for {molecule.formula()}: {err}"
        ) from None


def run_hartree_fock(molecule: Molecule, basis: str) -> Any:
    """Converged RHF (closed shell) or UHF (open shell) in PySCF."""
    _, scf = _pyscf()
    mol = build_pyscf_molecule(molecule, basis)
    mf = scf.RHF(mol) if molecule.spin == 0 else scf.UHF(mol)
    mf.conv_tol = 1e-10
    mf.kernel()
    if not mf.converged:
        logger.warning("Hartree–Fock did not converge for %s", molecule.formula())
    return mf


def occupied_coefficients(mf: Any) -> tuple[np.ndarray, np.ndarray]:
    """AO coefficients of the occupied up and down orbitals."""
    coeff, occ = np.asarray(mf.mo_coeff), np.asarray(mf.mo_occ)
    if coeff.ndim == 2:  # restricted
        doubly = coeff[:, occ > 1.5]
        singly = coeff[:, (occ > 0.5) & (occ < 1.5)]
        return np.concatenate([doubly, singly], 1), doubly
    return coeff[0][:, occ[0] > 0.5], coeff[1][:, occ[1] > 0.5]


def _cartesian_powers(l: int) -> list[tuple[int, int, int]]:
    """PySCF's order of Cartesian components of angular momentum ``l``."""
    return [
        (lx, l - lx - lz, lz) for lx in range(l, -1, -1) for lz in range(l - lx + 1)
    ]


class GaussianOrbitals(nn.Module):
    """Molecular orbitals from Cartesian Gaussian basis functions, in PyTorch.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Built with ``cart=True``.
    coeff_up, coeff_down : (n_ao, n_up), (n_ao, n_down) array
        Occupied orbital coefficients.
    n_up : int
    """

    def __init__(
        self, mol: Any, coeff_up: np.ndarray, coeff_down: np.ndarray, n_up: int
    ) -> None:
        super().__init__()
        centres, powers, exps, coefs = [], [], [], []
        for shell in range(mol.nbas):
            l = mol.bas_angular(shell)
            atom = mol.bas_atom(shell)
            alpha = mol.bas_exp(shell)
            contraction = mol._libcint_ctr_coeff(shell)  # (n_prim, n_ctr)
            for k in range(contraction.shape[1]):
                for power in _cartesian_powers(l):
                    centres.append(mol.atom_coord(atom))
                    powers.append(power)
                    exps.append(alpha)
                    coefs.append(contraction[:, k])
        n_prim = max(len(e) for e in exps)
        pad = lambda rows: np.array([np.pad(r, (0, n_prim - len(r))) for r in rows])
        self.n_up = n_up
        self.max_power = max(max(p) for p in powers)
        self.register_buffer("centres", torch.tensor(np.array(centres)))
        self.register_buffer("powers", torch.tensor(np.array(powers), dtype=torch.long))
        self.register_buffer("exponents", torch.tensor(pad(exps)))
        self.register_buffer("coefficients", torch.tensor(pad(coefs)))
        self.register_buffer("norms", torch.ones(len(centres), dtype=torch.float64))
        self.register_buffer("coeff_up", torch.tensor(coeff_up))
        self.register_buffer("coeff_down", torch.tensor(coeff_down))
        self._calibrate(mol)

    def _calibrate(self, mol: Any) -> None:
        # PySCF scales Cartesian functions by l-dependent constants; take them
        # from its evaluator by least squares at random points.
        rng = np.random.default_rng(0)
        points = rng.normal(scale=1.5, size=(400, 3)) + mol.atom_coords().mean(0)
        reference = mol.eval_gto("GTOval_cart", points)
        ours = self.basis(torch.tensor(points)).numpy()
        scale = (ours * reference).sum(0) / (ours * ours).sum(0)
        self.norms = torch.tensor(scale)

    def basis(self, points: torch.Tensor) -> torch.Tensor:
        """Basis function values, ``(..., n_ao)`` at points ``(..., 3)`` (bohr)."""
        d = points[..., None, :] - self.centres  # (..., n_ao, 3)
        r2 = (d * d).sum(-1)
        gaussians = torch.exp(-self.exponents * r2[..., None])
        radial = (self.coefficients * gaussians).sum(-1)
        # Integer powers by repeated products: no pow(0, -1) in the gradient.
        monomials = [torch.ones_like(d)]
        for _ in range(self.max_power):
            monomials.append(monomials[-1] * d)
        stacked = torch.stack(monomials, -1)  # (..., n_ao, 3, max_power + 1)
        index = self.powers.expand(d.shape)[..., None]
        angular = torch.gather(stacked, -1, index)[..., 0].prod(-1)
        return self.norms * angular * radial

    def forward(self, electrons: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Orbital matrices ``(W, n_up, n_up)`` and ``(W, n_down, n_down)``."""
        ao = self.basis(electrons)  # (W, N, n_ao)
        up = ao[:, : self.n_up] @ self.coeff_up
        down = ao[:, self.n_up :] @ self.coeff_down
        return up, down


def hartree_fock_orbitals(
    molecule: Molecule, basis: str
) -> tuple[GaussianOrbitals, float]:
    """Hartree–Fock orbitals as a module, and the Hartree–Fock energy (Ha)."""
    mf = run_hartree_fock(molecule, basis)
    up, down = occupied_coefficients(mf)
    return GaussianOrbitals(mf.mol, up, down, molecule.n_up), float(mf.e_tot)


def reference_energies(
    molecule: Molecule, basis: str, fci: str | bool = "auto"
) -> dict[str, float | str]:
    """HF, CCSD, CCSD(T) and (for small cases) FCI energies in Hartree.

    Parameters
    ----------
    fci : "auto", True or False
        ``auto`` runs FCI when the determinant space is below about 1e6.
    """
    from pyscf import cc as pyscf_cc
    from pyscf import fci as pyscf_fci

    _, scf = _pyscf()
    mol = build_pyscf_molecule(molecule, basis, cartesian=False)
    result: dict[str, float | str] = {"basis": basis, "n_orbitals": mol.nao}
    mf = scf.RHF(mol) if molecule.spin == 0 else scf.UHF(mol)
    mf.conv_tol = 1e-10
    result["hf"] = float(mf.kernel())
    if molecule.n_electrons > 1:
        solver = pyscf_cc.CCSD(mf) if molecule.spin == 0 else pyscf_cc.UCCSD(mf)
        solver.conv_tol = 1e-9
        solver.kernel()
        result["ccsd"] = float(solver.e_tot)
        result["ccsd_t"] = float(solver.e_tot + solver.ccsd_t())
    else:
        result["ccsd"] = result["ccsd_t"] = result["hf"]
    size = math.comb(mol.nao, molecule.n_up) * math.comb(mol.nao, molecule.n_down)
    if fci is True or (fci == "auto" and size <= 1_000_000):
        rohf = scf.ROHF(mol) if molecule.spin else scf.RHF(mol)
        rohf.kernel()
        solver = pyscf_fci.FCI(rohf)
        energy, _ = solver.kernel(nelec=(molecule.n_up, molecule.n_down))
        result["fci"] = float(energy)
    return result
