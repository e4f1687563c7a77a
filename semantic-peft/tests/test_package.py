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


def test_configs_are_shipped_inside_the_package():
    from shared_utils.config import packaged_configs, resolve_config_path

    shipped = packaged_configs("semantic_peft")
    for name in ("default", "tiny", "reproduce", "paper/reproduce", "paper/llama2_7b_lora"):
        assert name in shipped
    # the accelerate launcher file ships too, but is not offered as a run config
    assert "accelerate/multi_gpu" not in shipped
    assert resolve_config_path("semantic_peft", "accelerate/multi_gpu").is_file()
