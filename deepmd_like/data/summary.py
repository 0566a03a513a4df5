"""A readable summary of a dataset: systems, frames, elements, ranges, provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from ase.data import chemical_symbols

from deepmd_like.data.reader import Dataset, locked_h5
from deepmd_like.data.schema import check_block_finite


@dataclass
class SystemSummary:
    """Counts and ranges of one system (energies eV, forces eV/Å, virial eV)."""

    name: str
    formula: str
    n_frames: int
    n_atoms: int
    pbc: list[bool]
    frames_with: dict[str, int]
    energy_range: tuple[float, float] | None
    energy_per_atom_range: tuple[float, float] | None
    force_max: float | None
    force_rms: float | None
    virial_range: tuple[float, float] | None
    attrs: dict = field(default_factory=dict)


def summarise(path: str | os.PathLike) -> tuple[dict, list[SystemSummary]]:
    """Scan a dataset block by block; return (file attributes, system summaries).

    Raises :class:`UserError` naming system, frame and atoms at the first
    non-finite value that a frame claims as data.
    """
    dataset = Dataset(path)
    with locked_h5(dataset.path) as h5:
        root = {key: _plain(value) for key, value in h5.attrs.items()}
    summaries = []
    for info in dataset.systems:
        e_min = e_max = None
        f_max = 0.0
        f_sq = 0.0
        f_count = 0
        v_min = v_max = None
        counts = {"energy": 0, "forces": 0, "virial": 0}
        for start, block in dataset.iter_blocks(info.name, 1024):
            check_block_finite(block, str(dataset.path), info.name, start)
            for label in counts:
                counts[label] += int(block[f"has_{label}"].sum())
            if "energy" in block and block["has_energy"].any():
                energy = block["energy"][block["has_energy"]]
                e_min = min(energy.min(), e_min) if e_min is not None else energy.min()
                e_max = max(energy.max(), e_max) if e_max is not None else energy.max()
            if "forces" in block and block["has_forces"].any():
                forces = block["forces"][block["has_forces"]]
                f_max = max(f_max, float(np.sqrt((forces**2).sum(-1)).max()))
                f_sq += float((forces**2).sum())
                f_count += forces.size
            if "virial" in block and block["has_virial"].any():
                virial = block["virial"][block["has_virial"]]
                v_min = min(virial.min(), v_min) if v_min is not None else virial.min()
                v_max = max(virial.max(), v_max) if v_max is not None else virial.max()
        energy_range = None if e_min is None else (float(e_min), float(e_max))
        summaries.append(
            SystemSummary(
                name=info.name,
                formula=info.formula,
                n_frames=info.n_frames,
                n_atoms=info.n_atoms,
                pbc=info.pbc.tolist(),
                frames_with=counts,
                energy_range=energy_range,
                energy_per_atom_range=None
                if energy_range is None
                else (energy_range[0] / info.n_atoms, energy_range[1] / info.n_atoms),
                force_max=f_max if f_count else None,
                force_rms=float(np.sqrt(f_sq / f_count)) if f_count else None,
                virial_range=None if v_min is None else (float(v_min), float(v_max)),
                attrs=dict(info.attrs),
            )
        )
    dataset.close()
    return root, summaries


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def format_summary(path, root: dict, systems: list[SystemSummary]) -> str:
    """The summary as text for ``dpl data info``."""
    n_frames = sum(s.n_frames for s in systems)
    elements = sorted(
        {el for s in systems for el in _elements(s.formula)},
        key=lambda el: chemical_symbols.index(el),
    )
    lines = [
        f"file: {path}",
        f"format: {root.get('format')} version {root.get('version')}; units: "
        f"energy {root.get('energy_unit')}, length {root.get('length_unit')}, "
        f"forces {root.get('force_unit', 'eV/Angstrom')}, virial "
        f"{root.get('virial_unit', 'eV')}",
        f"systems: {len(systems)}; frames: {n_frames}; elements: {' '.join(elements)}",
    ]
    for s in systems:
        pbc = "periodic " + "".join("xyz"[i] for i in range(3) if s.pbc[i]) if any(
            s.pbc
        ) else "non-periodic"
        lines.append(
            f"- {s.name}: {s.formula}, {s.n_atoms} atoms, {s.n_frames} frames, {pbc}"
        )
        labels = ", ".join(f"{k} {v}/{s.n_frames}" for k, v in s.frames_with.items())
        lines.append(f"    labelled frames: {labels}")
        if s.energy_range:
            lo, hi = s.energy_range
            plo, phi = s.energy_per_atom_range
            lines.append(
                f"    energy [eV]: {lo:.6f} .. {hi:.6f} (per atom {plo:.6f} .. "
                f"{phi:.6f})"
            )
        if s.force_max is not None:
            lines.append(
                f"    forces [eV/Å]: max |F| {s.force_max:.4f}, RMS |F| "
                f"{s.force_rms * 3**0.5:.4f}, RMS per component {s.force_rms:.4f}"
            )
        if s.virial_range:
            lines.append(
                f"    virial [eV]: {s.virial_range[0]:.4f} .. {s.virial_range[1]:.4f}"
            )
        theory = s.attrs.get("level_of_theory", "unknown")
        lines.append(f"    level of theory: {theory}")
        lines.append(f"    source: {s.attrs.get('source', 'unknown')}")
    return "\n".join(lines)


def _elements(formula: str) -> list[str]:
    from ase.formula import Formula

    return list(Formula(formula).count())
