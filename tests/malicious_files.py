# Copyright (c) mmrefseg contributors.
"""Hostile files for the loading tests: a payload in every container.

The payload is an object whose ``__reduce__`` is ``os.system('touch
<marker>')``: if any reader ever called it, the marker file would exist.
Containers are what a hostile user can hand us as a checkpoint:

* ``plain``: ``pickle.dump`` (no torch framing at all), named ``.pth``;
* ``legacy``: ``torch.save(..., _use_new_zipfile_serialization=False)``;
* ``zip``: ``torch.save`` (default zip format);
* ``bin``: ``torch.save`` named ``.bin`` (a Hugging Face weights file);
* ``safetensors``: ``pickle.dump`` named ``.safetensors``;
* ``safetensors_zip``: ``torch.save`` named ``.safetensors``.
"""
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict

import torch

CONTAINERS = ('plain', 'legacy', 'zip', 'bin', 'safetensors',
              'safetensors_zip')
_SUFFIX = dict(plain='.pth', legacy='.pth', zip='.pth', bin='.bin',
               safetensors='.safetensors', safetensors_zip='.safetensors')


class Payload:
    """Unpickles to ``os.system('touch <marker>')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def hostile_state(marker: Path,
                  state: Dict[str, torch.Tensor] = None) -> Dict[str, Any]:
    """An MMEngine-looking checkpoint with the payload ahead of the weights.

    The payload comes first so that it is the first global any reader
    meets (a reader that refuses e.g. a storage global first would pass
    this test without ever facing the payload).
    """
    state = state if state is not None else {'w': torch.zeros(2)}
    return OrderedDict(meta=Payload(marker), state_dict=OrderedDict(state))


def write_container(obj: Any, container: str, path: Path) -> Path:
    """Write ``obj`` to ``path`` (suffix chosen by the container if ``path``
    is a directory) the way ``container`` says; returns the file."""
    if path.is_dir():
        path = path / f'hostile_{container}{_SUFFIX[container]}'
    if container in ('plain', 'safetensors'):
        with open(path, 'wb') as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    elif container == 'legacy':
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    elif container in ('zip', 'bin', 'safetensors_zip'):
        torch.save(obj, path)
    else:
        raise ValueError(container)
    return path


def hostile_file(tmp_path: Path, container: str,
                 state: Dict[str, torch.Tensor] = None):
    """``(file, marker)``: a hostile checkpoint in ``tmp_path``."""
    marker = tmp_path / f'PWNED_{container}'
    path = write_container(hostile_state(marker, state), container, tmp_path)
    return path, marker
