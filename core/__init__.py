"""Pack logic. Never imports ComfyUI (core/host.py is the one adapter)."""
