"""Exceptions and warnings of the plugin registry."""

from __future__ import annotations

__all__ = ["DuplicateNameError", "PluginError", "PluginWarning"]


class PluginError(RuntimeError):
    """A plugin failed to import, register, return valid specs or build a component."""


class DuplicateNameError(ValueError):
    """A bare name matches components of several plugins; a qualified ``plugin:name`` picks one."""


class PluginWarning(UserWarning):
    """A plugin was skipped because it is broken or incompatible, or a plugin setting names no plugin."""
