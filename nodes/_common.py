"""Small helpers shared by the node modules. Imports nothing heavy."""
from __future__ import annotations

from ..core.constants import ATTENTIONS, DEVICES, DIFFUSERS_SUBFOLDERS, DTYPES, PICKLE_SUFFIXES, QUANTIZATIONS

CATEGORY_ROOT = "LLM Assist"
NO_MODELS = "(no models found)"


def first(value):
    """The first element of an INPUT_IS_LIST input (or the value itself); None for an empty list.
    Defaults come from INPUT_TYPES (nodes/_guard.py fills them in), never from here."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def category(stage: str) -> str:
    """``LLM Assist/<stage>``: loaders, describe, keywords, prompt, generate, evaluate, io."""
    return f"{CATEGORY_ROOT}/{stage}"


def loadable_models(kind: str, names: list[str], want: str = "dirs") -> list[str]:
    """``names`` without what the loaders always refuse: pickle files (.ckpt, .pt...) and folders
    whose weights are pickles only (the same folders core.hf_loading.check_safe_folder refuses)."""
    from ..core import host

    def pickle_only(folder) -> bool:
        files = [p.name.lower() for p in folder.iterdir() if p.is_file()]
        return any(f.endswith(PICKLE_SUFFIXES) for f in files) and not any(f.endswith(".safetensors") for f in files)

    kept = []
    for name in names:
        if name.lower().endswith(PICKLE_SUFFIXES):
            continue
        if want == "dirs":
            try:
                folder = host.resolve_model(kind, name)
                subs = [folder / s for s in DIFFUSERS_SUBFOLDERS] if kind == "diffusers" else []
                if any(pickle_only(f) for f in (folder, *subs) if f.is_dir()):
                    continue
            except (OSError, ValueError):
                continue
        kept.append(name)
    return kept


def model_choices(kind: str, want: str = "dirs", exts: tuple[str, ...] = (".safetensors",)) -> list[str]:
    """Model names for a combo (only what the loader will load); a placeholder when the folder is
    empty so the node still loads."""
    from ..core import host

    try:
        names = loadable_models(kind, host.list_models(kind, want=want, exts=exts), want)
    except Exception:  # a broken folder must not break ComfyUI's /object_info
        names = []
    return names or [NO_MODELS]


def pick_model(name: str, repo_id: str, kind: str) -> str:
    """The model to load: a typed repo id wins over the combo; the placeholder is an error."""
    repo_id = (repo_id or "").strip()
    if repo_id:
        return repo_id
    if not name or name == NO_MODELS:
        raise ValueError(
            f"no model chosen: put a model folder in models/{kind} (then refresh), "
            "or type a Hugging Face repo id and switch 'allow download' on"
        )
    return name


def device_inputs() -> dict:
    """device / dtype / quantization / attention / trust / download / keep-loaded widgets."""
    return {
        "device": (DEVICES, {"default": "auto", "tooltip": "Where the model runs. auto: ComfyUI's device (CUDA when present), else CPU."}),
        "dtype": (DTYPES, {"default": "auto", "tooltip": "Weight precision. auto: fp16/bf16 on CUDA, fp32 on CPU."}),
        "quantization": (QUANTIZATIONS, {"default": "none", "tooltip": "int8-dynamic: torch dynamic int8 on CPU (faster, slightly different output). bnb: bitsandbytes 8/4-bit on CUDA (needs bitsandbytes)."}),
        "attention": (ATTENTIONS, {"default": "auto", "tooltip": "Attention implementation; auto lets transformers pick (SDPA where supported)."}),
        "trust_remote_code": ("BOOLEAN", {"default": False, "tooltip": "Run Python code shipped inside the model folder/repo. It can do anything your user account can: switch on only for models you trust. Takes effect only when the server owner grants it (LLM_ASSIST_TRUST_REMOTE_CODE=1, README 'Owner settings'); otherwise the loader refuses."}),
        "allow_download": ("BOOLEAN", {"default": False, "tooltip": "Allow fetching a Hugging Face repo id from the internet. Off: only local folders are used. Takes effect only when the server owner grants it (LLM_ASSIST_ALLOW_DOWNLOAD=1, README 'Owner settings'); otherwise the loader refuses."}),
        "keep_loaded": ("BOOLEAN", {"default": True, "tooltip": "Keep the weights in memory between runs (fast re-runs; ComfyUI may still unload them when memory is short and they come back when needed). Off: free them right after each node that used them (the next use reloads them)."}),
    }


def load_options(**kwargs):
    from ..core.hf_loading import LoadOptions

    return LoadOptions(**{k: v for k, v in kwargs.items() if k in LoadOptions.__dataclass_fields__})


REPO_ID_TOOLTIP = ("Hugging Face repo id (org/name) to use instead of the folder; downloaded only when "
                   "'allow download' is on.")


def hf_loader_inputs(kind: str, model_tooltip: str) -> dict:
    """INPUT_TYPES of a transformers model loader: the model combo, device widgets, repo id."""
    return {
        "required": {"model": (model_choices(kind), {"tooltip": model_tooltip}), **device_inputs()},
        "optional": {"repo_id": ("STRING", {"default": "", "tooltip": REPO_ID_TOOLTIP})},
    }


def load_hf_model(loader, kind: str, model: str, repo_id: str, widgets: dict):
    """Call a core loader with the chosen model and the device widgets' LoadOptions."""
    return loader(pick_model(model, repo_id, kind), load_options(**widgets))
