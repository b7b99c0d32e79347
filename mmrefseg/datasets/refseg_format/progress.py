# Copyright (c) mmrefseg contributors.
"""A progress callback for the converters and the checker on long files."""
from typing import Callable, Optional

from mmengine.utils import ProgressBar


def progress_callback(total: int,
                      steps: int = 50,
                      min_total: int = 1000) -> Optional[Callable[[], None]]:
    """A ``progress()`` callback that advances a bar in ``steps`` jumps.

    mmengine's bar prints on every update; jumping keeps a log file to
    about ``steps`` lines however long the input is.

    Args:
        total (int): Number of calls expected.
        steps (int): Updates shown.
        min_total (int): No bar (None) for inputs shorter than this.

    Returns:
        Callable | None: Call once per item.
    """
    if total < min_total:
        return None
    bar, every = ProgressBar(total), max(1, total // steps)
    count = [0, 0]  # calls so far, calls shown

    def update() -> None:
        count[0] += 1
        if count[0] % every == 0 or count[0] == total:
            bar.update(count[0] - count[1])
            count[1] = count[0]

    return update
