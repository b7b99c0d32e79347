# Copyright (c) mmrefseg contributors.
"""Import-time checks of the OpenMMLab stack with actionable messages."""
from mmengine.utils import digit_version

MMCV_MIN = '2.0.0rc4'
MMCV_MAX = '2.2.0'
INSTALL_HINT = (
    'Install it the way README.md says: `bash tools/setup_env.sh` builds '
    'mmcv 2.1.0 with its CPU/CUDA ops against the installed torch '
    '(`MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0`).')


def check_openmmlab_stack() -> None:
    """Fail early and clearly when mmcv is missing, too new or without ops.

    mmseg 1.2.2 and mmdet 3.3.0 assert ``mmcv < 2.2.0`` deep inside their own
    imports, and an mmcv built in an isolated PEP 517 environment silently
    ships without ``mmcv._ext``; both surface later as confusing errors.

    Raises:
        ImportError: if mmcv is absent, outside ``[2.0.0rc4, 2.2.0)``, or lacks
            its compiled ops.
    """
    try:
        import mmcv
    except ImportError as e:  # pragma: no cover (broken installs only)
        raise ImportError(f'mmrefseg needs mmcv. {INSTALL_HINT}') from e
    version = digit_version(mmcv.__version__)
    if not digit_version(MMCV_MIN) <= version < digit_version(MMCV_MAX):
        raise ImportError(
            f'mmcv=={mmcv.__version__} is installed, but mmsegmentation 1.2.2 '
            f'and mmdet 3.3.0 need {MMCV_MIN} <= mmcv < {MMCV_MAX}. '
            f'{INSTALL_HINT}')
    try:
        import mmcv._ext  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f'mmcv {mmcv.__version__} has no compiled ops (mmcv._ext); it was '
            f'probably built in an isolated environment without torch. '
            f'{INSTALL_HINT}') from e
