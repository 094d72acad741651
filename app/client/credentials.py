"""Where the command line finds the API's address and key, the way similar tools do.

The key: `--key`, else STATECAST_API_KEY, else the user config file (written by
`statecast login`, and by `statecast serve` when it creates the embedded default's first key),
else the key file of the embedded default (STATECAST_KEY_FILE, `./data/api_key` from the
repository root). The config file lives in the user's config folder, so the command works from
any directory.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.client.api import DEFAULT_URL, ClientError

URL_ENV = "STATECAST_URL"
KEY_ENV = "STATECAST_API_KEY"
CONFIG_FILE_NAME = "config.json"


def user_config_path() -> Path:
    """`$XDG_CONFIG_HOME/statecast/config.json`, else `~/.config/statecast/config.json`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "statecast" / CONFIG_FILE_NAME


def read_user_config() -> dict[str, Any]:
    """The saved `url` and `key`; empty when there is no readable config file."""
    try:
        data = json.loads(user_config_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_user_config(*, url: str, key: str) -> Path:
    """Save the API's address and key for later commands, readable by this user only."""
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "key": key}, handle, indent=2)
        handle.write("\n")
    os.chmod(path, 0o600)
    return path


@dataclass(frozen=True)
class Found:
    value: str
    source: str


def resolve_url(flag: str | None) -> Found:
    """The API's address: --url, else STATECAST_URL, else the config file, else the default."""
    if flag:
        return Found(flag, "--url")
    if os.environ.get(URL_ENV):
        return Found(os.environ[URL_ENV], URL_ENV)
    saved = read_user_config().get("url")
    if isinstance(saved, str) and saved:
        return Found(saved, str(user_config_path()))
    return Found(DEFAULT_URL, "the default")


def resolve_key(flag: str | None, key_file: Path) -> Found:
    """The API key from the first place that has one; a ClientError naming every place tried."""
    if flag:
        return Found(flag, "--key")
    tried = ["--key (not given)"]
    if os.environ.get(KEY_ENV):
        return Found(os.environ[KEY_ENV], KEY_ENV)
    tried.append(f"{KEY_ENV} (not set)")
    config_path = user_config_path()
    saved = read_user_config().get("key")
    if isinstance(saved, str) and saved.strip():
        return Found(saved.strip(), str(config_path))
    tried.append(f"{config_path} ({'no key in it' if config_path.exists() else 'no such file'})")
    try:
        from_file = key_file.read_text().strip()
    except OSError:
        from_file = ""
        tried.append(f"{key_file.absolute()} (no such file)")
    else:
        if from_file:
            return Found(from_file, str(key_file))
        tried.append(f"{key_file.absolute()} (empty)")
    raise ClientError("No API key found; tried " + ", ".join(tried) + ". Pass --key KEY, set "
                      f"{KEY_ENV}, or save one with `statecast login --key KEY`")
