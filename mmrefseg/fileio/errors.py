# Copyright (c) mmrefseg contributors.
"""The two ways a file we read can be refused.

Both subclass :class:`ValueError`; :class:`UnsafeFileError` is also a
:class:`pickle.UnpicklingError`, so code written against the older
per-reader errors (all of which were one of the two) still catches it.
"""
import pickle


class UnsafeFileError(pickle.UnpicklingError, ValueError):
    """The file asks for something that could run code, and was refused.

    Raised for a pickle global outside the reader's allow-list (the message
    names the file and the global), a restricted ``getattr``, a persistent
    id where none may occur, a TorchScript archive, or a pickle/zip
    disguised as a ``.safetensors`` file. Raised *before* the object is
    called, so nothing in the file has run.
    """


class NotACheckpointError(ValueError):
    """The file is empty, text, truncated or otherwise not a checkpoint.

    The message says "not a checkpoint" and names the path. (A REFER
    annotation pickle that cannot be read raises a plain ``ValueError``
    saying "not a pickle".)
    """
