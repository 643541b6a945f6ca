"""Sidecars and tagged files for the enrichment tests: a Kodi movie.nfo, hostile NFOs, retagging."""

import subprocess
from pathlib import Path

from offload.lib import ffmpeg


def retag(path: Path, *metadata: str) -> Path:
    """Copy the file's streams with new tags, e.g. "title=X" or "-metadata:s:a:0 title=Y"."""
    args = []
    for entry in metadata:
        flag, _, value = entry.rpartition(" ") if entry.startswith("-") else ("-metadata", " ", entry)
        args += [flag, value]
    tagged = path.with_name("tagged-" + path.name)
    cmd = [ffmpeg.ffmpeg_binary(), "-v", "error", "-y", "-i", str(path), "-map", "0", "-c", "copy", *args, str(tagged)]
    subprocess.run(cmd, check=True, capture_output=True)
    tagged.replace(path)
    return path


MOVIE_NFO = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<movie>
  <title>Heat</title>
  <originaltitle>Heat (Original)</originaltitle>
  <year>1995</year>
  <plot>A group of professional bank robbers start to feel the heat.</plot>
  <genre>Crime</genre>
  <genre>Thriller</genre>
  <director>Michael Mann</director>
  <actor><name>Al Pacino</name><role>Vincent Hanna</role></actor>
  <actor><name>Robert De Niro</name><role>Neil McCauley</role></actor>
  <uniqueid type="imdb">tt0113277</uniqueid>
  <uniqueid type="tmdb" default="true">949</uniqueid>
</movie>
"""


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE movie [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<movie><title>&lol9;</title></movie>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE movie [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<movie><title>&secret;</title></movie>
"""


def write_hostile(path: Path, case: str) -> None:
    if case == "entity expansion":
        path.write_bytes(BILLION_LAUGHS)
    elif case == "external entity":
        path.write_bytes(EXTERNAL_ENTITY)
    elif case == "50 MB":
        with open(path, "wb") as fh:
            fh.write(b"<movie><title>Big</title><plot>")
            chunk = b"a" * (1024 * 1024)
            for _ in range(50):
                fh.write(chunk)
            fh.write(b"</plot></movie>")
    elif case == "invalid UTF-8":
        path.write_bytes(b"<movie><title>Caf\xe9 \xff\xfe</title></movie>")
    else:
        raise AssertionError(case)


HOSTILE = {
    "entity expansion": "declares the XML entity 'lol'",
    "external entity": "declares an external entity 'secret'",
    "50 MB": "is 50.0 MB; NFO files over 1.0 MB are not read",
    "invalid UTF-8": "is not valid UTF-8 (byte 0xe9 at offset 17)",
}
