"""The NFO provider: Kodi-style sidecars (`tvshow.nfo`, `movie.nfo`, `<name>.nfo`).

Sidecars come from anywhere, so they are read defensively: only regular files inside the
library roots, at most OFFLOAD_NFO_MAX_BYTES, strict UTF-8, and parsed with defusedxml so
entity expansion and external entities are refused. A hostile file fails this provider
with a readable reason; the other providers go on.
"""

import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
from django.conf import settings

from offload.handlers.enrich.providers import Context, Proposal, ProviderError
from offload.lib.paths import is_inside_roots

ROOT_TAGS = ("movie", "tvshow", "episodedetails")
TMDB_URL = re.compile(rb"themoviedb\.org/(movie|tv)/(\d+)")
XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
YEAR = re.compile(r"^\s*(\d{4})")


def provide(context: Context) -> Proposal:
    if context.path is None:
        return Proposal(inputs=[], status="no nfo")
    found = sidecars(context.path, context.library_root)
    if not found:
        return Proposal(inputs=[], status="no nfo")
    fields: dict[str, Any] = {}
    hints: dict[str, Any] = {}
    inputs = []
    # Show-level first, file-level last: the most specific sidecar wins.
    for path in found:
        name = path.relative_to(context.library_root).as_posix()
        data = read_sidecar(path, name)
        inputs.append([name, hashlib.sha256(data).hexdigest()])
        parsed_fields, parsed_hints = parse_nfo(data, name)
        # An empty element says nothing; it does not erase what a broader sidecar said.
        fields.update({k: v for k, v in parsed_fields.items() if v not in (None, "", [])})
        hints.update(parsed_hints)
    return Proposal(fields=fields, inputs=inputs, hints=hints, detail={"files": [n for n, _ in inputs]})


def sidecars(media_path: Path, library_root: Path) -> list[Path]:
    """The NFO files that describe a media file, least specific first."""
    folder = media_path.parent
    candidates = []
    # tvshow.nfo sits in the show's folder: the episode's own, or the one above a season folder.
    for show_folder in (folder.parent, folder):
        if show_folder == library_root or show_folder.is_relative_to(library_root):
            candidates.append(show_folder / "tvshow.nfo")
    candidates += [folder / "movie.nfo", media_path.with_suffix(".nfo")]
    found = []
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
            info = resolved.stat()
        except OSError:
            continue
        # A link out of the roots, or a FIFO or device named *.nfo, is not read at all.
        if stat.S_ISREG(info.st_mode) and is_inside_roots(resolved) and candidate not in found:
            found.append(candidate)
    return found


def read_sidecar(path: Path, name: str) -> bytes:
    """The file's bytes, refused past OFFLOAD_NFO_MAX_BYTES or when not valid UTF-8."""
    limit = settings.OFFLOAD_NFO_MAX_BYTES
    try:
        # O_NONBLOCK: a FIFO swapped in since sidecars() looked is opened without waiting
        # for a writer, and then refused by the fstat below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as fh:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ProviderError(f"{name} is not a regular file.")
            if info.st_size > limit:
                raise ProviderError(f"{name} is {_size(info.st_size)}; NFO files over {_size(limit)} are not read.")
            # Bounded again: the file may grow while it is read.
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ProviderError(f"{name} could not be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ProviderError(f"{name} is larger than {_size(limit)}; NFO files that large are not read.")
    declared = XML_ENCODING.match(data)
    if declared is None or declared.group(1).lower().replace(b"_", b"-") in (b"utf-8", b"utf8"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProviderError(
                f"{name} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})."
            ) from None
    return data


def parse_nfo(data: bytes, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Descriptive fields and TMDb hints from one NFO's bytes."""
    body = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not body.startswith(b"<"):
        # Kodi also accepts an NFO holding just the scraper's URL.
        hints = _url_hints(body)
        if hints:
            return {}, hints
        raise ProviderError(f"{name} is neither XML nor a TMDb link.")
    root, rest = _parse(data, name)
    if root.tag not in ROOT_TAGS:
        raise ProviderError(f"{name} has a <{root.tag[:40]}> root; expected one of {', '.join(ROOT_TAGS)}.")
    fields, hints = fields_from_element(root)
    return fields, {**_url_hints(rest), **hints}


def _parse(data: bytes, name: str) -> tuple[Element, bytes]:
    """The root element, and anything after it (Kodi allows a URL line after the XML)."""
    try:
        return SafeET.fromstring(data), b""
    except defusedxml.DefusedXmlException as exc:
        raise ProviderError(f"{name} was refused: {_refusal(exc)}") from None
    except ParseError as exc:
        first_error = exc
    # Retry with the document cut after its first root element; multi-episode files and a
    # trailing link are common. Cutting can only remove content, never add entities.
    for tag in ROOT_TAGS:
        end = data.find(f"</{tag}>".encode())
        if end != -1:
            end += len(tag) + 3
            try:
                return SafeET.fromstring(data[:end]), data[end:]
            except (defusedxml.DefusedXmlException, ParseError):
                break
    raise ProviderError(f"{name} is not well-formed XML ({first_error}).")


def _refusal(exc: defusedxml.DefusedXmlException) -> str:
    if isinstance(exc, defusedxml.EntitiesForbidden):
        if exc.sysid or exc.pubid:
            return f"it declares an external entity {exc.name!r}, which could read files or reach the network."
        return f"it declares the XML entity {exc.name!r}; entities (which can expand without bound) are not allowed."
    if isinstance(exc, defusedxml.ExternalReferenceForbidden):
        return "it refers to an external resource, which could read files or reach the network."
    if isinstance(exc, defusedxml.DTDForbidden):
        return "it contains a document type definition, which is not allowed."
    return f"it uses an XML feature that is not allowed ({type(exc).__name__})."


def fields_from_element(root: Element) -> tuple[dict[str, Any], dict[str, Any]]:
    """Descriptive fields and hints from a <movie>, <tvshow> or <episodedetails> element; pure."""
    year = _int(_text(root, "year")) or _year(_text(root, "premiered") or _text(root, "aired"))
    people = [*_texts(root, "director"), *(_text(actor, "name") for actor in root.findall("actor"))]
    plot = _text(root, "plot") or _text(root, "outline")
    tmdb_id = _tmdb_id(root)
    if root.tag == "tvshow":
        # The show's folder sidecar: what every episode inherits.
        fields = {"series_title": _text(root, "title"), "genres": _texts(root, "genre"), "people": people}
        hints = {"tmdb_tv_id": tmdb_id, "series_year": year}
        return fields, {k: v for k, v in hints.items() if v is not None}
    fields = {
        "title": _text(root, "title"),
        "original_title": _text(root, "originaltitle"),
        "year": year,
        "overview": plot,
        "genres": _texts(root, "genre"),
        "people": people,
        "tags": _texts(root, "tag"),
    }
    if root.tag == "episodedetails":
        fields.update(
            series_title=_text(root, "showtitle"),
            season=_int(_text(root, "season")),
            episode=_int(_text(root, "episode")),
        )
        return fields, {}
    return fields, ({"tmdb_movie_id": tmdb_id} if tmdb_id else {})


def _text(element: Element, tag: str) -> str:
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _texts(element: Element, tag: str) -> list[str]:
    return [(child.text or "").strip() for child in element.findall(tag) if (child.text or "").strip()]


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _year(text: str) -> int | None:
    match = YEAR.match(text)
    return int(match.group(1)) if match else None


def _tmdb_id(root: Element) -> int | None:
    for uid in root.findall("uniqueid"):
        if uid.get("type", "").lower() == "tmdb":
            return _int((uid.text or "").strip())
    return _int(_text(root, "tmdbid"))


def _url_hints(text: bytes) -> dict[str, Any]:
    match = TMDB_URL.search(text)
    if not match:
        return {}
    kind, number = match.group(1).decode(), int(match.group(2))
    return {"tmdb_movie_id": number} if kind == "movie" else {"tmdb_tv_id": number}


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.0f} kB"
