"""Built-in datasets plugin."""

from __future__ import annotations

from fcnnzoo.hookspecs import hookimpl


@hookimpl
def fcnnzoo_register_datasets():
    return []
