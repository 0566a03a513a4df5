"""Training checkpoints: one versioned ``torch.save`` dictionary of plain data.

A checkpoint holds only tensors, numbers, strings, lists and dictionaries, so
it loads with ``torch.load(weights_only=True)`` (no arbitrary unpickling)::

    format          "deepmd_like/checkpoint"
    version         1
    model_config    the model section (plain dict, every default filled,
                    ``sel`` resolved), enough to rebuild the module
    model_state     the module's state_dict (weights, input statistics,
                    per-element energy shifts)
    type_map        element symbols
    step            optimiser steps done
    numb_steps      length of the run the checkpoint belongs to
    optimizer_state, sampler_state, valid_sampler_state, torch_rng_state
    config          the whole input (plain dict)

``checkpoint.pt`` (the latest) and ``checkpoint-STEP.pt`` are written
atomically: a run killed while saving leaves the previous file intact.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from deepmd_like.errors import UserError
from deepmd_like.fileio import atomic_write_bytes

FORMAT_NAME = "deepmd_like/checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (plus format name and version) to ``path`` atomically."""
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing others.

    Raises
    ------
    UserError
        If the file is missing, is not a checkpoint, or is from a newer version.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    from deepmd_like.nn.export import read_checkpoint_file

    state = read_checkpoint_file(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        raise UserError(f"{path} is not a training checkpoint of 'dpl train'")
    if int(state.get("version", 0)) > FORMAT_VERSION:
        raise UserError(
            f"{path} is a checkpoint of version {state['version']}; this version "
            f"reads up to {FORMAT_VERSION}; upgrade deepmd_like"
        )
    return state


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` numbered checkpoints in ``folder``."""
    numbered = []
    for path in folder.glob("checkpoint-*.pt"):
        try:
            numbered.append((int(path.stem.split("-", 1)[1]), path))
        except ValueError:
            continue
    numbered.sort()
    for _, path in numbered[: max(len(numbered) - keep, 0)]:
        path.unlink(missing_ok=True)
