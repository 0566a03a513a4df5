"""The learning-curve file: one CSV line per display step, units in the header."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from deepmd_like.fileio import atomic_write_text

# Column names with their units.
COLUMNS = (
    "step",
    "lr",
    "train_energy_rmse_per_atom_eV",
    "train_force_rmse_eV_per_A",
    "valid_energy_rmse_per_atom_eV",
    "valid_force_rmse_eV_per_A",
    "train_virial_rmse_per_atom_eV",
    "valid_virial_rmse_per_atom_eV",
    "wall_time_s",
)


class LearningCurve:
    """Append-only CSV writer for ``lcurve.csv``.

    Parameters
    ----------
    path : the file.
    resume_step : int, optional
        When continuing a run, lines after this step (written after the last
        checkpoint) are dropped so the file matches an uninterrupted run.
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and self.path.exists():
            kept = [",".join(COLUMNS)]
            with self.path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    try:
                        if int(row["step"]) <= resume_step:
                            kept.append(",".join(row[c] for c in COLUMNS))
                    except (KeyError, ValueError, TypeError):
                        continue
            atomic_write_text(self.path, "\n".join(kept) + "\n")
        else:
            atomic_write_text(self.path, ",".join(COLUMNS) + "\n")

    def write(self, values: dict[str, float]) -> None:
        """Append one line; missing values are written as ``nan``."""
        fields = []
        for column in COLUMNS:
            value = values.get(column, math.nan)
            if column == "step":
                fields.append(str(int(value)))
            elif column == "wall_time_s":
                fields.append(f"{value:.1f}")
            else:
                fields.append(f"{value:.6e}")
        with self.path.open("a") as handle:
            handle.write(",".join(fields) + "\n")


def read_lcurve(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a learning-curve file as dictionaries of floats."""
    with Path(path).open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
