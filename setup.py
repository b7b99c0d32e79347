# Copyright (c) mmrefseg contributors.
"""Install mmrefseg. Use ``bash tools/setup_env.sh`` for a working stack.

mmcv must be built with its compiled ops against the already installed torch
(``--no-build-isolation``); if pip had to build it as a dependency of this
package in an isolated environment it would silently drop the ops. The setup
script installs it first, so the requirement below is already satisfied.
"""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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
    install_requires=read_requirements('runtime.txt') +
    read_requirements('openmmlab.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'flash': ['flash-attn>=2.6'],
    },
    license='Apache License 2.0',
    zip_safe=False,
)
