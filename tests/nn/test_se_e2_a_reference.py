"""The descriptor against a plain per-atom implementation of its definition.

The reference below follows the DeePMD-kit definition literally: for every
atom a table of sum(sel) slots (sel[t] per neighbour type, nearest first,
empty slots zero), rows (s, s x/r, s y/r, s z/r) with s = w(r)/r, normalised
by the per-element statistics, filters G from the embedding nets applied to
every slot, T = R^T G / sum(sel) and D = T^T T[:, :axis_neuron]. Neighbours
come from ASE, the switching function and statistics from NumPy.
"""

import numpy as np
import pytest
import torch
from ase.neighborlist import primitive_neighbor_list

from deepmd_like.nn.evaluate import evaluate
from deepmd_like.nn.model import EnergyModel
from deepmd_like.nn.networks import MLP
from deepmd_like.nn.testing import make_batch

TYPE_MAP = ["O", "H"]
SEL = [7, 12]


def _switch(r, rmin, rmax):
    u = (r - rmin) / (rmax - rmin)
    w = u**3 * (-6 * u**2 + 15 * u - 10) + 1
    return np.where(r < rmin, 1.0, np.where(r < rmax, w, 0.0))


def _environment(structure, rcut, rmin):
    """(n_atoms, sum(sel), 4) unnormalised padded environment matrices."""
    pos, cell = structure["positions"], structure["cell"]
    types = np.array([0 if z == 8 else 1 for z in structure["numbers"]])
    i, j, d = primitive_neighbor_list("ijD", structure["pbc"], cell, pos, rcut)
    n = len(pos)
    env = np.zeros((n, sum(SEL), 4))
    for atom in range(n):
        start = 0
        for t, size in enumerate(SEL):
            mine = (i == atom) & (types[j] == t)
            vectors = d[mine]
            r = np.linalg.norm(vectors, axis=1)
            order = np.argsort(r)[:size]
            vectors, r = vectors[order], r[order]
            s = _switch(r, rmin, rcut) / r
            rows = np.concatenate([s[:, None], vectors * (s / r)[:, None]], axis=1)
            env[atom, start : start + len(r)] = rows
            start += size
    return env, types


def _structure(seed):
    rng = np.random.default_rng(seed)
    cell = np.array([[6.0, 0.0, 0.0], [1.0, 5.5, 0.0], [0.5, -0.8, 6.2]])
    while True:
        pos = rng.uniform(0, 1, (12, 3)) @ cell
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + 9 * np.eye(12)
        if d.min() > 0.9:
            break
    return {"positions": pos, "numbers": [8] * 4 + [1] * 8, "cell": cell,
            "pbc": (True, True, True)}


@pytest.mark.parametrize("type_one_side", [True, False])
def test_descriptor_statistics_and_energy_match_the_definition(type_one_side):
    rcut, rmin, axis = 3.5, 1.0, 3
    model = EnergyModel({
        "type_map": TYPE_MAP,
        "descriptor": {"sel": SEL, "rcut": rcut, "rcut_smth": rmin,
                       "neuron": [3, 6, 6], "axis_neuron": axis, "seed": 11,
                       "type_one_side": type_one_side},
        "fitting_net": {"neuron": [5, 5], "seed": 12},
    })
    structures = [_structure(0), _structure(1)]
    model.compute_input_stats([make_batch([s]) for s in structures])

    # Statistics: radial mean, radial and angular deviations per centre type,
    # over every slot (empty slots are zeros).
    envs = [_environment(s, rcut, rmin) for s in structures]
    for t in range(2):
        block = np.concatenate([e[types == t] for e, types in envs])
        radial, angular = block[..., 0], block[..., 1:]
        assert np.isclose(model.descriptor.davg[t, 0].item(), radial.mean(), rtol=1e-12)
        assert np.isclose(model.descriptor.dstd[t, 0].item(), radial.std(), rtol=1e-12)
        assert np.allclose(model.descriptor.dstd[t, 1:].detach().numpy(), angular.std(),
                           rtol=1e-12)
    assert np.all(model.descriptor.davg[:, 1:].detach().numpy() == 0)

    with torch.no_grad():
        model.set_energy_shift(np.array([-3.0, -0.7]))
    structure = structures[1]
    env, types = _environment(structure, rcut, rmin)
    davg = model.descriptor.davg.detach().numpy()
    dstd = model.descriptor.dstd.detach().numpy()
    nets = model.descriptor.embedding.nets
    fitting = model.core.fitting.nets
    expected = []
    for atom in range(len(types)):
        rows = (env[atom] - davg[types[atom]]) / dstd[types[atom]]
        slot_types = np.repeat(np.arange(2), SEL)
        with torch.no_grad():
            g = torch.stack([
                nets[int(t) if type_one_side else 2 * types[atom] + int(t)](
                    torch.tensor([[row[0]]])
                )[0]
                for row, t in zip(rows, slot_types)
            ]).numpy()
        big_t = rows.T @ g / sum(SEL)
        descriptor = big_t.T @ big_t[:, :axis]
        with torch.no_grad():
            energy = fitting[types[atom]](torch.tensor(descriptor.reshape(1, -1)))
        expected.append(float(energy) + [-3.0, -0.7][types[atom]])
    out = evaluate(model, make_batch([structure]), forces=False)
    computed = out["atom_energy"].detach().numpy()
    assert np.allclose(computed, expected, rtol=1e-12, atol=0)


def test_dense_layers_follow_the_residual_rules():
    generator = torch.Generator().manual_seed(0)
    net = MLP(1, [3, 6, 6], 1, "tanh", True, generator, torch.float64)
    x = torch.tensor([[0.3], [-1.2]], dtype=torch.float64)
    layers = [(layer.weight.detach().numpy(), layer.bias.detach().numpy(),
               layer.dt.detach().numpy()) for layer in net.layers]
    h = x.numpy()
    (w0, b0, dt0), (w1, b1, dt1), (w2, b2, dt2), (w3, b3, _) = layers
    h = dt0 * np.tanh(h @ w0 + b0)  # 1 -> 3: no shortcut
    h = np.concatenate([h, h], 1) + dt1 * np.tanh(h @ w1 + b1)  # doubling
    h = h + dt2 * np.tanh(h @ w2 + b2)  # same width
    h = h @ w3 + b3  # linear output
    with torch.no_grad():
        assert np.allclose(net(x).numpy(), h, rtol=1e-14, atol=1e-14)
