# Copyright (c) mmrefseg contributors.
# SegLocalVisualizer and the vis backends come from mmseg's registry.
import mmseg.visualization  # noqa: F401

from .refseg_local_visualizer import (
                                      RefSegLocalVisualizer,
                                      expression_color,
                                      overlay_masks,
)

__all__ = ['RefSegLocalVisualizer', 'expression_color', 'overlay_masks']
