"""The built-in augmenters beyond ``random_crop``, ``hflip`` and ``gaussian_noise``.

:mod:`fcnnzoo.builtin.augmenters` registers them; :mod:`fcnnzoo.augment`
contains the base class they share.
"""
