"""The one adapter to ComfyUI's runtime.

Everything else in the pack asks this module for model folders, the torch device, memory,
progress reporting and the cancel flag. Inside ComfyUI it delegates to ``folder_paths``,
``comfy.model_management`` and ``comfy.utils.ProgressBar``; standalone (tests, the CLI) it
falls back to plain Python: a models root folder (``set_models_root`` or the
``LLM_ASSIST_MODELS`` environment variable), a logging progress reporter and an interrupt flag
tests can set.

We detect ComfyUI by ``folder_paths`` already being imported (ComfyUI imports it before any
custom node), so importing this module never pulls ComfyUI (or torch) in by itself.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Model kinds the pack uses, and the folder names ComfyUI users already know.
MODEL_KINDS: dict[str, tuple[str, ...]] = {
    "LLM": ("LLM",),  # captioners and language models (the folder other caption packs use)
    "diffusers": ("diffusers",),
    "checkpoints": ("checkpoints",),
    "clip_vision": ("clip_vision",),  # image encoders (CLIP / SigLIP folders)
    "vae_approx": ("vae_approx",),  # TAESD
    "text_encoders": ("text_encoders",),  # sentence-embedding models for keywords
}

ENV_MODELS = "LLM_ASSIST_MODELS"
ENV_OUTPUT = "LLM_ASSIST_OUTPUT"

_state_lock = threading.Lock()
_models_root: Path | None = None
_output_dir: Path | None = None
_input_dir: Path | None = None
_interrupt = threading.Event()
_registered = False


class Interrupted(Exception):
    """Raised when the user pressed Cancel (standalone stand-in for ComfyUI's exception)."""


# ---------------------------------------------------------------- ComfyUI detection
def in_comfyui() -> bool:
    """True when running inside a ComfyUI process."""
    return "folder_paths" in sys.modules and "comfy.model_management" in sys.modules


def _folder_paths():
    return sys.modules["folder_paths"] if "folder_paths" in sys.modules else None


def _model_management():
    return sys.modules.get("comfy.model_management")


def register_model_folders() -> None:
    """Register our model folder names with ComfyUI if it does not know them yet.

    Extra paths from ``extra_model_paths.yaml`` are added by ComfyUI before custom nodes load;
    ``add_model_folder_path`` appends, so those survive.
    """
    global _registered
    fp = _folder_paths()
    if fp is None or _registered:
        return
    for kind, names in MODEL_KINDS.items():
        default = os.path.join(fp.models_dir, names[0])
        known = fp.folder_names_and_paths.get(kind)
        if known is None or default not in known[0]:
            fp.add_model_folder_path(kind, default)
    _registered = True


# ---------------------------------------------------------------- folders
def set_models_root(path: str | os.PathLike | None) -> Path | None:
    """Set the standalone models root (laid out like ComfyUI's models/). Returns the previous one."""
    global _models_root
    with _state_lock:
        previous = _models_root
        _models_root = Path(path).resolve() if path is not None else None
    return previous


def models_root() -> Path:
    """The standalone models root: set_models_root(), $LLM_ASSIST_MODELS, or ./models."""
    if _models_root is not None:
        return _models_root
    env = os.environ.get(ENV_MODELS)
    return Path(env).resolve() if env else Path("models").resolve()


def model_folders(kind: str) -> list[Path]:
    """Every folder that holds models of ``kind``, ComfyUI's (with extra paths) first."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}: use one of {sorted(MODEL_KINDS)}")
    fp = _folder_paths()
    if fp is not None:
        register_model_folders()
        try:
            return [Path(p) for p in fp.get_folder_paths(kind)]
        except KeyError:
            pass
    return [models_root() / name for name in MODEL_KINDS[kind]]


def _is_model_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in ("config.json", "model_index.json"))


def list_models(kind: str, want: str = "dirs", exts: tuple[str, ...] = (".safetensors",)) -> list[str]:
    """Names (relative, '/'-separated) of the models of ``kind``.

    want="dirs": model folders (a folder holding config.json or model_index.json, up to two
    levels deep so ``org/name`` layouts work); want="files": files with one of ``exts``.
    """
    names: set[str] = set()
    for root in model_folders(kind):
        if not root.is_dir():
            continue
        if want == "dirs":
            for child in sorted(root.iterdir()):
                if not child.is_dir():
                    continue
                if _is_model_dir(child):
                    names.add(child.name)
                else:
                    for grandchild in sorted(child.iterdir()):
                        if grandchild.is_dir() and _is_model_dir(grandchild):
                            names.add(f"{child.name}/{grandchild.name}")
        elif want == "files":
            for path in root.rglob("*"):
                if path.is_file() and path.name.lower().endswith(tuple(e.lower() for e in exts)):
                    names.add(path.relative_to(root).as_posix())
        else:
            raise ValueError(f"want must be 'dirs' or 'files', got {want!r}")
    return sorted(names)


def resolve_model(kind: str, name: str) -> Path:
    """The path of model ``name`` of ``kind``; refuses names that escape the model folder
    (``..``, absolute paths) but follows symlinks the owner put inside it.

    Raises FileNotFoundError naming the folders searched when it is not there.
    """
    if not name or not str(name).strip():
        raise ValueError(f"model name is empty: pick one from models/{MODEL_KINDS[kind][0]}")
    rel = Path(str(name).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(
            f"model name {name!r} points outside the {kind} folder: give a name relative to "
            f"models/{MODEL_KINDS[kind][0]} (no '..', no absolute path)"
        )
    searched = []
    for root in model_folders(kind):
        candidate = root / rel
        searched.append(str(root))
        try:
            exists = candidate.exists()
        except OSError as exc:  # e.g. a name longer than the file system allows
            raise ValueError(f"model name {str(name)[:60]!r}... is not a usable file name ({exc.strerror}): pick a model from the list") from None
        if exists:
            # the name cannot escape (checked above); a symlink the owner put inside the model
            # folder (models on another disk, shared with other apps) is followed, as ComfyUI does
            return candidate.resolve()
    raise FileNotFoundError(
        f"model {name!r} not found in {', '.join(searched) or 'no folder'}: put it there "
        f"(see README 'Models') or pick one of {list_models(kind)[:10]}"
    )


def set_output_directory(path: str | os.PathLike | None) -> Path | None:
    global _output_dir
    previous = _output_dir
    _output_dir = Path(path).resolve() if path is not None else None
    fp = _folder_paths()
    if fp is not None and path is not None:
        fp.set_output_directory(str(_output_dir))
    return previous


def output_directory() -> Path:
    fp = _folder_paths()
    if fp is not None and _output_dir is None:
        return Path(fp.get_output_directory())
    if _output_dir is not None:
        return _output_dir
    env = os.environ.get(ENV_OUTPUT)
    return Path(env).resolve() if env else Path("output").resolve()


def set_input_directory(path: str | os.PathLike | None) -> Path | None:
    global _input_dir
    previous = _input_dir
    _input_dir = Path(path).resolve() if path is not None else None
    return previous


def input_directory() -> Path:
    fp = _folder_paths()
    if fp is not None and _input_dir is None:
        return Path(fp.get_input_directory())
    if _input_dir is not None:
        return _input_dir
    return Path("input").resolve()


def comfyui_dirs() -> list[Path]:
    """ComfyUI's own folder (where extra_model_paths.yaml lives), then its base directory if
    different; empty standalone."""
    fp = _folder_paths()
    if fp is None:
        return []
    found = []
    for folder in (Path(fp.__file__).resolve().parent if getattr(fp, "__file__", None) else None,
                   Path(getattr(fp, "base_path", "") or ".").resolve() if getattr(fp, "base_path", None) else None):
        if folder is not None and folder not in found:
            found.append(folder)
    return found


def custom_nodes_dirs() -> list[Path]:
    """ComfyUI's custom_nodes folders (a workflow may never read or write there); empty standalone."""
    fp = _folder_paths()
    if fp is None:
        return []
    try:
        return [Path(p) for p in fp.get_folder_paths("custom_nodes")]
    except Exception:  # noqa: BLE001 - an odd ComfyUI build: fall back to the default layout
        base = getattr(fp, "base_path", None)
        return [Path(base) / "custom_nodes"] if base else []


def comfy_clip_tokenizer_folder() -> Path | None:
    """ComfyUI's own SD1 CLIP tokenizer files (vocab.json + merges.txt), inside ComfyUI only."""
    comfy = sys.modules.get("comfy")
    if comfy is None:
        return None
    # ComfyUI's comfy/ is a namespace package (no __init__.py): its folder is in __path__, not __file__
    bases = [Path(p) for p in getattr(comfy, "__path__", None) or []]
    if getattr(comfy, "__file__", None):
        bases.append(Path(comfy.__file__).parent)
    for base in bases:
        folder = base.resolve() / "sd1_tokenizer"
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            return folder
    return None


# ---------------------------------------------------------------- device and memory
def torch_device(preference: str = "auto"):
    """The torch.device to run on: ComfyUI's choice inside ComfyUI, else CUDA > MPS > CPU."""
    import torch

    preference = (preference or "auto").lower()
    if preference != "auto":
        if preference == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was chosen but CUDA is not available: use 'auto' or 'cpu'")
        if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' was chosen but MPS is not available: use 'auto' or 'cpu'")
        if preference not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device must be auto, cpu, cuda or mps, got {preference!r}")
        return torch.device(preference)
    mm = _model_management()
    if mm is not None:
        return mm.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def free_memory(nbytes: int, device) -> None:
    """Ask ComfyUI to unload its models until ``nbytes`` are free on ``device`` (no-op standalone)."""
    mm = _model_management()
    if mm is None or getattr(device, "type", str(device)) == "cpu":
        return
    try:
        mm.free_memory(int(nbytes), device)
    except Exception:  # never fail a load because the memory manager complained
        log.warning("ComfyUI free_memory(%d) failed", nbytes, exc_info=True)


def empty_cache() -> None:
    mm = _model_management()
    if mm is not None:
        mm.soft_empty_cache()
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- ComfyUI's memory manager
def _comfy_device(device):
    """``cuda`` -> ``cuda:<current>``: ComfyUI compares devices with ``==``."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def load_models(hosted: list) -> None:
    """Inside ComfyUI: load our ``HostedModel`` wrappers through ``load_models_gpu`` (registers
    them in ``current_loaded_models``, frees room by unloading others as it does for its own).
    Standalone: nothing (the model cache's LRU limit is the policy)."""
    mm = _model_management()
    if mm is None or not hosted:
        return
    for item in hosted:
        item.load_device = _comfy_device(item.load_device)
    mm.load_models_gpu(list(hosted))


register_models = load_models


def unregister_models(hosted: list) -> None:
    """Take our wrappers out of ComfyUI's ``current_loaded_models`` (we dropped them ourselves)."""
    mm = _model_management()
    if mm is None or not hosted:
        return
    ids = {id(item) for item in hosted}
    for i in range(len(mm.current_loaded_models) - 1, -1, -1):
        loaded = mm.current_loaded_models[i]
        if id(loaded.model) in ids:
            mm.current_loaded_models.pop(i)
            if loaded.model_finalizer is not None:
                loaded.model_finalizer.detach()
                loaded.model_finalizer = None
            loaded.real_model = None


def loaded_models() -> list[tuple[str, int, str]]:
    """``(class name, bytes, device)`` of every model ComfyUI's memory manager holds (its own and
    ours); empty standalone."""
    mm = _model_management()
    if mm is None:
        return []
    out = []
    for loaded in list(mm.current_loaded_models):
        model = loaded.model
        if model is not None:
            out.append((type(model.model).__name__, int(loaded.model_memory()), str(loaded.device)))
    return out


# ---------------------------------------------------------------- progress
class _LoggingProgress:
    """Plain-Python progress reporter: logs at most about once a second."""

    def __init__(self, total: int, label: str = ""):
        self.total = max(int(total), 1)
        self.current = 0
        self.label = label
        self._last = 0.0

    def update_absolute(self, value: int, total: int | None = None, preview=None) -> None:
        if total is not None:
            self.total = max(int(total), 1)
        self.current = min(int(value), self.total)
        now = time.monotonic()
        if now - self._last >= 1.0 or self.current == self.total:
            self._last = now
            log.info("%s %d/%d", self.label or "progress", self.current, self.total)

    def update(self, value: int = 1) -> None:
        self.update_absolute(self.current + value)


_progress_listeners: list = []


def add_progress_listener(callback) -> None:
    """Standalone only: ``callback(current, total)`` on every progress update. A test hook (see
    docs/ARCHITECTURE.md "Test hooks"): the pack itself never registers one."""
    _progress_listeners.append(callback)


def remove_progress_listener(callback) -> None:
    if callback in _progress_listeners:
        _progress_listeners.remove(callback)


class _ListeningProgress(_LoggingProgress):
    def update_absolute(self, value, total=None, preview=None):
        super().update_absolute(value, total, preview)
        for callback in list(_progress_listeners):
            callback(self.current, self.total)


def progress(total: int, label: str = ""):
    """A progress reporter with ``update(n)`` and ``update_absolute(i, total, preview)``."""
    if in_comfyui():
        import comfy.utils  # noqa: PLC0415 - only inside ComfyUI

        return comfy.utils.ProgressBar(total)
    return _ListeningProgress(total, label)


def progress_text(text: str) -> None:
    """Inside ComfyUI: show ``text`` on the running node (``PromptServer.send_progress_text``, the
    websocket's binary TEXT event, which the editor draws under the node). Standalone: nothing."""
    if not in_comfyui():
        return
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    context_mod = sys.modules.get("comfy_execution.utils")
    context = context_mod.get_executing_context() if context_mod is not None else None
    node_id = getattr(context, "node_id", None) or getattr(instance, "last_node_id", None)
    if instance is None or node_id is None or not hasattr(instance, "send_progress_text"):
        return
    try:
        instance.send_progress_text(text, node_id)
    except Exception:  # noqa: BLE001 - a display must never fail the node
        log.debug("send_progress_text failed", exc_info=True)


# ---------------------------------------------------------------- previews
PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")


def preview_method() -> str:
    """ComfyUI's ``--preview-method`` (none / auto / latent2rgb / taesd); "none" standalone."""
    cli_args = sys.modules.get("comfy.cli_args") if in_comfyui() else None
    method = getattr(getattr(cli_args, "args", None), "preview_method", None)
    value = str(getattr(method, "value", method) or "none").lower()
    return value if value in PREVIEW_METHODS else "none"


def latent_previewer(latent_format: str, device):
    """ComfyUI's own previewer for one of its latent formats (``comfy.latent_formats.<name>``),
    chosen by its ``--preview-method`` as its samplers choose (latent2rgb factors, or the TAESD
    decoder it finds in models/vae_approx). Returns ``latents -> ("JPEG", PIL image, max size)``,
    or None: standalone, previews off, unknown format, nothing to preview with."""
    if not latent_format or preview_method() == "none":
        return None
    import importlib

    try:
        formats = importlib.import_module("comfy.latent_formats")
        latent_preview = importlib.import_module("latent_preview")
    except ImportError:
        return None
    cls = getattr(formats, latent_format, None)
    if cls is None:
        return None
    previewer = latent_preview.get_previewer(device, cls())
    if previewer is None:
        return None
    return lambda latents: previewer.decode_latent_to_preview_image("JPEG", latents)


def preview_max_size() -> int:
    """ComfyUI's ``--preview-size`` (512 standalone)."""
    cli_args = sys.modules.get("comfy.cli_args") if in_comfyui() else None
    return int(getattr(getattr(cli_args, "args", None), "preview_size", 512) or 512)


# ---------------------------------------------------------------- cancel
def interrupt_exception_types() -> tuple[type[BaseException], ...]:
    mm = _model_management()
    if mm is not None:
        return (Interrupted, mm.InterruptProcessingException)
    return (Interrupted,)


def interrupted() -> bool:
    mm = _model_management()
    if mm is not None and mm.processing_interrupted():
        return True
    return _interrupt.is_set()


def check_interrupt() -> None:
    """Raise if the user pressed Cancel (ComfyUI's own exception inside ComfyUI)."""
    mm = _model_management()
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()
    if _interrupt.is_set():
        _interrupt.clear()
        raise Interrupted("processing interrupted by the user")


def request_interrupt() -> None:
    """Standalone Cancel (tests, CLI Ctrl-C); inside ComfyUI use its own interrupt."""
    mm = _model_management()
    if mm is not None:
        mm.interrupt_current_processing(True)
    _interrupt.set()


def clear_interrupt() -> None:
    _interrupt.clear()
