from __future__ import annotations

import pytest

import fcnnzoo


@pytest.fixture(scope="session")
def digits_splits():
    """scikit-learn's bundled digits as 28x28 train and test splits, loaded once."""
    return fcnnzoo.load_dataset("digits")
