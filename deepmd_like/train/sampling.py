"""Which frames make up each training batch.

A batch comes from one system (so all its structures have the same atoms, as
in DeePMD-kit). At every step a system is drawn with fixed probabilities, then
the next ``batch_size`` frames of that system's shuffled order are taken; when
a system's order runs out it is reshuffled. All randomness comes from one
NumPy generator whose state, with every system's order and cursor, is part of
:meth:`SystemSampler.state_dict`, so a restarted run draws the same batches.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from deepmd_like.config import auto_batch_atoms
from deepmd_like.errors import UserError


def resolve_batch_size(batch_size: int | str, n_atoms: int) -> int:
    """Structures per batch for a system of ``n_atoms`` atoms.

    ``"auto"`` is the smallest batch with at least 32 atoms, ``"auto:N"`` with
    at least ``N`` atoms (DeePMD-kit's rule); an integer is used as given.
    """
    if isinstance(batch_size, int):
        return batch_size
    target = auto_batch_atoms(batch_size, "batch_size")
    return max(1, math.ceil(target / max(n_atoms, 1)))


def system_probabilities(
    n_batches: Sequence[int],
    auto_prob: str = "prob_sys_size",
    sys_probs: Sequence[float] | None = None,
) -> np.ndarray:
    """Probability of drawing each system.

    Parameters
    ----------
    n_batches : sequence of int
        Batches per system (frames // batch_size, at least 1).
    auto_prob : str
        ``"prob_uniform"``; ``"prob_sys_size"`` (proportional to
        ``n_batches``); or ``"prob_sys_size;A:B:W;..."``: systems ``A..B-1``
        share weight ``W`` in proportion to their sizes, then all weights are
        normalised.
    sys_probs : sequence of float, optional
        Explicit (unnormalised) probabilities; override ``auto_prob``.

    Returns
    -------
    (n_systems,) float64, summing to 1.
    """
    n = len(n_batches)
    sizes = np.asarray(n_batches, dtype=np.float64)
    if sys_probs is not None:
        if len(sys_probs) != n:
            raise UserError(
                f"sys_probs has {len(sys_probs)} entries for {n} training systems"
            )
        probs = np.asarray(sys_probs, dtype=np.float64)
    elif auto_prob == "prob_uniform":
        probs = np.ones(n)
    elif auto_prob == "prob_sys_size":
        probs = sizes.copy()
    elif auto_prob.startswith("prob_sys_size;"):
        probs = np.zeros(n)
        for block in auto_prob.split(";")[1:]:
            try:
                start_s, end_s, weight_s = block.split(":")
                start, end, weight = int(start_s), int(end_s), float(weight_s)
            except ValueError:
                raise UserError(
                    f"auto_prob block {block!r} must be START:END:WEIGHT"
                ) from None
            if not 0 <= start < end <= n or weight < 0:
                raise UserError(
                    f"auto_prob block {block!r} must have 0 <= START < END <= {n} "
                    "(number of systems) and WEIGHT >= 0"
                )
            probs[start:end] = weight * sizes[start:end] / sizes[start:end].sum()
    else:
        raise UserError(
            f"auto_prob {auto_prob!r} is not one of prob_uniform, prob_sys_size, "
            "prob_sys_size;START:END:WEIGHT;..."
        )
    total = probs.sum()
    if not total > 0:
        raise UserError("the system probabilities are all zero")
    return probs / total


class SystemSampler:
    """Draws (system, frames) for each training batch, reproducibly.

    Parameters
    ----------
    n_frames : sequence of int
        Frames per system.
    batch_sizes : sequence of int
        Structures per batch for each system.
    probabilities : (n_systems,) float
        From :func:`system_probabilities`.
    seed : int
        Seed of the NumPy generator.
    """

    def __init__(
        self,
        n_frames: Sequence[int],
        batch_sizes: Sequence[int],
        probabilities: np.ndarray,
        seed: int,
    ) -> None:
        self.n_frames = [int(n) for n in n_frames]
        self.batch_sizes = [int(b) for b in batch_sizes]
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        self.rng = np.random.default_rng(seed)
        self.orders = [self.rng.permutation(n) for n in self.n_frames]
        self.cursors = [0] * len(self.n_frames)

    def next(self) -> tuple[int, list[int]]:
        """The system index and frame indices (within that system) of a batch."""
        if len(self.n_frames) == 1:
            system = 0
        else:
            system = int(self.rng.choice(len(self.n_frames), p=self.probabilities))
        size = self.batch_sizes[system]
        frames: list[int] = []
        while len(frames) < size:
            if self.cursors[system] >= self.n_frames[system]:
                self.orders[system] = self.rng.permutation(self.n_frames[system])
                self.cursors[system] = 0
            take = min(size - len(frames), self.n_frames[system] - self.cursors[system])
            start = self.cursors[system]
            frames.extend(int(i) for i in self.orders[system][start : start + take])
            self.cursors[system] += take
        return system, frames

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the same sequence (plain Python data)."""
        return {
            "bit_generator": _plain(self.rng.bit_generator.state),
            "orders": [order.tolist() for order in self.orders],
            "cursors": list(self.cursors),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        orders = state["orders"]
        if [len(o) for o in orders] != self.n_frames:
            raise UserError(
                "the checkpoint's training systems differ from the input's "
                "(frame counts do not match); restart with the same data"
            )
        self.rng.bit_generator.state = state["bit_generator"]
        self.orders = [np.asarray(o, dtype=np.int64) for o in orders]
        self.cursors = [int(c) for c in state["cursors"]]


def _plain(value: Any) -> Any:
    """NumPy scalars/arrays inside a generator state as plain Python values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
