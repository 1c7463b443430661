"""The runner's errors and their messages (imported by workflow, validate and execute; imports none of them)."""
from __future__ import annotations


class WorkflowError(ValueError):
    """A workflow that cannot be converted, validated or run; ``messages`` has one line per problem."""

    def __init__(self, messages):
        if isinstance(messages, str):
            messages = [messages]
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


def malformed(exc: Exception, what: str) -> "WorkflowError":
    """A WorkflowError for a structural error found the hard way (a field of the wrong JSON type)."""
    return WorkflowError(f"{what} is malformed ({type(exc).__name__}: {exc}): a field has the wrong JSON "
                         "type or is missing; save the workflow again from the editor")


# Core ComfyUI nodes that need ComfyUI's models/samplers (the headless runner cannot run them).
CORE_NODES = frozenset("""
KSampler KSamplerAdvanced SamplerCustom SamplerCustomAdvanced CheckpointLoaderSimple CheckpointLoader
CLIPTextEncode CLIPTextEncodeSDXL CLIPSetLastLayer CLIPLoader DualCLIPLoader CLIPVisionLoader
CLIPVisionEncode VAEDecode VAEEncode VAEEncodeForInpaint VAEDecodeTiled VAEEncodeTiled VAELoader
EmptyLatentImage LatentUpscale LatentUpscaleBy LoraLoader LoraLoaderModelOnly UNETLoader
ControlNetLoader ControlNetApply ControlNetApplyAdvanced ImageScale ImageScaleBy
ImagePadForOutpaint EmptyImage ImageCrop ImageBlend UpscaleModelLoader ImageUpscaleWithModel
ConditioningCombine ConditioningSetArea ConditioningSetMask SetLatentNoiseMask InpaintModelConditioning
LoadImageOutput SaveAnimatedWEBP SaveAnimatedPNG GrowMask FeatherMask CropMask
ThresholdMask MaskComposite ImageCompositeMasked StringConcatenate ModelSamplingDiscrete
""".split())


def unknown_class_message(node_id, class_type, server: bool = False) -> str:
    if server:
        return (f"node {node_id} ({class_type}) is not a node class the server knows: install the custom "
                "node pack that provides it on that ComfyUI (and restart it), or remove the node")
    if class_type in CORE_NODES:
        return (f"node {node_id} ({class_type}) is a ComfyUI core node the headless runner cannot "
                "run; run this workflow in ComfyUI or pass --server http://127.0.0.1:8188")
    return (f"node {node_id} ({class_type}) is not a node class the headless runner knows (neither "
            "this pack's nor a core stand-in): install the pack that provides it in ComfyUI and "
            "run it there, or pass --server http://127.0.0.1:8188")
