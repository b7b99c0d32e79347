# Copyright (c) mmrefseg contributors.
from .dsff import DSFFNeck

__all__ = ['DSFFNeck']
