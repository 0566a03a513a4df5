"""SPRING natural gradient, damping of ill-conditioned systems, clipping."""

import torch

from deepmd_like.qmc.ansatz import FermiNet, FermiNetOptions
from deepmd_like.qmc.optimizer import (
    Spring,
    SpringOptions,
    _damped_solve,
    clip_local_energies,
    per_walker_log_psi_gradients,
)

torch.set_default_dtype(torch.float64)


def _net():
    torch.manual_seed(0)
    nuclei = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.4]])
    options = FermiNetOptions(n_determinants=2, hidden_one=8, n_layers=1)
    return FermiNet(nuclei, torch.tensor([1.0, 1.0]), 1, 1, options)


def test_per_walker_gradients_match_autograd_walker_by_walker():
    net = _net()
    x = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1))
    gradients, names = per_walker_log_psi_gradients(net, x)
    params = dict(net.named_parameters())
    for w in range(4):
        _, logabs = net(x[w : w + 1])
        grads = torch.autograd.grad(logabs.sum(), [params[n] for n in names])
        expected = torch.cat([g.reshape(-1) for g in grads])
        assert torch.allclose(gradients[w], expected, atol=1e-12)


def test_minsr_step_equals_the_parameter_space_solution():
    # (O^T O + l I)^-1 O^T e = O^T (O O^T + l I)^-1 e: same step either way.
    net = _net()
    x = torch.randn(16, 2, 3, generator=torch.Generator().manual_seed(2))
    energies = torch.randn(16, generator=torch.Generator().manual_seed(3))
    o, _ = per_walker_log_psi_gradients(net, x)
    o = (o - o.mean(0)) / 4.0
    e = -(energies - energies.mean()) / 4.0
    damping = 1e-2
    expected = torch.linalg.solve(o.T @ o + damping * torch.eye(o.shape[1]), o.T @ e)
    before = torch.nn.utils.parameters_to_vector(net.parameters()).clone()
    options = SpringOptions(
        learning_rate=1.0, learning_rate_decay=1e9, damping=damping, momentum=0.0,
        max_norm=1e9,
    )
    Spring(net, options).step(x, energies)
    after = torch.nn.utils.parameters_to_vector(net.parameters())
    assert torch.allclose(after - before, expected, atol=1e-8)


def test_damped_solve_survives_ill_conditioned_systems():
    v = torch.randn(6, 1)
    cases = [
        v @ v.T,  # rank one
        torch.zeros(6, 6),  # all walkers identical
        torch.diag(torch.tensor([1e12, 1, 1e-12, 0, 0, 1.0])),
        torch.full((6, 6), float("nan")),
    ]
    rhs = torch.randn(6)
    for matrix in cases:
        solution = _damped_solve(matrix, rhs, 1e-3)
        assert torch.isfinite(solution).all()
    well = torch.eye(6) * 2.0
    assert torch.allclose(_damped_solve(well, rhs, 0.0), rhs / 2.0)


def test_step_norm_is_bounded():
    net = _net()
    x = torch.randn(16, 2, 3, generator=torch.Generator().manual_seed(2))
    energies = 1e6 * torch.randn(16, generator=torch.Generator().manual_seed(3))
    info = Spring(net, SpringOptions(max_norm=1e-3)).step(x, energies)
    assert info["fisher_norm"] <= 1e-3 * (1 + 1e-9)
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_clipping_bounds_outliers_around_the_median():
    energies = torch.tensor([-1.0, -1.1, -0.9, -1.05, -0.95, -50.0, float("nan")])
    clipped = clip_local_energies(energies, width=5.0)
    finite = energies[torch.isfinite(energies)]
    median = finite.median()
    spread = (torch.where(torch.isfinite(energies), energies, median) - median).abs()
    bound = 5.0 * spread.mean()
    assert torch.isfinite(clipped).all()
    assert (clipped - median).abs().max() <= bound + 1e-12
    assert clipped[0] == -1.0  # typical values are untouched


class _HydrogenTrial(torch.nn.Module):
    """exp(-alpha r): E(alpha) = alpha^2 / 2 - alpha, lowest at alpha = 1."""

    def __init__(self, alpha):
        super().__init__()
        self.register_buffer("nuclei", torch.zeros(1, 3))
        self.register_buffer("charges", torch.ones(1))
        self.alpha = torch.nn.Parameter(torch.tensor(alpha))

    def forward(self, electrons):
        from deepmd_like.qmc.geometry import safe_norm

        r = safe_norm(electrons[:, 0])
        return torch.ones_like(r), -self.alpha * r


def _optimise(make_optimizer, steps):
    from deepmd_like.qmc.hamiltonian import local_energy
    from deepmd_like.qmc.sampler import MetropolisSampler

    trial = _HydrogenTrial(0.6)
    optimizer = make_optimizer(trial)
    generator = torch.Generator().manual_seed(0)
    sampler = MetropolisSampler(trial, generator)
    state = sampler.init(torch.randn(400, 1, 3, generator=generator), 0.5)
    state, _ = sampler.step(state, 30)
    for _ in range(steps):
        state, _ = sampler.step(state, 3)
        energies = local_energy(trial, state.electrons)
        optimizer.step(state.electrons, clip_local_energies(energies))
        state = sampler.init(state.electrons, state.step_size)
    return float(trial.alpha)


def test_spring_finds_the_hydrogen_ground_state():
    options = SpringOptions(learning_rate=0.5, momentum=0.5, max_norm=1.0)
    alpha = _optimise(lambda m: Spring(m, options), 40)
    assert abs(alpha - 1.0) < 0.02


def test_adam_fallback_finds_the_hydrogen_ground_state():
    from deepmd_like.qmc.optimizer import AdamEnergy

    alpha = _optimise(lambda m: AdamEnergy(m, learning_rate=0.03), 80)
    assert abs(alpha - 1.0) < 0.05
