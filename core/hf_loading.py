"""Loading policy shared by every Hugging Face model the pack loads.

Local first: a name is looked up in the pack's model folders; a Hugging Face repo id is used
only with ``allow_download`` on (and never under ``HF_HUB_OFFLINE``). Safetensors only,
``trust_remote_code`` off unless switched on (both need the server owner's grant, core/owner.py), device/dtype auto with overrides, and
quantization (torch dynamic int8 on CPU, bitsandbytes 8/4-bit on CUDA).
"""
from __future__ import annotations

import functools
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import host, owner

log = logging.getLogger(__name__)

from .constants import ATTENTIONS, DEVICES, DTYPES, PICKLE_SUFFIXES, QUANTIZATIONS  # noqa: F401 - re-exported

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class LoadOptions:
    """What the user chose on a loader node."""

    device: str = "auto"
    dtype: str = "auto"
    quantization: str = "none"
    attention: str = "auto"
    trust_remote_code: bool = False
    allow_download: bool = False
    keep_loaded: bool = True

    def __post_init__(self):
        # a widget can only ask; the server owner grants (core/owner.py): refused here, before
        # anything is fetched or any model code is imported
        owner.check_load_grants(bool(self.allow_download), bool(self.trust_remote_code))

    def cache_options(self) -> tuple:
        return (("quantization", self.quantization), ("attention", self.attention), ("trust", self.trust_remote_code))


# --- library versions: the proven floors and the shims across the range --------------------
# The oldest releases the pack is tested on (requirements-floor.txt, ./dev.sh test-floor); keep
# requirements.txt and pyproject.toml in step (tests/test_dependency_floors.py checks it).
FLOORS = {
    "transformers": "4.46.3",
    "diffusers": "0.31.0",
    "accelerate": "0.33.0",
    "huggingface_hub": "0.25.0",
    "tokenizers": "0.20.0",
    "safetensors": "0.4.1",
    "numpy": "1.24.4",
    "pillow": "10.0.0",
}
# from_pretrained's dtype argument was called torch_dtype before these releases
DTYPE_ARG_SINCE = {"transformers": "4.56.0", "diffusers": "0.40.0"}


class DependencyTooOld(RuntimeError):
    """An installed library is older than the pack's floor (FLOORS)."""


@functools.lru_cache(maxsize=None)
def installed_version(package: str) -> str | None:
    """The installed distribution's version (read from its metadata, nothing imported), or None."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def version_at_least(package: str, wanted: str) -> bool:
    from packaging.version import Version

    found = installed_version(package)
    return found is not None and Version(found) >= Version(wanted)


def require_versions(*packages: str) -> None:
    """Raise one clear DependencyTooOld naming the package, the version found and the one needed
    when an installed library is older than FLOORS (e.g. a ComfyUI whose own pin allows
    transformers 4.37); called by every loader before the library is used."""
    from packaging.version import Version

    for package in packages:
        found, needed = installed_version(package), FLOORS[package]
        if found is None:
            raise DependencyTooOld(
                f"LLM Assist needs {package}>={needed}, which is not installed: run "
                f"'python -m pip install \"{package}>={needed}\"' with ComfyUI's Python, then restart ComfyUI")
        if Version(found) < Version(needed):
            raise DependencyTooOld(
                f"LLM Assist needs {package}>={needed}, found {package} {found}: run "
                f"'python -m pip install -U \"{package}>={needed}\"' with ComfyUI's Python, then restart ComfyUI")


def saved_class_name(library: str, source: str) -> str:
    """The class a local model folder was saved as: config.json ``architectures[0]`` (transformers)
    or model_index.json ``_class_name`` (diffusers); "" when unknown (a repo id, custom code)."""
    import json

    path = Path(source)
    name = "config.json" if library == "transformers" else "model_index.json"
    try:
        data = json.loads((path / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(data, dict) or "auto_map" in data:
        return ""
    found = data.get("architectures") or [""] if library == "transformers" else [data.get("_class_name") or ""]
    return str(found[0]) if isinstance(found, list) and found else ""


def require_class(library: str, source: str) -> None:
    """A model folder whose class the installed release of ``library`` lacks (a model family newer
    than it): one message naming the class, the release found and the fix, before loading."""
    class_name = saved_class_name(library, source)
    if not class_name:
        return
    if library == "diffusers":
        import diffusers as module
    else:
        import transformers as module
    if hasattr(module, class_name):
        return
    raise DependencyTooOld(
        f"{Path(source).name} is a {class_name} model, which {library} {installed_version(library)} does not have "
        f"(a newer model family): run 'python -m pip install -U {library}' with ComfyUI's Python and restart "
        "ComfyUI, or pick another model")


def dtype_kwarg(library: str, dtype) -> dict:
    """``{"dtype": dtype}`` for from_pretrained / from_single_file where ``library`` takes it
    (transformers >= 4.56, diffusers >= 0.40), ``{"torch_dtype": dtype}`` on older releases."""
    name = "dtype" if version_at_least(library, DTYPE_ARG_SINCE[library]) else "torch_dtype"
    return {name: dtype}


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_source(kind: str, name: str, allow_download: bool) -> str:
    """A local model folder for ``name`` (preferred), or a repo id when downloads are allowed."""
    name = (name or "").strip()
    if not name:
        raise ValueError(f"model is empty: pick a folder from models/{kind} or type a Hugging Face repo id")
    try:
        path = host.resolve_model(kind, name)
    except FileNotFoundError:
        path = None
    if path is not None:
        check_safe_folder(path)
        return str(path)
    if not _REPO_ID.match(name):
        raise ValueError(
            f"model {name!r} is not a folder in {', '.join(map(str, host.model_folders(kind)))} and "
            "not a Hugging Face repo id (org/name): put the model folder there or fix the name"
        )
    if not allow_download:
        raise ValueError(
            f"model {name!r} is not in models/{kind} and 'allow download' is off: download it into "
            f"models/{kind}/{name.split('/')[-1]} or switch 'allow download' on to fetch {name} from Hugging Face "
            "(a download also needs the server owner's grant: LLM_ASSIST_ALLOW_DOWNLOAD=1, see README 'Owner settings')"
        )
    if hub_offline():
        raise ValueError(
            f"model {name!r} must be downloaded but HF_HUB_OFFLINE is set: unset it or put the "
            f"model folder in models/{kind}"
        )
    return name


def unreadable_file_error(exc: OSError, file, source: str = "") -> ValueError:
    """A clear error for a model file the process cannot read (permissions, a folder, I/O)."""
    import errno

    reason = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
              errno.EISDIR: "it is a folder, not a file"}.get(exc.errno, (exc.strerror or str(exc)).lower())
    where = f" of model {source}" if source else ""
    return ValueError(f"cannot read weights file {file}{where} ({reason}): give the user running ComfyUI read "
                      "access to it (e.g. chmod a+r), or copy the model folder again")


def check_safetensors_file(file: Path) -> None:
    """Read a .safetensors header (no tensors): a truncated or damaged file is a ValueError naming it."""
    import json

    why = ""
    try:
        size = file.stat().st_size
        with open(file, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length <= 0 or 8 + length > size:
                why = "its header is cut off or not a safetensors header"
            else:
                header = json.loads(handle.read(length))
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
                if 8 + length + end > size:
                    why = f"it is {size} bytes but its header describes {8 + length + end} (truncated)"
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        why = f"unreadable header: {type(exc).__name__}"
    except OSError as exc:  # permissions, a folder of that name, an I/O error
        raise unreadable_file_error(exc, file) from None
    if why:
        raise ValueError(f"weights file {file} is corrupted or truncated ({why}): download or copy it again")


def check_safe_folder(path: str | Path) -> None:
    """Refuse model folders that hold only pickle weights (we never unpickle)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".safetensors":
            check_safetensors_file(path)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ValueError(
                f"{path.name} is a pickle file ({path.suffix}); pickles can run code when loaded and "
                "are refused: use a .safetensors file"
            )
        return
    files = [p.name.lower() for p in path.iterdir()] if path.is_dir() else []
    for name in sorted(p for p in path.iterdir() if p.suffix.lower() == ".safetensors") if files else ():
        check_safetensors_file(name)
    has_safe = any(f.endswith(".safetensors") for f in files)
    pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
    if pickles and not has_safe:
        raise ValueError(
            f"model folder {path} has only pickle weights ({', '.join(sorted(pickles))}); pickles can "
            "run code when loaded and are refused: convert them to safetensors (model.safetensors)"
        )


def _pipeline_code(path: Path, index) -> tuple[str, bool]:
    """(what, True) when a diffusers model_index.json names code from the folder: a custom pipeline
    (``_class_name`` as [module, class]) or a component whose module is a .py file in the folder."""
    if not isinstance(index, dict):
        return "", False
    if isinstance(index.get("_class_name"), list):
        return "model_index.json names a custom pipeline class", True
    for component, entry in index.items():
        library = entry[0] if isinstance(entry, list) and entry and isinstance(entry[0], str) else ""
        if library and any((where / f"{library}.py").is_file() for where in (path, path / component)):
            return f"model_index.json: {component} is {entry[1] if len(entry) > 1 else '?'} from {library}.py", True
    return "", False


def check_remote_code(source: str, trust_remote_code: bool) -> None:
    """Refuse a local folder whose configs ask for custom code (auto_map) while trust is off.

    transformers would otherwise quietly load its built-in class instead of the custom one.
    """
    import json

    path = Path(source)
    if trust_remote_code or not path.is_dir():
        return
    names = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")
    files = [path / n for n in names]
    if (path / "model_index.json").is_file():  # a diffusers folder: every component's configs too
        files += [sub / n for sub in sorted(path.iterdir()) if sub.is_dir() for n in names]
    for file in [path / "model_index.json"] + files:
        name = file.relative_to(path).as_posix()
        try:
            data = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
        except (OSError, ValueError):
            continue
        if file == path / "model_index.json":  # diffusers 0.31 imports such code without asking
            name, asks = _pipeline_code(path, data)
        else:
            asks, name = isinstance(data, dict) and "auto_map" in data, f"{name} has auto_map"
        if asks:
            raise ValueError(
                f"model folder {path.name} asks for custom code from the folder ({name}) and "
                "'trust remote code' is off: switch 'trust remote code' on only if you trust this model (it also needs the "
                "server owner's grant: LLM_ASSIST_TRUST_REMOTE_CODE=1, see README 'Owner settings'), or use another model")


def resolve_device(preference: str):
    return host.torch_device(preference)


def resolve_dtype(preference: str, device):
    import torch

    preference = (preference or "auto").lower()
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if preference in table:
        return table[preference]
    if preference != "auto":
        raise ValueError(f"dtype must be one of {DTYPES}, got {preference!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def plan_load(cache_kind: str, source: str, options: LoadOptions):
    """``(device, dtype, cache key)`` for loading ``source`` under ``options``."""
    from .model_cache import CacheKey

    require_versions("transformers", "tokenizers", "huggingface_hub", "safetensors")
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    return device, dtype, CacheKey(cache_kind, str(source), dtype_name(dtype), str(device), options.cache_options())


def _has_flash_attn(device) -> bool:
    import importlib.util

    return getattr(device, "type", "") == "cuda" and importlib.util.find_spec("flash_attn") is not None


def from_pretrained_kwargs(options: LoadOptions, dtype, device) -> dict:
    """Keyword arguments for transformers ``from_pretrained`` under the pack's policy."""
    kwargs = {
        **dtype_kwarg("transformers", dtype),
        "trust_remote_code": bool(options.trust_remote_code),
        "local_files_only": not options.allow_download or hub_offline(),
        "use_safetensors": True,
    }
    if options.attention != "auto":
        if options.attention == "flash_attention_2" and not _has_flash_attn(device):
            raise ValueError("attention 'flash_attention_2' needs a CUDA device and the flash-attn package: use 'auto' or 'sdpa'")
        kwargs["attn_implementation"] = options.attention
    quant = options.quantization
    if quant.startswith("bnb"):
        if device.type != "cuda":
            raise ValueError(f"quantization {quant!r} needs a CUDA device, got {device.type}: use 'int8-dynamic (CPU)' or 'none'")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise ValueError(f"quantization {quant!r} needs the bitsandbytes package: pip install bitsandbytes, or use 'none'") from exc
        from transformers import BitsAndBytesConfig

        if quant.startswith("bnb-8bit"):
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": device.index or 0}
    elif quant not in ("none",) and not quant.startswith("int8-dynamic"):
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quant!r}")
    return kwargs


def place_and_quantize(model, options: LoadOptions, device, dtype):
    """Move the model to its device and apply post-load quantization; returns the model."""
    import torch

    quant = options.quantization
    if quant.startswith("int8-dynamic"):
        if device.type != "cpu":
            raise ValueError(f"quantization 'int8-dynamic (CPU)' runs on the CPU only, got device {device.type}: set device to cpu")
        model = model.float()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return model.eval()
    if not quant.startswith("bnb"):
        model = model.to(device)
    return model.eval()


def translate_load_error(exc: Exception, source: str) -> Exception:
    """Turn library errors into a message naming the model and the fix."""
    text = str(exc)
    if "trust_remote_code" in text:
        return ValueError(
            f"{source} needs custom code from its repo (trust_remote_code), which is refused because it runs "
            "code from the model folder: use a model without custom code, or (on a loader with a 'trust remote code' "
            "switch) switch it on for a model you trust; the server owner must grant it too "
            "(LLM_ASSIST_TRUST_REMOTE_CODE=1, see README 'Owner settings')"
        )
    if isinstance(exc, OSError) and ("offline" in text.lower() or "local_files_only" in text or "couldn't connect" in text.lower()):
        return ValueError(f"{source} is not available offline: put the model folder in the models folder or allow download")
    if isinstance(exc, (PermissionError, IsADirectoryError)):
        return unreadable_file_error(exc, exc.filename or "(a file)", source)
    if "safetensors" in text.lower() and ("header" in text.lower() or "deserial" in text.lower() or "incomplete" in text.lower()):
        return ValueError(f"a weights file in {source} is corrupted or truncated ({text}): download it again")
    return exc


def from_pretrained_pair(model_class, companion_class, source: str, options: LoadOptions, dtype, device):
    """Weights and their tokenizer / processor under the pack's policy: remote code checked,
    safetensors only, offline unless allowed, library errors turned into clear messages."""
    check_remote_code(source, options.trust_remote_code)
    require_class("transformers", source)
    kwargs = from_pretrained_kwargs(options, dtype, device)
    try:
        model = model_class.from_pretrained(source, **kwargs)
        companion = companion_class.from_pretrained(
            source, local_files_only=kwargs["local_files_only"], trust_remote_code=kwargs["trust_remote_code"]
        )
    except Exception as exc:  # noqa: BLE001 - re-raised, clearer where we know better
        clearer = translate_load_error(exc, source)
        if clearer is exc:
            raise
        raise clearer from exc
    return model, companion
