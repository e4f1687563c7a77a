import subprocess
import sys
from importlib import metadata

import infodiffusion


def test_version_matches_installed_metadata():
    assert infodiffusion.__version__ == metadata.version("infodiffusion")


def test_cli_reports_version():
    out = subprocess.run(
        [sys.executable, "-m", "infodiffusion", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"infodiffusion {infodiffusion.__version__}"
