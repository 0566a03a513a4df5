"""Distances with derivatives that stay finite where two particles meet.

The norm of a vector has an undefined gradient at zero and an infinite
Laplacian there. Electrons can, in principle, sit exactly on a nucleus or on
each other, so every distance in the ansatz and the Hamiltonian goes through
:func:`safe_norm`, whose value is exact and whose derivatives at zero are
defined as zero instead of NaN.
"""

from __future__ import annotations

import torch


def safe_norm(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last axis, with finite derivatives at zero.

    Parameters
    ----------
    vectors : (..., 3) tensor

    Returns
    -------
    (...,) tensor
        ``|vectors|``; at exactly zero the value is 0 and all derivatives are 0.
    """
    squared = (vectors * vectors).sum(-1)
    positive = squared > 0
    # The inner ``where`` keeps sqrt away from zero so that no NaN enters the
    # backward pass; the outer one restores the exact value.
    root = torch.sqrt(torch.where(positive, squared, torch.ones_like(squared)))
    return torch.where(positive, root, torch.zeros_like(root))


def safe_inverse(distance: torch.Tensor) -> torch.Tensor:
    """``1 / distance``, with 0 where the distance is exactly 0.

    The Coulomb singularity at a coalescence point cancels against the cusp
    of the wavefunction; at the point itself both singular terms are dropped.
    """
    positive = distance > 0
    denom = torch.where(positive, distance, torch.ones_like(distance))
    return torch.where(positive, 1.0 / denom, torch.zeros_like(distance))


def electron_nucleus(
    electrons: torch.Tensor, nuclei: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors and distances from every nucleus to every electron.

    Parameters
    ----------
    electrons : (n_walkers, n_electrons, 3) tensor, bohr
    nuclei : (n_atoms, 3) tensor, bohr

    Returns
    -------
    vectors : (n_walkers, n_electrons, n_atoms, 3) tensor, bohr
    distances : (n_walkers, n_electrons, n_atoms) tensor, bohr
    """
    vectors = electrons[..., :, None, :] - nuclei
    return vectors, safe_norm(vectors)


def electron_electron(
    electrons: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors and distances between every ordered pair of electrons.

    Returns
    -------
    vectors : (n_walkers, n_electrons, n_electrons, 3) tensor, bohr
        ``vectors[..., i, j, :] = r_i - r_j``.
    distances : (n_walkers, n_electrons, n_electrons) tensor, bohr
        Zero on the diagonal, with zero derivatives there.
    """
    vectors = electrons[..., :, None, :] - electrons[..., None, :, :]
    return vectors, safe_norm(vectors)
