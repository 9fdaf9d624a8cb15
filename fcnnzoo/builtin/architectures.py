"""Built-in architectures plugin."""

from __future__ import annotations

from fcnnzoo.hookspecs import hookimpl


@hookimpl
def fcnnzoo_register_architectures():
    return []
