"""Fixtures shared by several test modules."""

import pytest
import torch

from tests.hs_i3d_weights import fixture_state_dict


@pytest.fixture(scope="module")
def fixture_weights() -> dict[str, torch.Tensor]:
    """The released HS-I3D state dict of the compatibility fixture."""
    return fixture_state_dict()
