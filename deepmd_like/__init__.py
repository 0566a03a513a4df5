"""deepmd-like: learned interatomic potentials, molecular dynamics and neural
wavefunctions in PyTorch.

The public entry points are small on purpose:

- :class:`deepmd_like.data.Dataset` reads the project's HDF5 datasets;
- :func:`deepmd_like.load_model` loads a frozen or checkpointed potential;
- :class:`deepmd_like.calculator.DPLCalculator` is the ASE calculator;
- the ``dpl`` command-line tool (``dpl --help``).
"""

from deepmd_like.errors import UserError

__version__ = "0.1.0"

__all__ = ["UserError", "__version__", "load_model"]


def load_model(path, device=None, dtype=None):
    """Load a potential from a frozen model file or a training checkpoint.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``dpl freeze`` or a ``checkpoint.pt`` of ``dpl train``.
    device : str or torch.device, optional
        Where the model runs; default CPU.
    dtype : torch.dtype, optional
        Floating-point precision; default the model's own.

    Returns
    -------
    torch.nn.Module
        A potential mapping a batch of structures to energies.
    """
    from deepmd_like.nn.export import load_model as _load

    return _load(path, device=device, dtype=dtype)
