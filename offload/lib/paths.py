"""Library paths: where a library may live, and walking one without escaping the roots."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

# Files no library scan treats as media, whatever ffprobe might make of them.
SIDECAR_SUFFIXES = {
    ".nfo",
    ".txt",
    ".srt",
    ".ass",
    ".ssa",
    ".vtt",
    ".sub",
    ".idx",
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".bmp",
    ".webp",
    ".tbn",
    ".xml",
    ".json",
    ".db",
    ".ini",
    ".log",
    ".md",
    ".pdf",
    ".sfv",
    ".md5",
    ".part",
    ".tmp",
    ".cue",
    ".m3u",
    ".m3u8",
    ".lrc",
}
MEDIA_SUFFIXES = {
    ".mkv",
    ".mp4",
    ".m4v",
    ".avi",
    ".mov",
    ".wmv",
    ".mpg",
    ".mpeg",
    ".ts",
    ".m2ts",
    ".webm",
    ".flv",
    ".ogv",
    ".3gp",
    ".mp3",
    ".m4a",
    ".aac",
    ".flac",
    ".ogg",
    ".opus",
    ".wav",
    ".wma",
    ".alac",
    ".aiff",
    ".ape",
    ".mka",
}


class InvalidPath(ValueError):
    """A path that may not be used; the message says why, for the operator."""


def library_roots() -> list[Path]:
    return list(settings.OFFLOAD_LIBRARY_ROOTS)


def is_inside_roots(path: Path) -> bool:
    """Whether an already resolved path lies inside one of OFFLOAD_LIBRARY_ROOTS."""
    return any(path == root or path.is_relative_to(root) for root in library_roots())


def library_path_as_given(raw: str) -> Path:
    """The absolute, normalised path a library request names, read without touching the disk ("" for the first root)."""
    if not isinstance(raw, str) or "\x00" in raw:
        raise InvalidPath("A path is required.")
    candidate = Path(raw.strip())
    if not candidate.is_absolute():
        candidate = library_roots()[0] / candidate
    return Path(os.path.normpath(candidate))


def resolve_library_path(raw: str) -> Path:
    """The resolved directory a library may use, or InvalidPath saying why not."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPath("A path is required.")
    if "\x00" in raw:
        raise InvalidPath("The path contains a NUL byte.")
    roots = library_roots()
    try:
        candidate = Path(raw.strip()).expanduser()
        if not candidate.is_absolute():
            candidate = roots[0] / candidate
        # resolve() follows links, so a link inside a root pointing out of it is caught here.
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:
        # "~someone" unknown here, a link loop, a name longer than the filesystem allows.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidPath(f"The path cannot be resolved: {reason}") from None
    allowed = ", ".join(str(r) for r in roots)
    if not is_inside_roots(resolved):
        raise InvalidPath(f"The path must be inside the library roots ({allowed}).")
    try:
        is_dir = resolved.is_dir()
    except OSError as exc:
        raise InvalidPath(f"The path cannot be used: {exc.strerror or exc}.") from None
    if not is_dir:
        # Named as given: where a link leads is not the asker's to learn.
        raise InvalidPath(f"{raw.strip()} is not an existing directory.")
    return resolved


def resolve_item_path(library_root: Path, relative: str) -> Path:
    """The real file behind a media item, or InvalidPath when it escapes the roots."""
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise InvalidPath(f"{relative!r} is not a path inside the library.")
    resolved = (library_root / rel).resolve()
    if not is_inside_roots(resolved):
        raise InvalidPath(f"{relative!r} leads outside the library roots.")
    return resolved


@dataclass(frozen=True)
class FoundFile:
    relative_path: str
    real_path: Path
    size: int
    mtime: float


def walk_library(root: Path) -> Iterator[FoundFile]:
    """Regular files below root, following links only while they stay inside the roots.

    Hidden entries are skipped. Linked folders are walked after the real ones, and a
    folder reached twice is walked once, so a file is listed under its real path first.
    """
    seen_dirs: set[Path] = set()
    stack: list[tuple[Path, str]] = [(root, "")]
    linked: list[tuple[Path, str]] = []
    while stack or linked:
        directory, rel_dir = stack.pop() if stack else linked.pop(0)
        real_dir = directory.resolve()
        if real_dir in seen_dirs or not is_inside_roots(real_dir):
            continue
        seen_dirs.add(real_dir)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}{entry.name}"
            try:
                real = Path(entry.path).resolve()
                if not is_inside_roots(real):
                    continue
                if entry.is_dir(follow_symlinks=True):
                    (linked if entry.is_symlink() else stack).append((Path(entry.path), rel + "/"))
                elif entry.is_file(follow_symlinks=True):
                    st = real.stat()
                    yield FoundFile(rel, real, st.st_size, st.st_mtime)
            except OSError:
                # Vanished or unreadable mid-walk: the next scan sees it as it is then.
                continue


def is_sidecar(relative_path: str) -> bool:
    return Path(relative_path).suffix.lower() in SIDECAR_SUFFIXES


def has_media_suffix(relative_path: str) -> bool:
    return Path(relative_path).suffix.lower() in MEDIA_SUFFIXES
