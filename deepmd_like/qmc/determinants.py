"""Sums of determinants in the log domain, with signs.

A neural wavefunction is ``psi = sum_k w_k det(A_k^up) det(A_k^down)``. The
determinants over- and underflow for more than a few electrons, so each is
kept as (sign, log|det|) and the sum is formed relative to its largest term.

An exactly singular matrix has log|det| = -inf and a gradient of log|det|
that is infinite. Such a matrix is replaced, before the factorisation, by the
identity and its sign set to zero: its term then contributes exactly zero to
psi and a zero (not NaN) gradient. Only the cofactor term of a matrix that is
exactly singular is lost, which is a set of configurations of measure zero.
"""

from __future__ import annotations

import torch


def safe_slogdet(matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign and log|det| of a batch of square matrices, NaN-free at det = 0.

    Parameters
    ----------
    matrices : (..., n, n) tensor

    Returns
    -------
    sign : (...,) tensor
        -1, 0 or +1.
    logabs : (...,) tensor
        log|det|; -inf where the determinant is exactly zero.
    """
    n = matrices.shape[-1]
    if n == 0:
        shape = matrices.shape[:-2]
        ones = torch.ones(shape, dtype=matrices.dtype, device=matrices.device)
        return ones, torch.zeros_like(ones)
    with torch.no_grad():
        probe_sign, probe_log = torch.linalg.slogdet(matrices.detach())
        singular = (probe_sign == 0) | ~torch.isfinite(probe_log)
    eye = torch.eye(n, dtype=matrices.dtype, device=matrices.device)
    safe = torch.where(singular[..., None, None], eye, matrices)
    sign, logabs = torch.linalg.slogdet(safe)
    sign = torch.where(singular, torch.zeros_like(sign), sign)
    minus_inf = torch.full_like(logabs, float("-inf"))
    logabs = torch.where(singular, minus_inf, logabs)
    return sign, logabs


def signed_logsumexp(
    signs: torch.Tensor, logs: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``log|sum_k w_k s_k exp(l_k)|`` and its sign, over the last axis.

    Parameters
    ----------
    signs, logs : (..., n_terms) tensor
    weights : (n_terms,) tensor, optional

    Returns
    -------
    sign, logabs : (...,) tensor
        logabs is -inf (and sign 0) where the sum vanishes.
    """
    finite = torch.isfinite(logs)
    # Shift by the largest finite term; a row with none is shifted by zero.
    shift = torch.where(finite, logs, torch.full_like(logs, -1e300)).amax(-1)
    shift = torch.where(shift > -1e299, shift, torch.zeros_like(shift)).detach()
    safe_logs = torch.where(finite, logs, shift[..., None])
    scaled = torch.where(
        finite, torch.exp(safe_logs - shift[..., None]), torch.zeros_like(logs)
    )
    terms = signs * scaled
    if weights is not None:
        terms = terms * weights
    total = terms.sum(-1)
    sign = torch.sign(total)
    nonzero = total != 0
    magnitude = torch.where(nonzero, total.abs(), torch.ones_like(total))
    logabs = torch.where(
        nonzero, torch.log(magnitude) + shift, torch.full_like(total, float("-inf"))
    )
    return sign, logabs
