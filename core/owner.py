"""The server owner's grants: the one place that decides what a workflow may reach.

ComfyUI's ``/prompt`` has no authentication and a shared workflow file is untrusted input, so a
widget can *ask* for a download, remote code or a folder but only the server owner can *grant*
it, at startup, outside any workflow:

- environment variables ``LLM_ASSIST_ALLOW_DOWNLOAD=1``, ``LLM_ASSIST_TRUST_REMOTE_CODE=1``,
  ``LLM_ASSIST_ALLOWED_DIRS`` (folders separated by ``os.pathsep``), ``LLM_ASSIST_SERVER_HOSTS``
  (comma-separated ``host`` or ``host:port``), ``LLM_ASSIST_API_KEY_ENV`` (the NAME of the
  variable that holds a model-server API key), ``LLM_ASSIST_API_KEY_FILE``,
  ``LLM_ASSIST_RESTRICT_PATHS`` (0/1, default: on inside ComfyUI, off standalone);
- or ``llm_assist.yaml`` with the same keys in lower case without the prefix
  (``allow_download``, ``trust_remote_code``, ``allowed_dirs``, ``server_hosts``,
  ``api_key_env``, ``api_key_file``, ``restrict_paths``), found at ``$LLM_ASSIST_SETTINGS`` or
  beside ComfyUI's ``extra_model_paths.yaml`` (ComfyUI's own folder, then its base directory).
  An environment variable overrides the same key in the file.

Standalone (CLI, tests) the person running the command is the owner: CLI flags grant through
``override()``, and user paths are not restricted unless ``restrict_paths`` is on.

Light module: no torch, no yaml unless a settings file exists.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from . import host

ENV_PREFIX = "LLM_ASSIST_"
ENV_SETTINGS = "LLM_ASSIST_SETTINGS"
SETTINGS_FILE = "llm_assist.yaml"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "ip6-localhost")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class NotGranted(ValueError):
    """A workflow asked for something only the server owner can grant."""


@dataclass(frozen=True)
class OwnerSettings:
    allow_download: bool = False
    trust_remote_code: bool = False
    extra_dirs: tuple[Path, ...] = ()  # read/write grants beyond ComfyUI's input and output folders
    server_hosts: tuple[str, ...] = ()  # model-server hosts allowed beyond loopback ("host" or "host:port")
    api_key_env: str | None = None  # NAME of the environment variable holding a model-server API key
    api_key_file: Path | None = None
    restrict_paths: bool | None = None  # None: restricted inside ComfyUI, free standalone
    source: str = "defaults"  # where the settings came from (for messages and logs)


# key -> (environment variable, setting name shown in messages)
KEYS = {
    "allow_download": "LLM_ASSIST_ALLOW_DOWNLOAD",
    "trust_remote_code": "LLM_ASSIST_TRUST_REMOTE_CODE",
    "allowed_dirs": "LLM_ASSIST_ALLOWED_DIRS",
    "server_hosts": "LLM_ASSIST_SERVER_HOSTS",
    "api_key_env": "LLM_ASSIST_API_KEY_ENV",
    "api_key_file": "LLM_ASSIST_API_KEY_FILE",
    "restrict_paths": "LLM_ASSIST_RESTRICT_PATHS",
}


def how_to_grant(key: str, example: str = "1") -> str:
    """'set LLM_ASSIST_X=... in the environment of the ComfyUI server (or x: ... in llm_assist.yaml)'."""
    yaml_example = {"1": "true"}.get(example, example)
    return (f"the server owner sets {KEYS[key]}={example} in the environment that starts ComfyUI "
            f"(or {key}: {yaml_example} in {SETTINGS_FILE}, see README 'Owner settings') and restarts it")


# ---------------------------------------------------------------- reading the settings
def _bool(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{where} is {value!r}, not a yes/no value: use 1 or 0 (true/false)")


def _list(value, sep: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(sep) if part.strip()]


def settings_file() -> Path | None:
    """The settings file in use: $LLM_ASSIST_SETTINGS, else llm_assist.yaml beside ComfyUI's
    extra_model_paths.yaml (ComfyUI's folder, then its base directory); None when there is none."""
    env = os.environ.get(ENV_SETTINGS, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ValueError(f"{ENV_SETTINGS} is {env!r}, which is not a file: fix the path or unset it")
        return path
    for folder in host.comfyui_dirs():
        candidate = folder / SETTINGS_FILE
        if candidate.is_file():
            return candidate
    return None


def _read_yaml(path: Path) -> dict:
    import yaml  # ComfyUI ships PyYAML; only needed when a settings file exists

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"owner settings file {path} could not be read ({exc}): fix it or remove it") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"owner settings file {path} must be a mapping of keys {sorted(KEYS)}, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(KEYS))
    if unknown:
        raise ValueError(f"owner settings file {path} has unknown keys {unknown}: use only {sorted(KEYS)}")
    return data


def load_settings(environ=None) -> OwnerSettings:
    """Read the settings file and the environment now (environment wins per key)."""
    environ = os.environ if environ is None else environ
    path = settings_file()
    raw = dict(_read_yaml(path)) if path is not None else {}
    base = path.parent if path is not None else Path.cwd()
    sources = [str(path)] if path is not None else []
    from_env = {key: environ[var] for key, var in KEYS.items() if var in environ}
    if from_env:
        sources.append("environment")
    where = {key: (KEYS[key] if key in from_env else f"{key} in {path}") for key in KEYS}
    raw.update(from_env)
    dir_base = {key: (Path.cwd() if key in from_env else base) for key in KEYS}

    def path_of(text: str, key: str) -> Path:
        p = Path(os.path.expanduser(text))
        return (p if p.is_absolute() else dir_base[key] / p).resolve()

    hosts = tuple(h.lower() for h in _list(raw.get("server_hosts"), ","))
    for h in hosts:
        if "/" in h or "@" in h or " " in h:
            raise ValueError(f"{where['server_hosts']} has {h!r}: give a host name or host:port, no scheme or path")
    restrict = raw.get("restrict_paths")
    key_file = str(raw.get("api_key_file") or "").strip()
    return OwnerSettings(
        allow_download=_bool(raw.get("allow_download", False), where["allow_download"]),
        trust_remote_code=_bool(raw.get("trust_remote_code", False), where["trust_remote_code"]),
        extra_dirs=tuple(path_of(d, "allowed_dirs") for d in _list(raw.get("allowed_dirs"), os.pathsep)),
        server_hosts=hosts,
        api_key_env=str(raw.get("api_key_env") or "").strip() or None,
        api_key_file=path_of(key_file, "api_key_file") if key_file else None,
        restrict_paths=None if restrict is None or str(restrict).strip() == "" else _bool(restrict, where["restrict_paths"]),
        source=" + ".join(sources) or "defaults",
    )


_lock = threading.Lock()
_cached: OwnerSettings | None = None
_overrides: list[dict] = []


def settings() -> OwnerSettings:
    """The owner's settings (read once, then cached; ``reload()`` re-reads), with any override."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = load_settings()
        current = _cached
        for fields_ in _overrides:
            current = replace(current, **fields_)
    return current


def reload() -> OwnerSettings:
    global _cached
    with _lock:
        _cached = None
    return settings()


@contextlib.contextmanager
def override(**changes):
    """Grant (or withhold) for the duration of the block: the standalone CLI, where the user is the
    owner, and tests. ``extra_dirs`` may be given as paths or strings."""
    known = {f.name for f in fields(OwnerSettings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"override() got unknown settings {unknown}: use {sorted(known)}")
    if "extra_dirs" in changes:
        changes["extra_dirs"] = tuple(Path(d).resolve() for d in changes["extra_dirs"])
    if "server_hosts" in changes:
        changes["server_hosts"] = tuple(str(h).lower() for h in changes["server_hosts"])
    with _lock:
        _overrides.append(changes)
    try:
        yield settings()
    finally:
        with _lock:
            _overrides.remove(changes)


# ---------------------------------------------------------------- downloads and remote code
def check_load_grants(allow_download: bool, trust_remote_code: bool, what: str = "the loader") -> None:
    """Refuse a loader's ``allow_download`` / ``trust_remote_code`` the owner has not granted."""
    if not (allow_download or trust_remote_code):
        return  # nothing asked: never read the settings (a broken file must not break imports)
    current = settings()
    if allow_download and not current.allow_download:
        raise NotGranted(
            f"allow_download is on in {what}, but the server owner has not granted downloads: switch "
            f"allow_download off and put the model in the models folder, or {how_to_grant('allow_download')}"
        )
    if trust_remote_code and not current.trust_remote_code:
        raise NotGranted(
            f"trust_remote_code is on in {what}, but the server owner has not granted running code from "
            f"model folders: switch trust_remote_code off, or {how_to_grant('trust_remote_code')}"
        )


# ---------------------------------------------------------------- model servers
def is_loopback(hostname: str) -> bool:
    """True for localhost and loopback IP addresses (127.0.0.0/8, ::1); not for names like 127.x.example."""
    import ipaddress

    name = hostname.strip("[]").lower()
    if name in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_server_url(url: str, what: str = "server_url") -> str:
    """``url`` if its host may be reached: loopback always, any other host only when listed in
    ``server_hosts`` (as ``host`` or ``host:port``). Returns the URL stripped of spaces."""
    text = str(url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} is {text[:80]!r}: give an http(s) URL such as http://127.0.0.1:8080/v1")
    if parts.username or parts.password:
        raise ValueError(f"{what} has a user name or password in it: remove it; an API key comes from the owner's settings ({KEYS['api_key_env']})")
    hostname = parts.hostname.lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{what} {text[:80]!r} has an invalid port: give a number 1-65535") from None
    if is_loopback(hostname):
        return text
    allowed = settings().server_hosts
    shown = f"[{hostname}]" if ":" in hostname else hostname
    if hostname in allowed or shown in allowed or f"{shown}:{port}" in allowed:
        return text
    raise NotGranted(
        f"{what} {text[:80]!r} is not on this machine and its host {shown}:{port} is not one the server "
        f"owner allows: use a loopback address (127.0.0.1), or {how_to_grant('server_hosts', shown)}"
    )


def api_key() -> str | None:
    """The model-server API key the owner configured (from ``api_key_env`` or ``api_key_file``)."""
    current = settings()
    if current.api_key_env:
        value = os.environ.get(current.api_key_env, "").strip()
        if value:
            return value
    if current.api_key_file is not None:
        try:
            value = current.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"api_key_file {current.api_key_file} could not be read ({exc.strerror}): fix {KEYS['api_key_file']}") from None
        return value or None
    return None


# ---------------------------------------------------------------- user files and folders
def paths_restricted() -> bool:
    """True when user paths must stay under the allowed roots (inside ComfyUI by default)."""
    flag = settings().restrict_paths
    return host.in_comfyui() if flag is None else bool(flag)


def allowed_roots() -> tuple[Path, ...]:
    """ComfyUI's input and output folders plus the owner's extra folders, symlinks resolved."""
    roots: list[Path] = []
    for root in (host.input_directory(), host.output_directory(), *settings().extra_dirs):
        real = Path(root).resolve()
        if real not in roots:
            roots.append(real)
    return tuple(roots)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check(path, what: str, write: bool, kind: str) -> Path:
    text = str(path)
    try:
        real = Path(os.path.expanduser(text)).resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops, names the file system refuses
        raise ValueError(f"{what} {text[:80]!r} is not a usable path ({exc}): give another {kind}") from None
    if not paths_restricted():
        return real
    for custom in host.custom_nodes_dirs():
        if _inside(real, custom.resolve()):
            raise NotGranted(f"{what} {text[:80]!r} points into ComfyUI's custom_nodes folder ({custom}), "
                             f"which a workflow may never {'write' if write else 'read'}: use a {kind} in the input or output folder")
    roots = allowed_roots()
    if any(_inside(real, root) for root in roots):
        return real
    via = f" (it resolves to {real} through a symlink)" if str(real) != os.path.abspath(os.path.expanduser(text)) else ""
    raise NotGranted(
        f"{what} {text[:80]!r}{via} is outside the folders this server lets a workflow "
        f"{'write' if write else 'read'} ({', '.join(map(str, roots))}): use a {kind} inside one of them, or "
        f"{how_to_grant('allowed_dirs', '/path/to/folder')}"
    )


def check_user_dir(path, *, write: bool, what: str = "path") -> Path:
    """The resolved folder ``path`` if a workflow may read (or ``write``) it; NotGranted naming
    ``what``, the value and the setting that would grant it otherwise."""
    return _check(path, what, write, "folder")


def check_user_file(path, *, write: bool, what: str = "path") -> Path:
    """As ``check_user_dir`` for a single file (an image to read, a caption file to write)."""
    return _check(path, what, write, "file")
