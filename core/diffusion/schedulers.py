"""Scheduler choices: a fresh scheduler instance per call, built from the saved config.

The table's samplers are for noise-prediction (SD 1.x/2.x/SDXL) models; a flow-matching pipeline
(SD3, FLUX, Qwen-Image, Z-Image, Chroma, Sana) runs its saved scheduler only.

Swapping schedulers never reloads weights: the pipeline keeps its modules and gets a new
scheduler object (``from_config``) for every run, which also means a cancelled run leaves no
half-stepped scheduler state behind.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

AS_SAVED = "as saved"
# name -> (diffusers class name, extra config overrides)
_TABLE: dict[str, tuple[str, dict]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "euler trailing (turbo)": ("EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}
SCHEDULERS: list[str] = [AS_SAVED, *_TABLE]


def check_scheduler_name(name: str) -> str:
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {name!r}")
    return name


def make_scheduler(name: str, saved):
    """A new scheduler for ``name`` from the ``saved`` scheduler instance's config."""
    import diffusers

    check_scheduler_name(name)
    if name == AS_SAVED:
        return type(saved).from_config(saved.config)
    if type(saved).__name__.startswith("FlowMatch"):  # SD3, FLUX, Qwen-Image, Z-Image, Chroma, Sana...
        raise ValueError(f"scheduler {name!r} is a noise-prediction sampler for SD-type models; this pipeline is a "
                         f"flow-matching model ({type(saved).__name__}): choose '{AS_SAVED}' on Load Diffusion Pipeline")
    class_name, overrides = _TABLE[name]
    cls = getattr(diffusers, class_name)
    config = dict(saved.config)
    # keys that belong to the saved class only confuse the new one (harmless warnings otherwise)
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    return cls.from_config(config, **overrides)
