import subprocess
import sys
from importlib import metadata

import lemoe


def test_version_matches_installed_metadata():
    assert lemoe.__version__ == metadata.version("lemoe")


def test_cli_reports_version():
    out = subprocess.run([sys.executable, "-m", "lemoe", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"lemoe {lemoe.__version__}"
