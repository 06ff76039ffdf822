"""The README's two set-up commands stay the ones CI runs and the ones that work."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(python3 -m venv .venv && [^\n]+)\n```", text)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    train, test = commands
    assert train.endswith(".venv/bin/pfdtrain train")
    assert "torch==2.13.0" in train and "torch==2.13.0" in test  # the CPU build, not CUDA
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines()


def test_readme_configuration_reference_is_current():
    from pfdtrain.config.training_config import config_reference_markdown
    assert config_reference_markdown() in (ROOT / "README.md").read_text()
