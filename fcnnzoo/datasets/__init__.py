"""Loaders of the built-in datasets that are read from a user's folder.

Each loader takes ``data_dir`` and returns a :class:`fcnnzoo.data.DatasetSplits`;
:mod:`fcnnzoo.builtin.datasets` registers them. Importing this package imports
neither torch nor Pillow.
"""
