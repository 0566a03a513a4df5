"""Making new datasets from old ones: split, merge, copy of selected frames.

Everything streams block by block (memory bounded by the block size) into a
temporary file that is renamed into place only when complete.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from deepmd_like.fileio import default_permissions
from deepmd_like.data.publish import check_destination, publish_path
from deepmd_like.data.reader import Dataset
from deepmd_like.data.writer import DatasetWriter
from deepmd_like.errors import UserError

logger = logging.getLogger(__name__)

BLOCK_FRAMES = 4096


def copy_system(
    dataset: Dataset,
    system: str,
    writer: DatasetWriter,
    frames: np.ndarray | None = None,
    name: str | None = None,
    attrs: dict | None = None,
) -> int:
    """Copy frames of one system (all, or the sorted indices ``frames``).

    Returns the number of frames copied; a system with none is not created.
    """
    info = dataset.systems[dataset.system_index(system)]
    name = name or info.name
    if frames is None:
        frames = np.arange(info.n_frames)
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size == 0:
        return 0
    created = False
    for start in range(0, info.n_frames, BLOCK_FRAMES):
        stop = start + BLOCK_FRAMES
        chosen = frames[(frames >= start) & (frames < stop)]
        if chosen.size == 0:
            continue
        block = dataset.read_frames(system, int(chosen[0]), int(chosen[-1]) + 1)
        rows = chosen - chosen[0]
        arguments = {"positions": block["positions"][rows]}
        if "cell" in block:
            arguments["cell"] = block["cell"][rows]
        for label in ("energy", "forces", "virial"):
            if label in block:
                arguments[label] = block[label][rows]
                arguments[f"has_{label}"] = block[f"has_{label}"][rows]
        if not created:
            merged_attrs = dict(info.attrs)
            merged_attrs.update(attrs or {})
            writer.add_system(
                name, info.atomic_numbers, pbc=info.pbc, attrs=merged_attrs,
                **arguments,
            )
            created = True
        else:
            writer.append_frames(name, **arguments)
    return int(frames.size)


def _write_new(path: Path, fill, overwrite: bool = False) -> None:
    with publish_path(path, overwrite, suffix=".h5") as tmp:
        _fill_temporary(tmp, path, fill)


def split_dataset(
    reference: str | os.PathLike,
    validation: float,
    prefix: str | os.PathLike,
    by: str = "frames",
    seed: int = 0,
    overwrite: bool = False,
) -> tuple[Path, Path, dict[str, int]]:
    """Split into ``PREFIX.train.h5`` and ``PREFIX.valid.h5``.

    ``by="frames"``: ``round(validation * total frames)`` frames go to the
    validation file, drawn at random (seeded) from every system in
    proportion to its size (the remainders are rounded together, so many
    small systems still give the right total); frames keep their order.
    ``by="systems"``: whole systems, drawn at random, go to the validation
    file while that brings it closer to ``validation`` of all frames (at
    least one system, and at least one left for training).

    Both files appear, or neither: they are written in full before either is
    put in place. A part that would be empty is an error.

    Returns the two paths and the frame counts ``{"train": n, "valid": m}``.
    """
    if not 0.0 < validation < 1.0:
        raise UserError(f"--validation must be between 0 and 1, got {validation}")
    if by not in ("frames", "systems"):
        raise UserError(f"--by must be 'frames' or 'systems', got {by!r}")
    prefix = str(prefix)
    train_path = check_destination(f"{prefix}.train.h5", overwrite)
    valid_path = check_destination(f"{prefix}.valid.h5", overwrite)
    dataset = Dataset(reference)
    total = len(dataset)
    if total == 0:
        raise UserError(f"{dataset.path}: holds no frames; nothing to split")
    rng = np.random.default_rng(seed)
    if by == "frames":
        counts_valid = _frames_per_system(
            [info.n_frames for info in dataset.systems], validation, rng
        )
        n_valid = int(counts_valid.sum())
        if n_valid == 0 or n_valid == total:
            part = "validation" if n_valid == 0 else "training"
            raise UserError(
                f"{dataset.path}: --validation {validation} of {total} frames "
                f"leaves the {part} part empty; choose another fraction"
            )
        selections = {}
        for info, n_chosen in zip(dataset.systems, counts_valid):
            chosen = np.zeros(info.n_frames, bool)
            chosen[rng.permutation(info.n_frames)[:n_chosen]] = True
            selections[info.name] = (np.flatnonzero(~chosen), np.flatnonzero(chosen))
    else:
        selections = _split_systems(dataset, validation, rng)
    attrs = {"split_seed": seed, "split_by": by, "split_validation": validation}
    counts = {"train": 0, "valid": 0}

    def filler(part):
        column = 0 if part == "train" else 1

        def fill(writer):
            for name, chosen in selections.items():
                counts[part] += copy_system(
                    dataset, name, writer, chosen[column],
                    attrs={**attrs, "split_part": part},
                )

        return fill

    published_valid = False
    try:
        with publish_path(train_path, overwrite, suffix=".h5") as train_tmp:
            _fill_temporary(train_tmp, train_path, filler("train"))
            with publish_path(valid_path, overwrite, suffix=".h5") as valid_tmp:
                _fill_temporary(valid_tmp, valid_path, filler("valid"))
            published_valid = True
    except BaseException:
        if published_valid and not overwrite:
            # The training file could not be put in place: take the
            # validation file back, so that neither exists.
            valid_path.unlink(missing_ok=True)
        raise
    finally:
        dataset.close()
    return train_path, valid_path, counts


def _frames_per_system(sizes: list[int], fraction: float, rng) -> np.ndarray:
    """Validation frames per system: proportional, summing to the rounded total."""
    sizes_array = np.asarray(sizes, dtype=np.int64)
    exact = fraction * sizes_array
    counts = np.floor(exact).astype(np.int64)
    remaining = int(round(fraction * sizes_array.sum())) - int(counts.sum())
    if remaining > 0:
        # Largest remainders first; ties broken at random.
        order = np.lexsort((rng.random(len(sizes)), -(exact - counts)))
        counts[order[:remaining]] += 1
    return np.minimum(counts, sizes_array)


def _split_systems(dataset: Dataset, validation: float, rng) -> dict:
    if len(dataset.systems) < 2:
        raise UserError(
            f"{dataset.path}: one system cannot be split by systems; use "
            "--by frames"
        )
    total = len(dataset)
    target = validation * total
    order = rng.permutation(len(dataset.systems))
    valid_systems: set[int] = set()
    count = 0
    for index in order:
        if len(valid_systems) == len(dataset.systems) - 1:
            break
        n = dataset.systems[index].n_frames
        if not valid_systems or abs(count + n - target) < abs(count - target):
            valid_systems.add(int(index))
            count += n
    selections = {}
    for index, info in enumerate(dataset.systems):
        everything = np.arange(info.n_frames)
        empty = np.zeros(0, np.int64)
        selections[info.name] = (
            (empty, everything) if index in valid_systems else (everything, empty)
        )
    if count == 0 or count == total:
        raise UserError(
            f"{dataset.path}: splitting by systems leaves a part without frames; "
            "use --by frames"
        )
    return selections


def _fill_temporary(tmp: Path, shown: Path, fill) -> None:
    with DatasetWriter(tmp, overwrite=True, journal=False, shown_as=shown) as writer:
        fill(writer)
    default_permissions(tmp)


def merge_datasets(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    allow_mixed_theory: bool = False,
    overwrite: bool = False,
) -> dict[str, str]:
    """Merge the systems of several datasets into one new file.

    Refuses systems of different ``level_of_theory`` unless
    ``allow_mixed_theory``. A system name that is already taken gets the
    input file's stem as a prefix. Returns ``{new name: "FILE:old name"}``.
    """
    output = check_destination(output, overwrite)
    datasets = [Dataset(reference) for reference in inputs]
    theories: dict[str, list[str]] = {}
    for dataset in datasets:
        for info in dataset.systems:
            theory = str(info.attrs.get("level_of_theory", "unknown"))
            theories.setdefault(theory, []).append(f"{dataset.path}:{info.name}")
    if len(theories) > 1 and not allow_mixed_theory:
        listing = "; ".join(
            f"{theory!r} ({', '.join(where[:3])}{' ...' if len(where) > 3 else ''})"
            for theory, where in theories.items()
        )
        raise UserError(
            f"the inputs mix levels of theory: {listing}; pass "
            "--allow-mixed-theory if that is intended"
        )
    plan: list[tuple[Dataset, str, str]] = []
    taken: set[str] = set()
    for dataset in datasets:
        for info in dataset.systems:
            name = info.name
            if name in taken:
                name = f"{Path(dataset.path).stem}_{info.name}"
                suffix = 2
                while name in taken:
                    name = f"{Path(dataset.path).stem}_{info.name}_{suffix}"
                    suffix += 1
                logger.warning(
                    "system %r of %s is renamed %r (name taken)",
                    info.name, dataset.path, name,
                )
            taken.add(name)
            plan.append((dataset, info.name, name))

    def fill(writer):
        for dataset, old, new in plan:
            copy_system(dataset, old, writer, name=new)

    _write_new(output, fill, overwrite)
    for dataset in datasets:
        dataset.close()
    return {new: f"{dataset.path}:{old}" for dataset, old, new in plan}


def export_dataset(
    reference: str | os.PathLike,
    fmt: str,
    output: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """Write a dataset as extended XYZ (one file) or DeePMD npy (a folder)."""
    from deepmd_like.data.ase_format import write_extxyz
    from deepmd_like.data.deepmd_format import write_deepmd

    dataset = Dataset(reference)
    try:
        if fmt == "extxyz":
            return write_extxyz(dataset, output, overwrite)
        if fmt == "deepmd":
            return write_deepmd(dataset, output, overwrite)
        raise UserError(f"unknown export --format {fmt!r}; use extxyz or deepmd")
    finally:
        dataset.close()
