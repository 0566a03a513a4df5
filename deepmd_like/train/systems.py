"""The training and validation systems of a run, opened and checked.

Each entry of ``training_data.systems`` (``FILE.h5`` or ``FILE.h5:NAME,...``)
is opened with :class:`deepmd_like.data.Dataset`; every system becomes one
:class:`TrainSystem`. Everything a user can get wrong about the data is
checked here, before anything is written: missing files, empty datasets,
elements not in the type map, systems without energies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from ase.data import chemical_symbols

from deepmd_like.data import Dataset, collate_structures
from deepmd_like.errors import UserError

log = logging.getLogger(__name__)

# Systems up to this many atoms in all (frames x atoms) are kept in memory
# after their first read; beyond it every batch is read from the file.
_CACHE_ATOMS = 4_000_000


@dataclass
class TrainSystem:
    """One system of a dataset file, with its batch size."""

    dataset: Dataset
    index: int
    batch_size: int = 1
    _cache: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def info(self):
        return self.dataset.systems[self.index]

    @property
    def name(self) -> str:
        """``FILE:SYSTEM``, for messages."""
        return f"{self.dataset.path}:{self.info.name}"

    @property
    def n_frames(self) -> int:
        return int(self.info.n_frames)

    @property
    def n_atoms(self) -> int:
        return int(self.info.n_atoms)

    def frames(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Frames ``indices`` (within this system) as the reader serves them."""
        cache = self.n_frames * self.n_atoms <= _CACHE_ATOMS
        missing = [i for i in indices if i not in self._cache]
        if missing:
            start = self.dataset.system_frames(self.index).start
            read = self.dataset.__getitems__([start + i for i in missing])
            fetched = dict(zip(missing, read))
            if cache:
                self._cache.update(fetched)
        else:
            fetched = {}
        return [self._cache[i] if i in self._cache else fetched[i] for i in indices]

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """The batch of frames ``indices`` (see :func:`collate_structures`)."""
        return collate_structures(self.frames(indices))


def open_systems(
    references: Sequence[str], type_map: Sequence[str], what: str
) -> list[TrainSystem]:
    """Open every system named by ``references`` and check it against the model.

    Parameters
    ----------
    references : data references, ``FILE.h5`` or ``FILE.h5:NAME,...``.
    type_map : element symbols of the model.
    what : ``"training_data"`` or ``"validation_data"``, for messages.
    """
    systems: list[TrainSystem] = []
    known = set(type_map)
    for ref in references:
        dataset = Dataset(ref)
        if not dataset.systems:
            raise UserError(f"{what}: dataset {ref} holds no systems")
        for index, info in enumerate(dataset.systems):
            where = f"{what}: {dataset.path} system {info.name!r}"
            if info.n_frames == 0 or info.n_atoms == 0:
                raise UserError(f"{where} is empty (no frames or no atoms)")
            symbols = {chemical_symbols[int(z)] for z in np.unique(info.atomic_numbers)}
            missing = sorted(symbols - known)
            if missing:
                raise UserError(
                    f"{where} contains {', '.join(missing)}, which is not in "
                    f"model.type_map {list(type_map)}; add it to the type map"
                )
            if "energy" not in info.labels:
                raise UserError(f"{where} has no energy labels")
            systems.append(TrainSystem(dataset, index))
    if not systems:
        raise UserError(f"{what}: no systems")
    log.info(
        "%s: %d systems, %d frames",
        what,
        len(systems),
        sum(s.n_frames for s in systems),
    )
    return systems


def type_indices(atomic_numbers: torch.Tensor, type_map: Sequence[str]) -> torch.Tensor:
    """Index of each atom's element in ``type_map``.

    Parameters
    ----------
    atomic_numbers : (n_atoms,) int64

    Returns
    -------
    (n_atoms,) int64
    """
    lookup = torch.full((119,), -1, dtype=torch.int64)
    for i, symbol in enumerate(type_map):
        lookup[chemical_symbols.index(symbol)] = i
    types = lookup[atomic_numbers]
    if bool((types < 0).any()):
        bad = chemical_symbols[int(atomic_numbers[types < 0][0])]
        raise UserError(f"element {bad} is not in the type map {list(type_map)}")
    return types
