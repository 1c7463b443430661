"""Writing user files safely: atomic, modes kept, regular files only, problems found before work.

* ``atomic_write_text``: temp file in the target's folder, fsync, ``os.replace``. A new file gets
  the mode the user's umask gives (0644 under the usual 022), a rewritten file keeps its mode
  (``mkstemp`` alone would make every file 0600, unreadable for a training job run by another user).
* ``check_target_file``: the path a report or caption will be written to, resolved through
  symlinks (the link stays, its target is rewritten); refuses a directory, a device node, a FIFO
  or a socket, and a folder that cannot be written.
* ``check_output_folder``: a folder that is (or can be created as) a writable directory.

Imports nothing heavy.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp-llma"
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _describe_kind(st_mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(st_mode):
            return name
    return "not a regular file"


def os_problem(exc: OSError) -> str:
    """A short reason for an OSError ("permission denied", "file name too long" ...)."""
    if exc.errno == errno.ENAMETOOLONG:
        return "the path or one of its names is too long for the file system"
    return (exc.strerror or str(exc)).lower()


def nearest_existing(folder: Path) -> Path:
    """``folder`` or the closest parent of it that exists."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def check_output_folder(folder, what: str) -> Path:
    """``folder`` resolved; a clear ValueError when it is a file or cannot be written/created."""
    text = str(folder)
    try:
        path = Path(os.path.expanduser(text)).resolve()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{what} {text!r} is a file, not a folder: give a folder (it is created if missing)")
        base = nearest_existing(path)
        if not base.is_dir():
            raise ValueError(f"{what} {text!r} cannot be created: {base} is a file, not a folder: "
                             "give another folder")
        if not os.access(base, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {text!r} is not writable ({base} does not allow you to write): "
                             "fix its permissions or give another folder")
    except OSError as exc:
        raise ValueError(f"{what} {text[:200]!r} is not a usable folder ({os_problem(exc)}): give another folder") from None
    return path


def check_target_file(path, what: str) -> Path:
    """Where ``path`` is really written: symlinks resolved; refuses anything but a regular file."""
    text = str(path)
    try:
        given = Path(os.path.expanduser(text))
        target = given.resolve()
        if target.exists():
            st = target.stat()
            if not stat.S_ISREG(st.st_mode):
                via = f" (the symlink {given} points to {target})" if target != given.absolute() else ""
                raise ValueError(f"{what} {text!r} is {_describe_kind(st.st_mode)}{via}: only a regular file is "
                                 "written; give a file path")
            if not os.access(target.parent, os.W_OK | os.X_OK):
                raise ValueError(f"{what} {text!r} cannot be replaced: its folder {target.parent} is not writable")
        else:
            check_output_folder(target.parent, f"the folder of {what}")
    except OSError as exc:
        raise ValueError(f"{what} {text[:200]!r} is not a usable file path ({os_problem(exc)}): give another path") from None
    return target


def clear_stale_temps(targets) -> int:
    """Remove the temporary files a killed earlier run left beside ``targets`` (a SIGKILL between
    writing one and renaming it over its target); the run about to write those targets owns them.
    Returns how many were removed."""
    import glob

    removed = 0
    for target in targets:
        target = Path(target)
        pattern = f".{glob.escape(target.name[:100])}.*{TEMP_SUFFIX}"
        for stale in target.parent.glob(pattern):
            try:
                stale.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run", removed)
    return removed


def atomic_write_text(target, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically; keeps an existing file's mode, else follows the umask.

    A symlink is followed (its target is rewritten, the link stays); anything but a regular file
    is refused (see check_target_file).
    """
    target = check_target_file(target, "file")
    return atomic_write_bytes(target, text.encode(encoding), resolved=True)


def atomic_write_bytes(target, data: bytes, *, resolved: bool = False) -> Path:
    target = Path(target) if resolved else check_target_file(target, "file")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (POSIX; not possible on Windows)
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return target
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return target


def exclusive_path(path: Path) -> Path:
    """``path`` if nothing is there, else ``stem_1.ext``, ``stem_2.ext`` ... (never an existing file)."""
    if not os.path.lexists(path):
        return path
    n = 1
    while True:
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
        if not os.path.lexists(candidate):
            return candidate
        n += 1
