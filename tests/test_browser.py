"""The web page in a real headless browser (Debian's chromium): a link fills the form and generates.

Skips where no chromium is installed. SLCVAE_SCREENSHOT=PATH also saves a screenshot (docs/serve_page.png).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest
import uvicorn

import slcvae
from slcvae.serving.app import create_app
from tests.test_api import run_dir  # noqa: F401 - the module-scoped trained model

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(
    BROWSER is None, reason="no chromium on PATH (Debian: apt install chromium); the page is tested in CI images that have it"
)
def test_page_generates_in_a_browser(run_dir, tmp_path):  # noqa: F811
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(slcvae.Generator.from_pretrained(run_dir, seed=0)), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        query = urllib.parse.urlencode({"source": "item : hat | color : black | material : linen", "n": 6, "go": 1})
        url = f"http://127.0.0.1:{port}/?{query}"
        flags = [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            # this machine has no network beyond loopback: without these chromium keeps trying Google's hosts
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
        ]
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        assert len(re.findall(r"<li[ >]", dom)) == 6, dom[-2000:]
        assert re.search(r"\d distinct of 6", dom)
        if os.environ.get("SLCVAE_SCREENSHOT"):
            subprocess.run(
                [*flags, "--window-size=1100,700", f"--screenshot={os.environ['SLCVAE_SCREENSHOT']}", url],
                timeout=120,
                check=True,
            )
    finally:
        server.should_exit = True
        thread.join(10)
