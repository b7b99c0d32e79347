# Copyright (c) mmrefseg contributors.
"""Install mmrefseg. Use ``bash tools/setup_env.sh`` for a working stack.

mmcv must be built with its compiled ops against the already installed torch
(``--no-build-isolation``); if pip had to build it as a dependency of this
package in an isolated environment it would silently drop the ops. The setup
script installs it first, so the requirement below is already satisfied.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
# Shipped inside the package as mmrefseg/.mim/<name>, the layout OpenMMLab
# packages use (mim finds configs there), so that `pip install` users get
# the configs and the train/test/converter scripts.
MIM_FILES = ('configs', 'tools')


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'mmrefseg', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    lines = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def add_mim_extension() -> None:
    """Copy configs/ and tools/ into mmrefseg/.mim when building a package.

    A wheel or sdist gets real copies; an editable install needs none (the
    checkout is on the path), and other setup.py commands leave the tree as
    it is.
    """
    building = {'bdist_wheel', 'sdist', 'build', 'build_py', 'install'}
    if not building & set(sys.argv[1:]):
        return
    mim_path = osp.join(HERE, 'mmrefseg', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
            '__pycache__', '*.pyc'))


add_mim_extension()
setup(
    name='mmrefseg',
    version=read_version(),
    description='Referring expression segmentation with multimodal LLMs '
    '(MLLMSeg, SELF1E, Text4Seg) as an MMSegmentation plugin',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['mmrefseg', 'mmrefseg.*']),
    include_package_data=True,
    package_data={'mmrefseg': [f'.mim/{name}/**/*' for name in MIM_FILES]},
    install_requires=read_requirements('runtime.txt') +
    read_requirements('openmmlab.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'flash': ['flash-attn>=2.6'],
        'demo': read_requirements('demo.txt'),
        'quant': read_requirements('quant.txt'),
    },
    license='Apache License 2.0',
    zip_safe=False,
)
