"""Tests that docs/plugins.md documents every hook exactly as fcnnzoo/hookspecs.py defines it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from fcnnzoo import hookspecs
from fcnnzoo import registry

DOC = Path(__file__).parents[1] / "docs" / "plugins.md"
HOOKS = [name for name in vars(hookspecs) if name.startswith("fcnnzoo_")]


def _def_line(function) -> str:
    """Return the ``def ...:`` line of ``function`` as written in its source."""
    lines = inspect.getsource(function).splitlines()
    return next(line for line in lines if line.startswith("def "))


def test_every_hook_is_known():
    assert HOOKS == [kind.hook for kind in registry.KINDS.values()]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_signature_documented(hook):
    text = DOC.read_text()
    signature = _def_line(getattr(hookspecs, hook))
    assert signature in text.splitlines(), f"docs/plugins.md lacks the exact line {signature!r}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_documented(hook):
    docstring = inspect.getdoc(getattr(hookspecs, hook))
    assert docstring
    assert docstring in DOC.read_text()


def test_api_version_documented():
    assert f"The hook API version of this fcnnzoo is `{hookspecs.API_VERSION}`" in DOC.read_text()


@pytest.mark.parametrize("variable", [registry.LOAD_ENV, registry.DISABLE_ENV, registry.STRICT_ENV, hookspecs.API_VERSION_ATTRIBUTE])
def test_settings_documented(variable):
    assert f"`{variable}" in DOC.read_text()


@pytest.mark.parametrize("status", ["ok", "broken", "blocked", "incompatible"])
def test_statuses_documented(status):
    assert f"| `{status}` |" in DOC.read_text()
