"""The metrics report: any metric values gathered into one strict, deterministic JSON text.

* Strict JSON: ``inf`` / ``-inf`` become the strings ``"inf"`` / ``"-inf"`` (e.g. the PSNR of
  identical images) and NaN becomes ``null``; ``json.dumps(..., allow_nan=False)`` guards it.
* Deterministic: no timestamps, keys sorted, fixed indentation, so identical runs give
  identical text (diff-able, cache-friendly).
* JSON strings among the inputs (the per-image reports of the evaluate nodes) are parsed and
  nested; a list of several values (ComfyUI list mapping, e.g. one F1 per image) is kept and
  summarised with count / mean / min / max.
"""
from __future__ import annotations

import json
import math
from typing import Any

SCHEMA = "llm-assist/metrics-report/1"


def json_safe(value: Any) -> Any:
    """A structure ``json.dumps(allow_nan=False)`` accepts: inf -> "inf", NaN -> None,
    tensors/arrays -> numbers or lists, dataclasses/objects -> a short description."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "texts") and callable(value.texts):  # Keywords
        return {"keywords": list(value.texts())}
    if hasattr(value, "embeddings"):  # Features
        return {"features": describe_handle(value, ("model",)), "shape": list(value.embeddings.shape)}
    if hasattr(value, "tolist") and hasattr(value, "shape"):  # torch / numpy
        size = math.prod(value.shape)
        if size == 1:
            return json_safe(value.reshape(-1).tolist()[0])
        if size <= 64:
            return json_safe(value.tolist())
        return {"tensor_shape": list(value.shape)}
    if hasattr(value, "item"):
        return json_safe(value.item())
    return {"type": type(value).__name__}


def parse_value(value: Any) -> Any:
    """A metric input as JSON-ready data: JSON text is parsed (Infinity/NaN tolerated), other
    text is kept as text."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") or text in ("Infinity", "-Infinity", "NaN"):
            try:
                return json_safe(json.loads(text))
            except ValueError:
                return value
        return value
    return json_safe(value)


def _number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if v in ("inf", "-inf"):
        return float(v)
    return None


def summarise(values: list) -> Any:
    """One value as itself; several as ``{"values": [...]}`` plus count/mean/min/max when numeric."""
    parsed = [parse_value(v) for v in values]
    if len(parsed) == 1:
        return parsed[0]
    out: dict[str, Any] = {"values": parsed, "count": len(parsed)}
    numbers = [_number(v) for v in parsed]
    if parsed and all(n is not None for n in numbers):
        out.update(mean=json_safe(math.fsum(numbers) / len(numbers) if not any(map(math.isinf, numbers))
                                  else sum(numbers)),
                   min=json_safe(min(numbers)), max=json_safe(max(numbers)))
    return out


def describe_handle(handle: Any, attrs=("name", "model", "device", "dtype", "kind")) -> dict | None:
    """What a model handle (pipeline, captioner, encoder, ...) says about itself via getattr."""
    if handle is None:
        return None
    out = {"type": type(handle).__name__}
    for attr in attrs:
        value = getattr(handle, attr, None)
        if value is None or callable(value):
            continue
        if isinstance(value, (str, int, float, bool)):
            out[attr] = json_safe(value)
        elif attr == "model" and not isinstance(value, str):
            continue  # a model object, not a name
        else:
            out[attr] = str(value)
    return out


def build_report(metrics: dict[str, list], *, seed=None, notes: str = "", models: dict | None = None,
                 settings: dict | None = None) -> dict:
    """The report dict: ``metrics`` maps a label to the list of values that arrived for it."""
    report: dict[str, Any] = {"schema": SCHEMA, "metrics": {}}
    for label, values in metrics.items():
        values = [v for v in (values or []) if v is not None]
        if values:
            report["metrics"][label] = summarise(values)
    if seed is not None:
        report["seed"] = json_safe(seed)
    if notes:
        report["notes"] = notes
    report["models"] = {k: v for k, v in (models or {}).items() if v is not None}
    report["settings"] = json_safe(settings or {})
    return report


def label_slots(slots: list, labels: str) -> dict[str, list]:
    """Metrics Report's slots under their names: ``slots[i]`` (None = unconnected, a value or a
    list of values) is named by the i-th comma-separated label, else ``metrics_<i+1>``; a label
    used twice gets ``_<slot>`` appended so no value is lost."""
    names = [n.strip() for n in str(labels or "").split(",")]
    gathered: dict[str, list] = {}
    for i, values in enumerate(slots):
        if values is None:
            continue
        label = names[i] if i < len(names) and names[i] else f"metrics_{i + 1}"
        gathered[label if label not in gathered else f"{label}_{i + 1}"] = values if isinstance(values, list) else [values]
    return gathered


def metrics_report(slots: list, *, labels: str = "", seeds=(), notes: str = "", models: dict | None = None) -> str:
    """The Metrics Report node's JSON text (see label_slots and build_report)."""
    seeds = [s for s in seeds if s is not None]
    names = [n.strip() for n in str(labels or "").split(",") if n.strip()]
    return to_json(build_report(label_slots(slots, labels), seed=seeds[0] if len(seeds) == 1 else (seeds or None),
                                notes=notes, models={k: describe_handle(v) for k, v in (models or {}).items()},
                                settings={"labels": names}))


def to_json(report: Any) -> str:
    """Strict, sorted, indented JSON text."""
    return json.dumps(json_safe(report), sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)
