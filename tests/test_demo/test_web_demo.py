# Copyright (c) mmrefseg contributors.
"""The web demo driven in a real headless Chromium (Debian's chromium and
chromium-driver; nothing is downloaded). Skipped, with the reason printed,
only where gradio, selenium or the browser are not installed."""
import importlib.util
import os
import os.path as osp
import shutil
import socket
import urllib.request

import cv2
import numpy as np
import pytest
from repo_scripts import REPO, load_script

CONFIG = osp.join(REPO, 'configs/self1e/self1e_tiny_synth.py')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
DRIVER = shutil.which('chromedriver')

missing = [name for name, ok in (
    ('gradio', importlib.util.find_spec('gradio') is not None),
    ('selenium', importlib.util.find_spec('selenium') is not None),
    ('chromium', CHROMIUM is not None),
    ('chromedriver', DRIVER is not None)) if not ok]
pytestmark = pytest.mark.skipif(
    bool(missing), reason=f'browser test needs {", ".join(missing)} '
    '(pip install -e ".[demo]" selenium; apt-get install chromium '
    'chromium-driver)')


def _load_demo():
    return load_script('demo/web_demo.py')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_upload_type_segment_in_a_real_browser(tmp_path):
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from mmrefseg.apis import RefSegInferencer
    from mmrefseg.visualization import expression_color

    # Threshold 0: every pixel is foreground, so the masks are known.
    inferencer = RefSegInferencer(
        CONFIG, device='cpu', cfg_options={'model.test_cfg.threshold': 0.0},
        show_progress=False)
    demo = _load_demo().build_demo(inferencer)
    port = _free_port()
    demo.launch(server_name='127.0.0.1', server_port=port,
                prevent_thread_lock=True, quiet=True)
    image = np.zeros((96, 128, 3), np.uint8)
    image[20:70, 30:90] = (200, 200, 200)
    path = str(tmp_path / 'upload.png')
    cv2.imwrite(path, image)
    options = webdriver.ChromeOptions()
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                '--window-size=1280,1000'):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(f'http://127.0.0.1:{port}/')
        wait = WebDriverWait(driver, 120)
        upload = '#input-image input[type=file]'
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, upload))
        driver.find_element(By.CSS_SELECTOR, upload).send_keys(path)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR,
                                             '#input-image img'))
        driver.find_element(By.CSS_SELECTOR, '#phrases textarea').send_keys(
            'the grey box')
        driver.find_element(By.CSS_SELECTOR, '#segment').click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR,
                                             '#output-image img'))
        src = driver.find_element(By.CSS_SELECTOR,
                                  '#output-image img').get_attribute('src')
        table = driver.find_element(By.CSS_SELECTOR, '#table').text
        driver.save_screenshot(str(tmp_path / 'page.png'))
        with urllib.request.urlopen(src, timeout=30) as response:
            data = np.frombuffer(response.read(), np.uint8)
    finally:
        driver.quit()
        demo.close()
    out = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    assert out.shape != image.shape  # a new picture, not the input back
    # mask-coloured pixels: the black background blended with colour 0
    blended = (np.asarray(expression_color(0)) * 0.5).astype(int)
    close = (np.abs(out.astype(int) - blended).max(-1) <= 3).sum()
    assert close > 1000
    assert 'the grey box' in table and 'found' in table
