"""Fixtures shared by several test modules."""

import pytest
import torch

from tests.hs_i3d_weights import fixture_state_dict


@pytest.fixture(scope="module")
def fixture_weights() -> dict[str, torch.Tensor]:
    """The released HS-I3D state dict of the compatibility fixture."""
    return fixture_state_dict()


def pytest_terminal_summary(terminalreporter):
    from tests.eaf_schema import VALIDATED

    if VALIDATED:
        terminalreporter.write_line(f"EAF 3.0 schema: {len(VALIDATED)} .eaf files validated "
                                    f"({len(set(VALIDATED))} distinct paths), all valid where the tests asserted it")
