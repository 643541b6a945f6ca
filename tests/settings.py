"""The test suite's settings: config.settings, with the values a test run supplies when not given.

The settings refuse to start without a SECRET_KEY (production-safe defaults). `make test`
sets one in TEST_ENV; a direct `python -m pytest` gets the same here. pytest-django imports
this module before any conftest, and every process a test starts inherits the environment.
"""

import os

os.environ.setdefault("SECRET_KEY", "offload-test-secret-key-not-for-production-0123456789")
os.environ.setdefault("DEBUG", "0")

from config.settings import *  # noqa: F403
