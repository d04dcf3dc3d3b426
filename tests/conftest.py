"""Shared test configuration: one hypothesis profile, explicit random generators."""

import numpy as np
import pytest
from hypothesis import settings

# No wall-clock deadline (CI machines are shared and slow); a fixed example database
# is not kept, and derandomize makes every run test the same examples, so a failure
# in CI can be reproduced locally.
settings.register_profile("matgrad", deadline=None, max_examples=60, derandomize=True, database=None)
settings.load_profile("matgrad")


@pytest.fixture
def rng():
    """A fresh seeded generator for each test."""
    return np.random.default_rng(1234)
