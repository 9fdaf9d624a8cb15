"""fcnnzoo: a plugin-based model zoo of convolutional image classifiers.

``import fcnnzoo`` is cheap: it imports neither torch nor any plugin until a
function that needs them is called.
"""

from __future__ import annotations

from fcnnzoo.api import create_augmenter
from fcnnzoo.api import create_model
from fcnnzoo.api import create_quantizer
from fcnnzoo.api import list_augmenters
from fcnnzoo.api import list_datasets
from fcnnzoo.api import list_models
from fcnnzoo.api import list_plugins
from fcnnzoo.api import list_quantizers
from fcnnzoo.api import load
from fcnnzoo.api import load_dataset
from fcnnzoo.api import model_info
from fcnnzoo.api import register_plugin
from fcnnzoo.api import save
from fcnnzoo.api import unregister_plugin
from fcnnzoo.errors import DuplicateNameError
from fcnnzoo.errors import PluginError
from fcnnzoo.errors import PluginWarning
from fcnnzoo.hookspecs import API_VERSION
from fcnnzoo.hookspecs import hookimpl
from fcnnzoo.registry import PluginInfo
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.specs import AugmenterSpec
from fcnnzoo.specs import DatasetSpec
from fcnnzoo.specs import QuantizerSpec

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "ArchitectureSpec",
    "AugmenterSpec",
    "DatasetSpec",
    "DuplicateNameError",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "QuantizerSpec",
    "__version__",
    "create_augmenter",
    "create_model",
    "create_quantizer",
    "hookimpl",
    "list_augmenters",
    "list_datasets",
    "list_models",
    "list_plugins",
    "list_quantizers",
    "load",
    "load_dataset",
    "model_info",
    "register_plugin",
    "save",
    "unregister_plugin",
]
