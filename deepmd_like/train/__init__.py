"""Training of potentials: schedules, loss, batch sampling, statistics, trainer.

The public entry point is :func:`deepmd_like.train.trainer.train`, which the
``dpl train`` command calls with a validated
:class:`deepmd_like.config.InputConfig`.
"""

from deepmd_like.train.loss import EnergyLoss, energy_force_metrics
from deepmd_like.train.schedule import ExponentialDecay

__all__ = ["EnergyLoss", "ExponentialDecay", "energy_force_metrics"]
