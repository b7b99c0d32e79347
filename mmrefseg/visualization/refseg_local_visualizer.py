# Copyright (c) mmrefseg contributors.
"""RefSegLocalVisualizer: every expression's mask in its own colour, with
the expression written beside it.

MMSeg's ``SegLocalVisualizer`` paints one class map with class names; a
referring model predicts K independent masks, one per phrase, that may
overlap or be empty ("no target"). This visualizer paints each mask in the
colour of its row in a legend under the picture, writes "no target" in the
legend instead of painting nothing silently, and puts the ground truth
beside the prediction when there is one.
"""
import textwrap
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.visualization import Visualizer

from mmrefseg.registry import VISUALIZERS

# Distinct, saturated colours (RGB) that stay readable at 50 % opacity.
PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
    (250, 190, 212), (0, 128, 128), (170, 110, 40), (128, 0, 0),
)


def expression_color(k: int) -> Tuple[int, int, int]:
    """Colour (RGB) of the k-th expression, shared by masks and legend."""
    return PALETTE[k % len(PALETTE)]


def overlay_masks(image: np.ndarray, masks: np.ndarray,
                  alpha: float = 0.5) -> np.ndarray:
    """Blend each mask in its expression colour and outline it.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        masks (np.ndarray): (K, H, W) bool/0-1 masks.
        alpha (float): Opacity of the fill.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    out = image.astype(np.float32).copy()
    for k, mask in enumerate(masks):
        mask = np.asarray(mask).astype(bool)
        if not mask.any():
            continue
        color = np.asarray(expression_color(k), dtype=np.float32)
        out[mask] = out[mask] * (1 - alpha) + color * alpha
    out = out.clip(0, 255).astype(np.uint8)
    for k, mask in enumerate(masks):
        mask = np.asarray(mask).astype(np.uint8)
        if not mask.any():
            continue
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, expression_color(k),
                         max(1, round(min(mask.shape) / 200)))
    return out


@VISUALIZERS.register_module()
class RefSegLocalVisualizer(Visualizer):
    """Draw referring-segmentation predictions (and ground truth).

    The picture is ``[ground truth |] prediction`` over a legend with one
    row per expression: its colour, its text, and "no target" where the
    model (or the annotation) says the phrase refers to nothing. Small
    images are enlarged so that the legend stays legible.

    Args:
        name (str): Instance name (MMEngine's ``ManagerMixin``).
        vis_backends (list[dict], optional): e.g. ``LocalVisBackend``.
        save_dir (str, optional): Where the backends write.
        alpha (float): Mask opacity. Defaults to 0.5.
        min_width (int): Panels narrower than this are enlarged to it.
            Defaults to 448.
        font_size (int): Legend font size in pixels. Defaults to 16.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 alpha: float = 0.5,
                 min_width: int = 448,
                 font_size: int = 16,
                 **kwargs) -> None:
        super().__init__(name=name, vis_backends=vis_backends,
                         save_dir=save_dir, **kwargs)
        self.alpha = alpha
        self.min_width = min_width
        self.font_size = font_size

    # -------------------------------------------------------------- drawing
    def _panel(self, image: np.ndarray,
               masks: np.ndarray) -> Tuple[np.ndarray, List[tuple]]:
        """Image with masks, enlarged to ``min_width`` if narrower, and
        where each non-empty mask's number goes (its centre of mass)."""
        h, w = image.shape[:2]
        if w < self.min_width:
            scale = self.min_width / w
            size = (self.min_width, max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            masks = np.stack([
                cv2.resize(np.asarray(m, np.uint8), size,
                           interpolation=cv2.INTER_NEAREST) for m in masks
            ]) if len(masks) else np.zeros((0, size[1], size[0]), np.uint8)
        labels = []
        for k, mask in enumerate(masks):
            ys, xs = np.nonzero(mask)
            if len(xs):
                labels.append((k, float(xs.mean()), float(ys.mean())))
        return overlay_masks(image, masks, self.alpha), labels

    def _legend_rows(self, texts: Sequence[str], notes: Sequence[str],
                     width: int) -> List[Tuple[int, List[str]]]:
        """Wrap each ``text + note`` to the legend width."""
        chars = max(12, int((width - 3 * self.font_size) /
                            (0.6 * self.font_size)))
        rows = []
        for k, (text, note) in enumerate(zip(texts, notes)):
            line = f'{k + 1}. {text}' + (f'  [{note}]' if note else '')
            rows.append((k, textwrap.wrap(line, chars) or ['']))
        return rows

    def draw_expressions(self,
                         image: np.ndarray,
                         texts: Sequence[str],
                         pred_masks: np.ndarray,
                         pred_notes: Optional[Sequence[str]] = None,
                         gt_masks: Optional[np.ndarray] = None,
                         gt_notes: Optional[Sequence[str]] = None
                         ) -> np.ndarray:
        """Compose the picture of one image and its K expressions.

        Args:
            image (np.ndarray): (H, W, 3) uint8 RGB.
            texts (Sequence[str]): The K expressions.
            pred_masks (np.ndarray): (K, H, W) predicted masks.
            pred_notes (Sequence[str], optional): Per expression, a short
                note shown in the legend (e.g. 'no target', 'p=0.91').
            gt_masks (np.ndarray, optional): (K, H, W) ground truth; drawn
                as a left panel when given.
            gt_notes (Sequence[str], optional): Notes on the ground truth
                (e.g. 'GT: no target').

        Returns:
            np.ndarray: The picture, (H', W', 3) uint8 RGB.
        """
        k = len(texts)
        pred_masks = np.asarray(pred_masks).reshape(k, *image.shape[:2])
        drawn = []
        titles = []
        if gt_masks is not None:
            gt_masks = np.asarray(gt_masks).reshape(k, *image.shape[:2])
            drawn.append(self._panel(image, gt_masks))
            titles.append('ground truth')
        drawn.append(self._panel(image, pred_masks))
        titles.append('prediction')
        panels = [panel for panel, _ in drawn]
        gap = 8
        ph, pw = panels[0].shape[:2]
        width = len(panels) * pw + (len(panels) - 1) * gap
        notes = []
        for i in range(k):
            parts = [n[i] for n in (gt_notes, pred_notes) if n and n[i]]
            notes.append('; '.join(parts))
        rows = self._legend_rows(texts, notes, width)
        line_h = int(self.font_size * 1.5)
        title_h = line_h
        legend_h = line_h * sum(len(lines) for _, lines in rows) + line_h // 2
        canvas = np.full((title_h + ph + legend_h, width, 3), 255, np.uint8)
        for i, panel in enumerate(panels):
            x = i * (pw + gap)
            canvas[title_h:title_h + ph, x:x + pw] = panel
        # Colour swatches; the text itself is drawn by matplotlib below.
        y = title_h + ph + line_h // 4
        sw = self.font_size
        positions, strings = [], []
        for i, title in enumerate(titles):
            positions.append((i * (pw + gap) + 4, 2))
            strings.append(title)
        # Each mask's number on the mask, tying it to its legend row.
        numbers, number_xy = [], []
        for i, (_, labels) in enumerate(drawn):
            for row_k, x, yc in labels:
                numbers.append(str(row_k + 1))
                number_xy.append((i * (pw + gap) + x, title_h + yc))
        for row_k, lines in rows:
            canvas[y + 2:y + 2 + sw, 6:6 + sw] = expression_color(row_k)
            for line in lines:
                positions.append((12 + sw, y))
                strings.append(line)
                y += line_h
        self.set_image(canvas)
        self.draw_texts(strings,
                        np.asarray(positions, dtype=np.float32),
                        colors='black',
                        # matplotlib sizes are points: pixels * 72 / dpi
                        font_sizes=self.font_size * 72 / self.dpi,
                        vertical_alignments='top',
                        horizontal_alignments='left')
        if numbers:
            self.draw_texts(numbers,
                            np.asarray(number_xy, dtype=np.float32),
                            colors='black',
                            font_sizes=self.font_size * 72 / self.dpi,
                            vertical_alignments='center',
                            horizontal_alignments='center',
                            bboxes=dict(facecolor='white', alpha=0.8,
                                        pad=0.2, edgecolor='none'))
        return self.get_image()

    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       **kwargs) -> np.ndarray:
        """Draw a predicted sample (MMEngine's visualizer interface).

        Args:
            name (str): Image identifier for the backends.
            image (np.ndarray): (H, W, 3) uint8 RGB at the sample's
                original size.
            data_sample: A ``RefSegDataSample`` with ``texts`` and
                predictions (and, optionally, ground truth).
            draw_gt (bool): Draw the ground-truth panel when present.
            draw_pred (bool): Draw the prediction panel.
            show (bool): Show the picture in a window.
            wait_time (float): Seconds to show it.
            out_file (str, optional): Write the picture here instead of
                to the backends.
            step (int): Global step for the backends.

        Returns:
            np.ndarray: The picture (RGB).
        """
        from .sample_fields import sample_drawing_fields
        fields = sample_drawing_fields(data_sample, image.shape[:2])
        pred = fields['pred_masks'] if draw_pred else \
            np.zeros_like(fields['pred_masks'])
        gt = fields['gt_masks'] if draw_gt else None
        drawn = self.draw_expressions(
            image, fields['texts'], pred, fields['pred_notes'] if draw_pred
            else None, gt, fields['gt_notes'] if gt is not None else None)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            cv2.imwrite(out_file, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        else:
            self.add_image(name, drawn, step)
        return drawn
