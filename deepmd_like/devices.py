"""Choosing the torch device a command runs on."""

from __future__ import annotations

import torch

from deepmd_like.errors import UserError


def resolve_device(name: str | None, where: str) -> torch.device:
    """The torch device called ``name``, checked to be usable here.

    Parameters
    ----------
    name : str or None
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...; None picks CUDA when this
        machine has it, else the CPU.
    where : str
        What named the device (a file and key, or a flag), for messages.

    Raises
    ------
    UserError
        A name torch does not know, or a device this machine does not have.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(
            f"{where}: {name!r} is not a torch device (e.g. cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{where}: {name!r} asked for, but CUDA is not available")
    try:
        torch.empty(0, device=device)  # e.g. cuda:7 on a one-GPU machine
    except (RuntimeError, AssertionError) as err:
        raise UserError(f"{where}: device {name!r} cannot be used: {err}") from None
    return device
