"""Fully connected networks of the Deep Potential family.

Both the embedding nets of a descriptor and the fitting nets are stacks of
dense layers with a smooth activation and an identity shortcut wherever a
layer keeps its width (``y = x + act(W x + b)``) or doubles it
(``y = [x, x] + act(W x + b)``). With ``resnet_dt`` the residual branch is
scaled by a learnable "timestep" vector, ``y = x + dt * act(W x + b)``.

Weights start from a normal distribution with standard deviation
``1 / sqrt(n_in + n_out)``, biases from a unit normal, and timesteps near
0.1, drawn from an explicit seed so that a model can be rebuilt exactly.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from deepmd_like.errors import UserError

ACTIVATIONS = ("tanh", "gelu", "relu", "softplus", "sigmoid", "linear")


def _activate(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "tanh":
        return torch.tanh(x)
    if kind == "gelu":
        return torch.nn.functional.gelu(x)
    if kind == "relu":
        return torch.relu(x)
    if kind == "softplus":
        return torch.nn.functional.softplus(x)
    if kind == "sigmoid":
        return torch.sigmoid(x)
    return x


def check_activation(kind: str, key: str) -> str:
    """Return ``kind`` if it is a known activation, else raise naming ``key``."""
    if kind not in ACTIVATIONS:
        raise UserError(
            f"{key}: unknown activation function {kind!r}; "
            f"choose one of {', '.join(ACTIVATIONS)}"
        )
    return kind


class DenseLayer(nn.Module):
    """One dense layer with an optional identity shortcut.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    activation : str
        One of :data:`ACTIVATIONS`; ``"linear"`` for an output layer.
    resnet : bool
        Add the shortcut when the width is kept or doubled.
    resnet_dt : bool
        Scale the residual branch by a learnable vector.
    generator : torch.Generator
        Source of the initial weights.
    dtype : torch.dtype
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: str,
        resnet: bool,
        resnet_dt: bool,
        generator: torch.Generator,
        dtype: torch.dtype,
        bias_mean: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_in = n_in
        self.n_out = n_out
        self.activation = activation
        if resnet and n_out == n_in:
            self.shortcut = 1
        elif resnet and n_out == 2 * n_in:
            self.shortcut = 2
        else:
            self.shortcut = 0
        std = 1.0 / math.sqrt(n_in + n_out)
        weight = torch.randn(n_in, n_out, generator=generator, dtype=torch.float64)
        bias = torch.randn(n_out, generator=generator, dtype=torch.float64)
        self.weight = nn.Parameter((weight * std).to(dtype))
        self.bias = nn.Parameter((bias + bias_mean).to(dtype))
        self.use_dt = bool(resnet_dt)
        dt = 0.1 + 0.001 * torch.randn(n_out, generator=generator, dtype=torch.float64)
        # A timestep only exists with resnet_dt; an unused parameter would
        # upset distributed training.
        if self.use_dt:
            self.dt = nn.Parameter(dt.to(dtype))
        else:
            self.register_buffer("dt", torch.ones(n_out, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_in == 1:
            # A rank-one product is cheaper as a broadcast than as a matmul.
            y = x * self.weight[0] + self.bias
        else:
            y = torch.addmm(self.bias, x.reshape(-1, self.n_in), self.weight)
            y = y.view(list(x.shape[:-1]) + [self.n_out])
        y = _activate(y, self.activation)
        if self.use_dt:
            y = y * self.dt
        if self.shortcut == 1:
            y = y + x
        elif self.shortcut == 2:
            # Same as y + cat([x, x]) without building the concatenation.
            shape = list(y.shape)
            half = list(x.shape[:-1]) + [2, self.n_in]
            y = (y.view(half) + x.unsqueeze(-2)).view(shape)
        return y


class MLP(nn.Module):
    """A stack of :class:`DenseLayer` s, optionally ending in a linear output.

    Parameters
    ----------
    n_in : int
        Input width.
    neuron : sequence of int
        Hidden widths.
    n_out : int or None
        Width of a final linear layer; None for none (an embedding net).
    activation : str
    resnet_dt : bool
    generator : torch.Generator
    dtype : torch.dtype
    """

    def __init__(
        self,
        n_in: int,
        neuron: Sequence[int],
        n_out: int | None,
        activation: str,
        resnet_dt: bool,
        generator: torch.Generator,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        layers = []
        width = n_in
        for n in neuron:
            layers.append(
                DenseLayer(width, int(n), activation, True, resnet_dt, generator, dtype)
            )
            width = int(n)
        if n_out is not None:
            layers.append(
                DenseLayer(width, n_out, "linear", False, False, generator, dtype)
            )
            width = n_out
        self.layers = nn.ModuleList(layers)
        self.n_out = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
