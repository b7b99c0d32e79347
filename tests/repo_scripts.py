# Copyright (c) mmrefseg contributors.
"""Load the repository's scripts (``tools/``, ``benchmarks/``, ``demo/``) as
modules, so tests call their ``main`` and helpers in-process."""
import importlib.util
import os.path as osp
from types import ModuleType

#: The repository root (the folder holding ``tests/``).
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_script(relpath: str) -> ModuleType:
    """Execute ``REPO/relpath`` as a fresh module and return it.

    Args:
        relpath (str): e.g. ``'tools/test.py'`` or
            ``'benchmarks/train_step_speed.py'``.

    Returns:
        ModuleType: named ``mmrefseg_script_<folders>_<stem>``; not put in
        ``sys.modules``, so every call runs the script's top level again.
    """
    path = osp.join(REPO, relpath)
    if not osp.isfile(path):
        raise FileNotFoundError(f'No script at {path}')
    stem = osp.splitext(relpath)[0].replace('/', '_').replace(osp.sep, '_')
    spec = importlib.util.spec_from_file_location(f'mmrefseg_script_{stem}',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
