# Copyright (c) mmrefseg contributors.
__version__ = '0.1.0'
