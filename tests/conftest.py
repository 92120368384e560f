"""Shared test set-up: real-component fixtures are plugins (fixtures_*.py beside this file)."""

import os

pytest_plugins = ["fixtures_real", "fixtures_lab"]  # fixtures_lab: the `lab` fixture (issue 2)

# Keep audit records of test runs out of the operator's own log.
os.environ.setdefault("VIRTDECK_AUDIT_LOG", "/tmp/virtdeck-test-audit.jsonl")
