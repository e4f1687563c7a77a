import subprocess
import sys
from importlib import metadata

import semantic_peft


def test_version_matches_installed_metadata():
    assert semantic_peft.__version__ == metadata.version("semantic-peft")


def test_cli_reports_version():
    out = subprocess.run(
        [sys.executable, "-m", "semantic_peft", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"semantic-peft {semantic_peft.__version__}"
