"""Read the verse texts of a SWORD zText Bible module: public-domain natural text for the language tasks.

The `char_lm` and `translate` tasks need real text whose license allows redistribution and whose source a
Debian CI box can install offline from its own archive. Debian packages CrossWire's SWORD modules: `sword-text-kjv`
(King James Version, module engKJV2006eb) and `sword-text-sparv` (Reina-Valera 1909, spaRV1909eb), both public
domain and both in the KJV versification, so verse i of one is verse i of the other (a parallel corpus for free).

Getting the data: `apt-get install sword-text-kjv sword-text-sparv` (files under /usr/share/sword), or point
`RNNBENCH_SWORD_DIR` at a SWORD library (the folder holding `modules/texts/ztext/<module>/`) or at a folder holding
the module folders themselves (then only that folder is searched). Without the data the tests that need the real
texts skip, naming the apt-get command; everything else runs on tiny modules the tests write themselves.

The zText format, per testament `ot` and `nt` (all integers little-endian):

- `<t>.bzv`: one 10-byte entry per versification slot: block (u32), offset (u32) and size (u16) of the slot's text
  inside the decompressed block;
- `<t>.bzs`: one 12-byte entry per block: offset (u32) and compressed size (u32) in `.bzz`, uncompressed size (u32);
- `<t>.bzz`: the zlib-compressed blocks, back to back.

Slots follow the versification: per testament two header slots, then per book a book header and per chapter a
chapter header followed by the chapter's verses. Texts are OSIS markup; `clean_osis` keeps what is printed as
the verse: notes and non-canonical titles (book headings) are dropped, canonical titles (psalm superscriptions) kept,
tags and leftover USFM markers (`\\nd`) stripped and whitespace normalised. Header slots come out empty.
"""

from __future__ import annotations

import functools
import os
import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

TESTAMENTS = ("ot", "nt")
SLOT = struct.Struct("<IIH")  # .bzv: block, offset, size
BLOCK = struct.Struct("<III")  # .bzs: offset, compressed size, uncompressed size
SYSTEM_LIBRARY = Path("/usr/share/sword")  # where the Debian packages install
DEBIAN_PACKAGES = {"engKJV2006eb": "sword-text-kjv", "spaRV1909eb": "sword-text-sparv"}

_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_HEADING = re.compile(r'<title\b(?![^>]*canonical="true")[^>]*>.*?</title>', re.S)
_TAG = re.compile(r"<[^>]*>")
_USFM = re.compile(r"\\\+?[a-z]+\d*\*?")


def clean_osis(raw: str) -> str:
    """The printed verse text of an OSIS fragment: no notes, headings, tags or USFM markers; single spaces."""
    text = _USFM.sub("", _TAG.sub("", _HEADING.sub("", _NOTE.sub("", raw))))
    return " ".join(text.split())


def _read_testament(prefix: Path) -> list[str]:
    """Raw slot texts of one testament's `.bzs/.bzv/.bzz` files ("" for empty slots)."""
    blocks = list(BLOCK.iter_unpack(prefix.with_suffix(".bzs").read_bytes()))
    compressed = prefix.with_suffix(".bzz").read_bytes()
    decompressed: dict[int, bytes] = {}
    texts = []
    for block, offset, size in SLOT.iter_unpack(prefix.with_suffix(".bzv").read_bytes()):
        if size == 0:
            texts.append("")
            continue
        if block not in decompressed:
            start, length, _ = blocks[block]
            decompressed[block] = zlib.decompress(compressed[start : start + length])
        texts.append(decompressed[block][offset : offset + size].decode("utf-8"))
    return texts


def read_module(path: str | Path) -> list[str]:
    """Cleaned texts of every slot of the zText module in `path`, Old then New Testament ("" for headers)."""
    path = Path(path)
    present = [path / t for t in TESTAMENTS if (path / f"{t}.bzv").is_file()]
    if not present:
        raise FileNotFoundError(f"no zText module in {path}: expected ot.bzv/.bzs/.bzz or nt.bzv/.bzs/.bzz")
    return [clean_osis(raw) for prefix in present for raw in _read_testament(prefix)]


def default_search() -> tuple[Path, ...]:
    """Where `find_module` looks: $RNNBENCH_SWORD_DIR alone when it is set, else /usr/share/sword and ~/.sword.

    The setting replaces the defaults rather than adding to them, so pointing it at an empty folder shows what a
    machine without the Debian packages does (CI checks the tests skip that way) even where they are installed."""
    env = os.environ.get("RNNBENCH_SWORD_DIR")
    return (Path(env),) if env else (SYSTEM_LIBRARY, Path.home() / ".sword")


def find_module(name: str, search: Sequence[str | Path] | None = None) -> Path:
    """The folder of zText module `name` (case-insensitive) under the first search root that has it."""
    roots = [Path(root) for root in (default_search() if search is None else search)]
    for root in roots:
        for parent in (root / "modules" / "texts" / "ztext", root):
            if not parent.is_dir():
                continue
            for folder in sorted(parent.iterdir()):
                if folder.name.lower() == name.lower() and any((folder / f"{t}.bzv").is_file() for t in TESTAMENTS):
                    return folder
    package = DEBIAN_PACKAGES.get(name, "the Debian package that ships it")
    raise FileNotFoundError(
        f"SWORD module {name} not found in {', '.join(map(str, roots))}: "
        f"apt-get install {package}, or set RNNBENCH_SWORD_DIR to a SWORD library holding it"
    )


@functools.lru_cache(maxsize=4)
def _read_cached(path: str) -> tuple[str, ...]:
    """read_module, once per process and module folder."""
    return tuple(read_module(path))


def load_module(name: str) -> tuple[str, ...]:
    """The cleaned slot texts of an installed module (see `find_module`), read once per process."""
    return _read_cached(str(find_module(name)))
