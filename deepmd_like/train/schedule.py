"""Learning-rate schedule: exponential decay in stages, as DeePMD-kit does it.

The rate is constant within stages of ``decay_steps`` steps and falls by a
constant factor from one stage to the next::

    decay_rate = exp(log(stop_lr / start_lr) / (numb_steps / decay_steps))
    lr(step)   = max(start_lr * decay_rate ** (step // decay_steps), stop_lr)

so it starts at ``start_lr`` and reaches ``stop_lr`` at ``numb_steps``. When a
run is no longer than one stage (``decay_steps >= numb_steps``) the stage
length is replaced by 100 steps, or by ``numb_steps // 100 + 1`` for runs of at
most 1000 steps, so that short runs still decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ExponentialDecay:
    """The learning rate as a function of the step.

    Parameters
    ----------
    start_lr : float
        Learning rate at step 0.
    stop_lr : float
        Learning rate at ``numb_steps``; also the lowest rate returned.
    decay_steps : int
        Requested stage length in steps (adjusted for short runs, see module).
    numb_steps : int
        Length of the run in steps.
    decay_rate : float, optional
        Factor per stage; derived from ``start_lr`` and ``stop_lr`` if None.
    """

    start_lr: float
    stop_lr: float
    decay_steps: int
    numb_steps: int
    decay_rate: float | None = None

    @property
    def stage_steps(self) -> int:
        """The stage length actually used, after the short-run adjustment."""
        if self.decay_steps >= self.numb_steps:
            return 100 if self.numb_steps // 10 > 100 else self.numb_steps // 100 + 1
        return self.decay_steps

    @property
    def rate(self) -> float:
        """Factor by which the learning rate falls from one stage to the next."""
        if self.decay_rate is not None:
            return self.decay_rate
        n_stages = self.numb_steps / self.stage_steps
        return math.exp(math.log(self.stop_lr / self.start_lr) / n_stages)

    def __call__(self, step: int) -> float:
        """Learning rate used for the update made at ``step`` (0-based)."""
        lr = self.start_lr * self.rate ** (step // self.stage_steps)
        return max(lr, self.stop_lr)
