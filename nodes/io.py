"""I/O nodes: Load Image Folder, Save Captions."""
from __future__ import annotations

from ..core.constants import CAPTION_MODES as MODES
from ..core.constants import FOLDER_SORTS as SORTS
from ._common import category, first


def _allowed_images(path, pattern, sort, start, limit, recursive) -> list:
    """The images Load Image Folder may read: the folder and every file (symlinks resolved) under
    the folders the server owner allows (core.owner); relative = inside the input folder."""
    import os
    from pathlib import Path

    from ..core import host, image_folder, owner

    text = str(path or "").strip().strip('"')
    if text and owner.paths_restricted():
        folder = Path(os.path.expanduser(text))
        folder = folder if folder.is_absolute() else host.input_directory() / folder
        path = str(owner.check_user_dir(folder, write=False, what="path"))
    paths = image_folder.list_images(path, pattern, sort, int(start), int(limit), bool(recursive))
    if owner.paths_restricted():
        for p in paths:
            owner.check_user_file(p, write=False, what=f"path (image {Path(p).name!r})")
    return paths


def _check_caption_writes(paths, folder: str, targets) -> None:
    """Refuse (before anything is written or even looked at) caption files outside the folders the
    owner allows; ``targets`` are the caption files of ``paths``."""
    from ..core import image_folder, owner

    if not owner.paths_restricted():
        return
    if folder.strip():
        owner.check_user_dir(image_folder.output_root(folder, "x"), write=True, what="output_folder")
    for p, target in zip(paths, targets):
        what = f"image_paths item {str(p)[-60:]!r}: its caption file" + (f" under output_folder {folder[:60]!r}" if folder.strip() else "")
        owner.check_user_file(target, write=True, what=what)


class LLMAssistLoadImageFolder:
    DESCRIPTION = (
        "Load every image of a folder, one by one (mixed sizes allowed): downstream nodes run once per image, "
        "and the paths go to Save Captions. EXIF orientation is applied; transparent, grey and palette images become RGB. "
        "For large folders turn load_images off and connect files to Caption Image: images are then read a batch at a "
        "time (memory independent of the folder's size); max_side downscales on load."
    )
    CATEGORY = category("io")
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "STRING", "INT", "LLMA_IMAGE_FILES")
    RETURN_NAMES = ("images", "paths", "count", "files")
    OUTPUT_IS_LIST = (True, True, False, False)
    OUTPUT_TOOLTIPS = (
        "The images, one [1,H,W,3] IMAGE per file (a list, all held in memory; empty when load_images is off).",
        "The absolute path of each image, in the same order (a list).",
        "How many images were listed.",
        "The image files, not decoded: connect to Caption Image's image_files, which reads batch_size images at a "
        "time (memory independent of the folder's size).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "path": ("STRING", {"default": "", "tooltip": "Folder of images: absolute, or relative to ComfyUI's input folder. Inside ComfyUI only the input and output folders and those the server owner allows (LLM_ASSIST_ALLOWED_DIRS, README 'Owner settings') can be read."}),
                "pattern": ("STRING", {"default": "*", "tooltip": "Glob pattern for file names, e.g. *.png or cat_*. Only image files are loaded."}),
                "sort": (SORTS, {"default": "natural", "tooltip": "Order: name (plain text order), natural (img2 before img10), mtime (oldest first)."}),
                "start": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "tooltip": "Skip this many images first (0-based index of the first image)."}),
                "limit": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "tooltip": "Load at most this many images; 0 = all."}),
                "recursive": ("BOOLEAN", {"default": False, "tooltip": "Also look in sub-folders."}),
            },
            "optional": {  # optional: API prompts written before these existed still validate
                "max_side": ("INT", {"default": 0, "min": 0, "max": 16384, "tooltip": (
                    "Downscale on load so the longer side is at most this many px (aspect kept; JPEGs are decoded at "
                    "reduced scale); 0 = full size. Captioners read small images (BLIP 384 px): 1024 keeps detail and "
                    "cuts a 12 MP photo's memory about 10x.")}),
                "load_images": ("BOOLEAN", {"default": True, "tooltip": (
                    "On: decode every image into the images output (all of them in memory at once). Off: decode "
                    "nothing here and use the files output with Caption Image (bounded memory for any folder).")}),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, path, pattern="*", sort="natural", start=0, limit=0, recursive=False, **_settings):
        from ..core import image_folder

        try:
            return image_folder.folder_signature(_allowed_images(path, pattern, sort, start, limit, recursive))
        except ValueError as exc:  # reported properly when the node runs
            return str(exc)

    def load(self, path, pattern="*", sort="natural", start=0, limit=0, recursive=False, max_side=0,
             load_images=True, prompt=None, unique_id=None):
        from ..core import host, image_folder

        paths = _allowed_images(path, pattern, sort, start, limit, recursive)
        files = image_folder.ImageFiles(tuple(paths), int(max_side))
        images = []
        if not load_images:
            _refuse_linked_images(prompt, unique_id)
        else:
            bar = host.progress(len(paths), label="load images")
            for i, p in enumerate(paths):
                host.check_interrupt()
                images.append(image_folder.load_image(p, int(max_side)))
                bar.update_absolute(i + 1, len(paths))
        return (images, [str(p) for p in paths], len(paths), files)


def _refuse_linked_images(prompt, unique_id) -> None:
    """load_images is off: a node reading the (empty) images output would silently get nothing."""
    if not isinstance(prompt, dict) or unique_id is None:
        return
    users = sorted(str(node_id) for node_id, node in prompt.items() if isinstance(node, dict)
                   for value in (node.get("inputs") or {}).values()
                   if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(unique_id) and value[1] == 0)
    if users:
        raise ValueError(
            f"load_images is off but node(s) {', '.join(users)} read the images output: turn load_images on, or "
            "connect the files output to Caption Image's image_files instead (bounded memory)")


class LLMAssistSaveCaptions:
    DESCRIPTION = (
        "Write each caption to <image name>.txt beside its image, or into an output folder (keeping the images' "
        "sub-folders). Two images that would share a caption file (x.png and x.jpg) are an error before anything is "
        "written. Writes are atomic (never a half-written file), keep an existing file's permissions and never land "
        "outside the chosen folder; re-queueing re-runs the node when a caption file was deleted or changed."
    )
    CATEGORY = category("io")
    FUNCTION = "save"
    OUTPUT_NODE = True
    INPUT_IS_LIST = True
    RETURN_TYPES = ("INT", "STRING")
    RETURN_NAMES = ("written", "summary")
    OUTPUT_TOOLTIPS = ("How many caption files were written (skipped ones not counted).", "A one-line summary.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "captions": ("STRING", {"forceInput": True, "tooltip": "Captions (a list), e.g. from Caption Image."}),
                "image_paths": ("STRING", {"forceInput": True, "tooltip": "The image path of each caption (the paths output of Load Image Folder), same order and count."}),
                "mode": (MODES, {"default": "skip existing", "tooltip": "skip existing: keep files already there (resume a run). overwrite: replace them. append: add the caption on a new line."}),
                "output_folder": ("STRING", {"default": "", "tooltip": "Empty: beside each image. Otherwise this folder (relative = inside ComfyUI's output folder)."}),
                "prefix": ("STRING", {"default": "", "tooltip": "Text put before every caption, verbatim (e.g. a trigger word and ', ')."}),
                "suffix": ("STRING", {"default": "", "tooltip": "Text put after every caption, verbatim."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **_):
        """Re-run when a caption file this node wrote was deleted or changed since (ComfyUI would
        otherwise serve the cached "N written" and write nothing)."""
        from ..core import captioning_folder

        return captioning_folder.WRITTEN.fingerprint(first(unique_id) or "")

    def save(self, captions, image_paths, mode="skip existing", output_folder="", prefix="", suffix="",
             unique_id=None):
        from ..core import captioning_folder, host, image_folder

        captions = captions if isinstance(captions, list) else [captions]
        paths = image_paths if isinstance(image_paths, list) else [image_paths]
        if len(captions) != len(paths):
            raise ValueError(
                f"captions has {len(captions)} items but image_paths has {len(paths)}: connect the paths output of the "
                "Load Image Folder that fed the captioned images"
            )
        mode, folder = first(mode), first(output_folder) or ""
        prefix, suffix = first(prefix) or "", first(suffix) or ""
        try:  # every target checked (one caption file per image, writable, UTF-8 to append) before writing
            targets = captioning_folder.caption_targets(paths, folder)
            _check_caption_writes(paths, folder, targets)  # the server owner's folders only (core.owner)
            captioning_folder.check_targets(targets, mode)
        except OSError as exc:
            raise ValueError(f"image_paths item {str(exc.filename or paths[0])[:60]!r} is not a usable path "
                             f"({exc.strerror}): connect the paths output of Load Image Folder") from None
        results = []
        try:
            for caption, path, target in zip(captions, paths, targets):
                host.check_interrupt()
                results.append(image_folder.write_caption(path, str(caption), mode=mode, prefix=prefix,
                                                          suffix=suffix, target=target))
        finally:
            captioning_folder.WRITTEN.record(first(unique_id) or "", targets)
        written = sum(1 for r in results if r.status != "skipped")
        summary = image_folder.summarize(results)
        return {"ui": {"text": [summary]}, "result": (written, summary)}


NODE_CLASS_MAPPINGS = {
    "LLMAssistLoadImageFolder": LLMAssistLoadImageFolder,
    "LLMAssistSaveCaptions": LLMAssistSaveCaptions,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LLMAssistLoadImageFolder": "Load Image Folder",
    "LLMAssistSaveCaptions": "Save Captions",
}
