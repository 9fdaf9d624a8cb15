"""Built-in quantizers plugin."""

from __future__ import annotations

from fcnnzoo.hookspecs import hookimpl


@hookimpl
def fcnnzoo_register_quantizers():
    return []
