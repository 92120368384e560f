"""Where virtdeck keeps its files, from the XDG base directories (platformdirs).

- inventory: ``$XDG_CONFIG_HOME/virtdeck/inventory.toml`` (``~/.config/virtdeck/inventory.toml``)
- lab state: ``$XDG_DATA_HOME/virtdeck/lab`` (keys, known_hosts, the lab's inventory.toml)
- audit log: ``$XDG_STATE_HOME/virtdeck/audit.jsonl``
- caches (template images): ``$XDG_CACHE_HOME/virtdeck``
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "virtdeck"
ENV_CONFIG = "VIRTDECK_CONFIG"


def config_dir() -> Path:
    """The per-user configuration directory (not created)."""
    return Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    """The per-user data directory (not created)."""
    return Path(platformdirs.user_data_dir(APP))


def state_dir() -> Path:
    """The per-user state directory, home of the audit log (not created)."""
    return Path(platformdirs.user_state_dir(APP))


def cache_dir() -> Path:
    """The per-user cache directory, home of built template images (not created)."""
    return Path(platformdirs.user_cache_dir(APP))


def lab_dir() -> Path:
    """The lab's state directory: SSH key, known_hosts, PID files, its inventory.

    ``$VIRTDECK_LAB_DIR`` overrides it (a lab sandbox runs with its own directory).
    """
    env = os.environ.get("VIRTDECK_LAB_DIR")
    return Path(env) if env else data_dir() / "lab"


def default_inventory_path() -> Path:
    """The inventory used when neither ``--config`` nor ``$VIRTDECK_CONFIG`` names one."""
    return config_dir() / "inventory.toml"


def resolve_inventory_path(explicit: str | os.PathLike | None = None) -> Path:
    """Pick the inventory file: ``explicit`` (``--config``), then ``$VIRTDECK_CONFIG``,
    then the XDG config file if it exists, then the lab's inventory (the embedded default a
    newcomer drives on day one). Returns the XDG path when none exists, so the error names it.
    """
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    user = default_inventory_path()
    if user.exists():
        return user
    lab = lab_dir() / "inventory.toml"
    if lab.exists():
        return lab
    return user
