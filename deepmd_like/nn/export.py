"""Frozen models: TorchScript files with metadata, and loading any model file.

A frozen model is the TorchScript archive of a :class:`DeepPotCore` with a
JSON metadata record in its ``_extra_files``::

    {"format": "deepmd_like/model", "version": 1, "model_type": "se_e2_a",
     "type_map": [...], "cutoff": 6.0, "precision": "float64",
     "sel": [...], "sel_overflow": "warn", "compressed": false}

Loading one runs no Python code from the file and unpickles no arbitrary
objects (TorchScript archives hold code in TorchScript's own language and
tensors). A training checkpoint is a ``torch.save`` dictionary with keys
``model_config`` (plain dict), ``model_state`` (state dict) and ``type_map``,
read with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import List

import torch
from torch import nn

from deepmd_like.errors import UserError
from deepmd_like.nn.model import EnergyModel, run_core

FORMAT = "deepmd_like/model"
VERSION = 1
_METADATA = "metadata.json"


class FrozenModel(nn.Module):
    """A potential backed by a frozen (TorchScript) core.

    Attributes
    ----------
    cutoff : float, Å
    type_map : list of str
    model_type : str
    metadata : dict
        The file's metadata record.
    """

    def __init__(self, core: torch.jit.ScriptModule, metadata: dict) -> None:
        super().__init__()
        self.core = core
        self.metadata = dict(metadata)
        self.type_map: List[str] = list(metadata["type_map"])
        self.cutoff = float(metadata["cutoff"])
        self.model_type = str(metadata["model_type"])
        self.sel_overflow = str(metadata.get("sel_overflow", "warn"))

    def forward(self, batch: dict) -> dict:
        """Energies of a batch; see :class:`~deepmd_like.nn.model.EnergyModel`.

        TorchScript's optimising executor is off: it swaps in a differently
        rounded graph after its first profiling calls, so a model loaded afresh
        (a restarted MD run) would not give the same float32 forces as one
        that has been running for a while.
        """
        with torch.jit.optimized_execution(False):
            return run_core(self.core, batch, self.type_map, self.cutoff,
                            self.sel_overflow)


@contextlib.contextmanager
def _quiet_jit():
    """Silence TorchScript's deprecation notices (the format is still read)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=r".*torch\.jit.*")
        yield


def _metadata(model: EnergyModel) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_type": model.model_type,
        "type_map": list(model.type_map),
        "cutoff": float(model.cutoff),
        "precision": "float64" if model.dtype == torch.float64 else "float32",
        "sel": list(model.core.sel),
        "sel_overflow": model.sel_overflow,
        "compressed": bool(getattr(model, "compressed", False)),
        "config": model.config.to_dict(),
    }


def freeze(
    model: EnergyModel, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write a model as a frozen TorchScript file (atomically).

    Parameters
    ----------
    model : EnergyModel
        Eager model (compressed or not); it is scripted on CPU.
    path : path of the file to write.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path of the written file.
    """
    from deepmd_like.fileio import atomic_path, refuse_overwrite

    path = refuse_overwrite(path, overwrite)
    core = model.core
    was_training = core.training
    core.eval()
    try:
        with _quiet_jit():
            scripted = torch.jit.script(core)
    finally:
        core.train(was_training)
    extra = {_METADATA: json.dumps(_metadata(model))}
    with atomic_path(path) as tmp, _quiet_jit():
        torch.jit.save(scripted, str(tmp), _extra_files=extra)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata record of a frozen model file, checked."""
    extra = {_METADATA: ""}
    try:
        with _quiet_jit():
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as error:
        raise UserError(
            f"{path}: not a deepmd-like checkpoint or frozen model "
            f"({_short_reason(error)})"
        ) from None
    return _check_metadata(extra[_METADATA], path)


def _check_metadata(text: str | bytes, path) -> dict:
    if not text:
        raise UserError(f"{path}: a TorchScript file without deepmd_like metadata")
    metadata = json.loads(text)
    if metadata.get("format") != FORMAT:
        raise UserError(
            f"{path}: format {metadata.get('format')!r} is not {FORMAT!r}"
        )
    version = int(metadata.get("version", 0))
    if version > VERSION:
        raise UserError(
            f"{path}: model format version {version} is newer than this "
            f"deepmd_like reads (version {VERSION}); upgrade deepmd_like"
        )
    return metadata


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or name.endswith("code/")
                   or "/code/" in name for name in archive.namelist())


def _short_reason(error: BaseException) -> str:
    """One short phrase for why ``torch.load`` refused a file."""
    text = str(error)
    match = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    if match:
        return f"unpickling refused: {match.group(1).strip()}"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    first = first.split(". ")[0].rstrip(".")
    if len(first) > 100:
        first = first[:97] + "..."
    return f"{type(error).__name__}: {first}"


def read_checkpoint_file(path: str | os.PathLike) -> object:
    """``torch.load(weights_only=True)`` of a checkpoint, failing in one short line.

    Raises
    ------
    UserError
        ``PATH is already a frozen model`` for a TorchScript file, else
        ``PATH: not a deepmd-like checkpoint or frozen model (REASON)``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    if _is_torchscript(path):
        raise UserError(
            f"{path} is already a frozen model; give a checkpoint.pt written by "
            "'dpl train'"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file
        raise UserError(
            f"{path}: not a deepmd-like checkpoint or frozen model "
            f"({_short_reason(error)})"
        ) from None


def load_checkpoint_model(path: str | os.PathLike) -> EnergyModel:
    """Rebuild an :class:`EnergyModel` from a training checkpoint."""
    checkpoint = read_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or "model_config" not in checkpoint:
        raise UserError(
            f"{path}: not a training checkpoint (no 'model_config' key)"
        )
    version = checkpoint.get("version", 1)
    if checkpoint.get("format", "deepmd_like/checkpoint") != "deepmd_like/checkpoint":
        raise UserError(f"{path}: format {checkpoint.get('format')!r} is not "
                        "'deepmd_like/checkpoint'")
    if isinstance(version, int) and version > 1:
        raise UserError(f"{path}: checkpoint version {version} is newer than this "
                        "deepmd_like reads (version 1); upgrade deepmd_like")
    model = EnergyModel(checkpoint["model_config"])
    state = checkpoint.get("model_state")
    if state is None:
        raise UserError(f"{path}: checkpoint has no 'model_state'")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"{path}: checkpoint weights do not fit its model "
                        f"configuration ({error})") from None
    return model


def load_model(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Load a potential from a frozen model file or a training checkpoint.

    Parameters
    ----------
    path : path
        A file from ``dpl freeze`` or a checkpoint from ``dpl train``.
    device : str or torch.device, optional
        Default CPU.
    dtype : torch.dtype, optional
        Cast the model's floating-point weights (energy shifts stay float64).

    Returns
    -------
    torch.nn.Module
        A potential (``cutoff``, ``type_map``, ``forward(batch)``) in eval mode.

    Raises
    ------
    UserError
        Missing file, unknown format, or a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    device = torch.device("cpu") if device is None else torch.device(device)
    if _is_torchscript(path):
        extra = {_METADATA: ""}
        try:
            with _quiet_jit():
                core = torch.jit.load(str(path), map_location=device,
                                      _extra_files=extra)
        except RuntimeError as error:
            raise UserError(
                f"{path}: not a deepmd-like checkpoint or frozen model "
                f"({_short_reason(error)})"
            ) from None
        metadata = _check_metadata(extra[_METADATA], path)
        if dtype is not None:
            shift = core.fitting.energy_shift.clone()
            core = core.to(dtype)
            core.fitting.energy_shift = shift.to(device, torch.float64)
        model: nn.Module = FrozenModel(core, metadata)
    else:
        model = load_checkpoint_model(path)
        model = model.to(device)
        if dtype is not None:
            model = model.to(dtype)
    model.eval()
    return model
