"""Batch inputs: files, folders, glob patterns and object-store URIs → one source per image or scene.

Local paths are listed here (folders sorted, hidden files skipped, ``**`` patterns
cross folders).  A URI (``s3://bucket/prefix/``, ``gs://...``, ``file:///...``) is
listed and read through ``pyarrow.fs``, the filesystem layer Ray Data uses (it
comes with ``ovtools[ray]``): a URI naming a folder (prefix) gives its files.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..io.inputs import expand_image_inputs, files_in, is_image_file, is_pattern
from ..io.ply import OPEN3D_SUFFIXES

SCENE_SUFFIXES = frozenset({".ply", *OPEN3D_SUFFIXES})


def is_uri(item: str | Path) -> bool:
    """Whether ``item`` is a URI with a scheme (``s3://...``), not a local path."""
    s = str(item)
    return "://" in s and s.split("://", 1)[0].isidentifier()


def _wanted(name: str, task: str) -> bool:
    if task == "segment3d":
        return Path(name).suffix.lower() in SCENE_SUFFIXES
    return is_image_file(Path(name))


def _is_rgbd_folder(p: Path) -> bool:
    return (p / "color").is_dir()


def _scenes_in(folder: Path, recursive: bool) -> list[Path]:
    """Scenes in a local folder: the folder itself if it is an RGB-D folder, else its scene files and
    RGB-D sub-folders (hidden ones skipped)."""
    if _is_rgbd_folder(folder):
        return [folder]
    found = [p for p in files_in(folder, recursive) if _wanted(p.name, "segment3d")]
    it = folder.rglob("*") if recursive else folder.iterdir()
    found += [p for p in it if p.is_dir() and not p.name.startswith(".") and _is_rgbd_folder(p)]
    return sorted(found)


def _list_uri(uri: str, task: str, recursive: bool) -> tuple[list[str], str | None]:
    import pyarrow.fs as pafs  # optional: object-store inputs need ovtools[ray] (pyarrow)

    fs, path = pafs.FileSystem.from_uri(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return [], "no such object or prefix"
    if info.type == pafs.FileType.File:
        return [uri], None
    scheme = uri.split("://", 1)[0]
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=recursive))
    if task == "segment3d" and any(i.base_name == "color" and i.type == pafs.FileType.Directory for i in infos):
        return [uri], None
    found = sorted(f"{scheme}://{i.path}" if scheme != "file" else f"file://{i.path}"
                   for i in infos if i.type == pafs.FileType.File and _wanted(i.base_name, task)
                   and not i.base_name.startswith("."))
    return found, None if found else "prefix holds no input files"


def list_inputs(items: Sequence[str | Path], task: str = "detect",
                recursive: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """Turn batch arguments into sources (one per image, or per scene for segment3d).

    Args:
        items: files (kept whatever their suffix: a non-image fails by name), folders,
            glob patterns and object-store URIs (a file or a prefix).
        task: ``"segment3d"`` lists scenes (``.ply``/``.pcd``/... files and RGB-D folders,
            i.e. folders with a ``color/`` sub-folder); other tasks list images.
        recursive: also descend into sub-folders (and below URI prefixes).

    Returns:
        ``(sources, problems)``: unique sources as strings in argument order, and
        ``(argument, reason)`` for arguments that yield nothing.
    """
    sources: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(s: str) -> None:
        key = s if is_uri(s) else str(Path(s).resolve())
        if key not in seen:
            seen.add(key)
            sources.append(s)

    for item in map(str, items):
        if is_uri(item):
            try:
                found, reason = _list_uri(item, task, recursive)
            except (OSError, ValueError) as e:  # unknown scheme, no credentials, bad bucket
                found, reason = [], str(e).splitlines()[0] if str(e) else type(e).__name__
            for s in found:
                add(s)
            if reason:
                problems.append((item, reason))
            continue
        if task != "segment3d":  # local images: the commands' own listing (every suffix the decoder opens)
            local = expand_image_inputs([item], recursive)
            for f in local.files:
                add(str(f))
            problems.extend(local.problems)
            continue
        p = Path(item).expanduser()
        if p.is_file() or (p.is_dir() and _is_rgbd_folder(p)):
            add(str(p))
        elif p.is_dir():
            found = _scenes_in(p, recursive)
            if not found:
                problems.append((item, "folder has no scenes" + ("" if recursive else " (try recursive)")))
            for f in found:
                add(str(f))
        elif is_pattern(item):
            n = 0
            for m in map(Path, sorted(glob.glob(os.path.expanduser(item), recursive=True))):
                hits = _scenes_in(m, recursive) if m.is_dir() else (
                    [m] if m.is_file() and _wanted(m.name, task) else [])
                for f in hits:
                    add(str(f))
                    n += 1
            if not n:
                problems.append((item, "pattern matches no scenes"))
        else:
            problems.append((item, "no such file or folder"))
    return sources, problems


@contextmanager
def local_copy(source: str | Path) -> Iterator[Path]:
    """A local path for ``source``: the path itself, or a temporary copy of a URI's object or prefix.

    The copy (same file name) is removed when the ``with`` block ends.

    Raises:
        FileNotFoundError: the URI names nothing.
        OSError: the object store refused the read.
    """
    if not is_uri(source):
        yield Path(source)
        return
    import pyarrow.fs as pafs  # optional: object-store inputs need ovtools[ray] (pyarrow)

    fs, path = pafs.FileSystem.from_uri(str(source))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{source}: no such object or prefix")
    tmp = tempfile.mkdtemp(prefix="ovtools-input-")
    try:
        target = Path(tmp) / (info.base_name or "input")
        if info.type == pafs.FileType.Directory:
            pafs.copy_files(path, str(target), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        else:
            with fs.open_input_stream(path) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
