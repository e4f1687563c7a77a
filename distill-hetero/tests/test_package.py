import subprocess
import sys
from importlib import metadata

import distill_hetero


def test_version_matches_installed_metadata():
    assert distill_hetero.__version__ == metadata.version("distill-hetero")


def test_cli_reports_version():
    out = subprocess.run(
        [sys.executable, "-m", "distill_hetero", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"distill-hetero {distill_hetero.__version__}"
