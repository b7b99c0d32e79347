# Copyright (c) mmrefseg contributors.
"""mmrefseg: referring expression segmentation with multimodal LLMs.

An MMSegmentation plugin. Importing the package is cheap: components are
registered when their sub-package is imported, which the registries in
:mod:`mmrefseg.registry` do on demand through their ``locations``.
"""
from .utils.env_check import check_openmmlab_stack
from .version import __version__

check_openmmlab_stack()

__all__ = ['__version__']
