# Copyright (c) mmrefseg contributors.
"""A built wheel carries the configs and tools (mmrefseg/.mim, as mim does)."""
import glob
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim', '*.egg-info')


def _shipped_files(folder: str) -> set:
    files = glob.glob(osp.join(ROOT, folder, '**', '*'), recursive=True)
    return {
        osp.relpath(f, ROOT) for f in files
        if osp.isfile(f) and '__pycache__' not in f and not f.endswith('.pyc')
    }


def test_wheel_ships_configs_tools_and_license(tmp_path):
    # Build from a copy so that the checkout gets no build/ or .mim/.
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('setup.py', 'README.md', 'LICENSE'):
        shutil.copy(osp.join(ROOT, name), src / name)
    for name in ('mmrefseg', 'configs', 'tools', 'requirements'):
        shutil.copytree(osp.join(ROOT, name), src / name, ignore=IGNORE)
    out = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '-q', '-w', str(tmp_path / 'dist'),
         str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel, = glob.glob(str(tmp_path / 'dist' / 'mmrefseg-*.whl'))
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = _shipped_files('configs') | _shipped_files('tools')
    assert any(f.startswith('configs/mllmseg/released/') for f in expected)
    assert 'tools/train.py' in expected
    missing = {f for f in expected if f'mmrefseg/.mim/{f}' not in names}
    assert not missing, sorted(missing)
    assert 'mmrefseg/testing/tiny_bpe.py' in names
    assert any(n.endswith('.dist-info/licenses/LICENSE') or
               n.endswith('.dist-info/LICENSE') for n in names)
