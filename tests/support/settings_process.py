"""Python in a process of its own, with config.settings loaded from an environment the test chooses."""

import os
import subprocess
import sys
from collections.abc import Callable

from tests.support.cluster import BASE_DIR


def python_with_settings(code: str, drop: Callable[[str], bool], **env: str) -> subprocess.CompletedProcess:
    """Run code under config.settings: this process's variables less those `drop` names, plus env."""
    kept = {k: v for k, v in os.environ.items() if not drop(k)}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**kept, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
