# Copyright (c) mmrefseg contributors.
# SegLocalVisualizer and the vis backends come from mmseg's registry.
import mmseg.visualization  # noqa: F401
