"""The layering of the product code (`.importlinter`): leo_optima.core <- tenants <- optimizer <-
billing <- the wiring (settings, urls, asgi, wsgi, celery). import-linter counts imports inside
functions and under TYPE_CHECKING too, so no circle can hide there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())", "--config", str(ROOT / ".importlinter"), "--no-cache"]


def _lint() -> subprocess.CompletedProcess[str]:
    return subprocess.run(LINT, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_layering_contract_is_kept() -> None:
    result = _lint()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_an_import_up_the_layers_breaks_it_even_inside_a_function() -> None:
    probe = ROOT / "tenants" / "_layer_probe.py"
    probe.write_text("def reach_up():\n    from optimizer import models  # tenants may not import optimizer\n"
                     "    return models\n")
    try:
        result = _lint()
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert "tenants._layer_probe -> optimizer.models" in result.stdout, result.stdout[-3000:]
