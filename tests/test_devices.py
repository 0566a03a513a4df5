"""Device names given by users: usable ones pass, others are one clear error."""

import pytest
import torch

from deepmd_like.devices import resolve_device
from deepmd_like.errors import UserError


def test_cpu_and_the_default_are_usable():
    assert resolve_device("cpu", "--device") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None, "--device").type == expected


def test_an_unknown_name_is_refused_with_where_it_came_from():
    with pytest.raises(UserError, match=r"deck.yaml: device: 'tpu9' is not a torch"):
        resolve_device("tpu9", "deck.yaml: device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(UserError, match="CUDA is not available"):
        resolve_device("cuda", "--device")


@pytest.mark.cuda
def test_a_gpu_index_beyond_the_machine_is_refused():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    with pytest.raises(UserError, match="cannot be used"):
        resolve_device(f"cuda:{torch.cuda.device_count()}", "--device")
