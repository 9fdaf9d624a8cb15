"""pytest fixtures for fcnnzoo plugin authors.

Enable them with ``-p fcnnzoo.pytest_plugin`` on the pytest command line or
in the ``addopts`` of the pytest configuration.

``fcnnzoo_plugin`` registers plugin objects for one test::

    def test_my_model(fcnnzoo_plugin):
        fcnnzoo_plugin(MyPlugin(), name="mine")
        fcnnzoo.testing.check_plugin("mine")

Every plugin registered through the fixture is unregistered when the test
ends, whether it passed or not. This module imports neither torch nor any
plugin until a test uses the fixture.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from collections.abc import Iterator

import pytest

__all__ = ["fcnnzoo_plugin"]


@pytest.fixture
def fcnnzoo_plugin() -> Iterator[Callable[..., str]]:
    """Return ``register(plugin, name=None) -> name``, which registers a plugin until the test ends."""
    from fcnnzoo.testing import registered_plugin

    with contextlib.ExitStack() as stack:

        def register(plugin: object, name: str | None = None) -> str:
            return stack.enter_context(registered_plugin(plugin, name))

        yield register
