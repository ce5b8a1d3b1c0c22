"""Optional features: a missing extra is one error line naming what to install; the core install needs none."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slcvae.errors import InputError
from slcvae.extras import available, require


@pytest.mark.parametrize(("module", "extra"), [("matplotlib", "plots"), ("fastapi", "serve"), ("krippendorff", "human-eval")])
def test_a_missing_extra_names_itself(monkeypatch, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what Python does for a module that is not installed
    assert not available(module)
    with pytest.raises(InputError, match=rf'^feature: needs {module}: pip install "slcvae\[{extra}\]"$'):
        require(module, "feature")


def test_the_core_package_imports_without_any_extra():
    """The library, the CLI and training import none of the extras' modules until a feature asks for one."""
    blocked = ["fastapi", "uvicorn", "matplotlib", "tensorboard", "krippendorff", "jieba"]
    code = (f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
            "import slcvae, slcvae.cli.main, slcvae.training, slcvae.pipeline.compare, slcvae.evaluation\n"
            "from slcvae.cli.main import app\n"
            "from typer.testing import CliRunner\n"
            "r = CliRunner().invoke(app, ['serve', '--model-dir', '.'])\n"
            "assert r.exit_code == 2 and 'pip install \"slcvae[serve]\"' in r.output, r.output\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
