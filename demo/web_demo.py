# Copyright (c) mmrefseg contributors.
"""A local web page: upload an image, type phrases, see their masks.

    pip install -e ".[demo]"     # gradio
    python demo/web_demo.py --config CONFIG --checkpoint CHECKPOINT \
        [--device cuda] [--port 7860]

Then open http://127.0.0.1:7860. One phrase per line; every phrase gets
its own colour in the picture and a row in the legend. The page is served
on this machine only unless ``--host 0.0.0.0`` is given.
"""
import argparse
import sys
from typing import List, Optional, Sequence

import numpy as np


def split_phrases(text: str) -> List[str]:
    """One phrase per non-blank line."""
    return [line.strip() for line in (text or '').splitlines()
            if line.strip()]


def build_demo(inferencer, title: str = 'mmrefseg: segment what you say'):
    """The gradio page around a :class:`RefSegInferencer`.

    Args:
        inferencer (RefSegInferencer): A built inferencer.
        title (str): Page title.

    Returns:
        gradio.Blocks: Call ``.launch()`` on it.
    """
    import gradio as gr

    def segment(image: Optional[np.ndarray], phrases_text: str):
        if image is None:
            raise gr.Error('Upload an image first.')
        phrases = split_phrases(phrases_text)
        if not phrases:
            raise gr.Error('Type at least one phrase (one per line).')
        try:
            result = inferencer(image, phrases, return_vis=True)
        except ValueError as err:  # bad phrase, too long, ...
            raise gr.Error(str(err))
        pred = result['predictions'][0]
        rows = [[p, 'no target' if nt else 'found',
                 '' if nt else f'{s:.2f}',
                 '' if nt else ', '.join(f'{v:.0f}' for v in box)]
                for p, nt, s, box in zip(pred['phrases'], pred['no_target'],
                                         pred['scores'], pred['boxes'])]
        return result['visualization'][0], rows

    with gr.Blocks(title=title) as demo:
        gr.Markdown(f'## {title}\nUpload an image, write one phrase per '
                    'line, press **Segment**.')
        with gr.Row():
            with gr.Column():
                image = gr.Image(type='numpy', label='image',
                                 elem_id='input-image')
                phrases = gr.Textbox(lines=3, label='phrases (one per line)',
                                     elem_id='phrases')
                button = gr.Button('Segment', variant='primary',
                                   elem_id='segment')
            with gr.Column():
                output = gr.Image(type='numpy', label='masks',
                                  elem_id='output-image', format='png')
                table = gr.Dataframe(
                    headers=['phrase', 'result', 'score', 'box (x1,y1,x2,y2)'],
                    label='per phrase', elem_id='table')
        button.click(segment, inputs=[image, phrases],
                     outputs=[output, table])
    return demo


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', required=True)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--device', default=None)
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=7860)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        print('The web demo needs gradio: pip install -e ".[demo]"')
        return 1
    from mmrefseg.apis import RefSegInferencer
    inferencer = RefSegInferencer(model=args.config, weights=args.checkpoint,
                                  device=args.device)
    build_demo(inferencer).launch(server_name=args.host,
                                  server_port=args.port)
    return 0


if __name__ == '__main__':
    sys.exit(main())
