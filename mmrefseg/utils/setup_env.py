# Copyright (c) mmrefseg contributors.
"""Register every mmrefseg component and prepare the process for a Runner."""
import datetime
import warnings

from mmengine import DefaultScope

from mmrefseg.fileio import install_mmengine_checkpoint_loader


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import all modules so that they register, and load checkpoints safely.

    Args:
        init_default_scope (bool): make ``mmrefseg`` the current default
            scope (as ``mmseg.utils.register_all_modules`` does for mmseg).
    """
    import mmseg.utils

    import mmrefseg.codecs  # noqa: F401
    import mmrefseg.datasets  # noqa: F401
    import mmrefseg.engine  # noqa: F401
    import mmrefseg.evaluation  # noqa: F401
    import mmrefseg.models  # noqa: F401
    import mmrefseg.testing  # noqa: F401  (configs name its hook, dataset)
    import mmrefseg.visualization  # noqa: F401
    mmseg.utils.register_all_modules(init_default_scope=False)
    install_mmengine_checkpoint_loader()
    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None or \
        not DefaultScope.check_instance_created('mmrefseg')
    if never_created:
        DefaultScope.get_instance('mmrefseg', scope_name='mmrefseg')
        return
    current = DefaultScope.get_current_instance()
    if current.scope_name != 'mmrefseg':
        warnings.warn(f'The current default scope "{current.scope_name}" is '
                      'not "mmrefseg"; a new one named "mmrefseg-<time>" is '
                      'created.')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S%f')
        DefaultScope.get_instance(f'mmrefseg-{stamp}', scope_name='mmrefseg')
