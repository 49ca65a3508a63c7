"""The SWORD zText reader: a tiny module written here byte by byte (so no Debian package is needed), OSIS cleaning,
finding modules and the one-line error naming the package, and Genesis 1:1 of the real modules when installed."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from rnnbench.tasks.sword import clean_osis, find_module, load_module, read_module

# Slots of a tiny Old Testament: module and testament headers, a book header with its heading, a chapter header,
# then verses with a note, a canonical psalm title, a leftover USFM marker, Strong's tags and an empty verse.
OT_RAW = [
    "",
    '<milestone type="x-importer" n="$Rev$"/>',
    '<div osisID="Gen" type="book"/> <title level="1" type="main">The First Book</title> <div type="x-p"/>',
    '<chapter n="1" osisID="Gen.1" sID="Gen.1"/> ',
    'In the <w lemma="strong:H7225">beginning</w>.<note placement="foot"><reference>1.1 </reference>or, first</note> ',
    '<title canonical="true" type="psalm">A <w lemma="strong:H4210">Psalm</w>.</title> Praise the \\nd LORD ',
    "",
    "¶ And  it\nwas so.",
]
OT_CLEAN = ["", "", "", "", "In the beginning.", "A Psalm. Praise the LORD", "", "¶ And it was so."]
NT_RAW = ["", "", '<chapter n="1" osisID="Matt.1"/>', "<w>Jesus</w> wept. "]


def write_testament(prefix: Path, slots: list[str], per_block: int = 3) -> None:
    """Write `<prefix>.bzs/.bzv/.bzz`: zlib blocks of `per_block` slots; an empty slot gets a zero-size entry."""
    bzs, bzv, bzz = bytearray(), bytearray(), bytearray()
    for first in range(0, len(slots), per_block):
        block, raw = len(bzs) // 12, bytearray()
        for text in slots[first : first + per_block]:
            data = text.encode("utf-8")
            bzv += struct.pack("<IIH", block if data else 0, len(raw) if data else 0, len(data))
            raw += data
        packed = zlib.compress(bytes(raw))
        bzs += struct.pack("<III", len(bzz), len(packed), len(raw))
        bzz += packed
    for suffix, data in ((".bzs", bzs), (".bzv", bzv), (".bzz", bzz)):
        prefix.with_suffix(suffix).write_bytes(bytes(data))


def write_module(folder: Path, ot: list[str], nt: list[str] | None = None) -> Path:
    """A zText module folder with an OT (and optionally an NT) testament; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    write_testament(folder / "ot", ot)
    if nt is not None:
        write_testament(folder / "nt", nt)
    return folder


def installed(name: str) -> bool:
    """Whether find_module can see the module (the Debian package or RNNBENCH_SWORD_DIR)."""
    try:
        find_module(name)
    except FileNotFoundError:
        return False
    return True


GET_BIBLES = "apt-get install sword-text-kjv sword-text-sparv"  # the command that brings the real texts
needs_bibles = pytest.mark.skipif(
    not (installed("engKJV2006eb") and installed("spaRV1909eb")),
    reason=f"needs the KJV and RV 1909 Bibles: {GET_BIBLES} (or set RNNBENCH_SWORD_DIR to a SWORD library)",
)


def test_reads_every_slot_in_order_across_blocks_and_testaments(tmp_path: Path) -> None:
    folder = write_module(tmp_path / "tiny", OT_RAW, NT_RAW)
    assert read_module(folder) == [*OT_CLEAN, "", "", "", "Jesus wept."]


def test_a_new_testament_only_module_reads_its_slots(tmp_path: Path) -> None:
    folder = tmp_path / "nt_only"
    folder.mkdir()
    write_testament(folder / "nt", NT_RAW)
    assert read_module(folder) == ["", "", "", "Jesus wept."]


def test_cleaning_keeps_the_printed_verse() -> None:
    raw = '<q who="Jesus"><w lemma="G1">I</w> am</q><note n="a">see <i>v. 2</i></note> <divineName>Lord</divineName>.'
    assert clean_osis(raw) == "I am Lord."
    assert clean_osis('<title type="main">Heading</title><title canonical="true">Canon</title>') == "Canon"
    assert clean_osis("the \\+nd LORD\\+nd* \\nd God") == "the LORD God"


def test_finds_modules_under_a_library_or_a_folder_of_modules_case_insensitively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = write_module(tmp_path / "lib" / "modules" / "texts" / "ztext" / "engkjv2006eb", OT_RAW)
    loose = write_module(tmp_path / "loose" / "spaRV1909eb", OT_RAW)
    monkeypatch.setenv("RNNBENCH_SWORD_DIR", str(tmp_path / "lib"))
    assert find_module("engKJV2006eb") == library
    assert find_module("spaRV1909eb", search=[tmp_path / "loose"]) == loose
    assert load_module("engKJV2006eb") == tuple(OT_CLEAN)


def test_rnnbench_sword_dir_replaces_the_default_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rnnbench.tasks.sword.SYSTEM_LIBRARY", tmp_path / "system")
    write_module(tmp_path / "system" / "modules" / "texts" / "ztext" / "engKJV2006eb", OT_RAW)
    monkeypatch.delenv("RNNBENCH_SWORD_DIR", raising=False)
    assert find_module("engKJV2006eb") == tmp_path / "system" / "modules" / "texts" / "ztext" / "engKJV2006eb"
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("RNNBENCH_SWORD_DIR", str(tmp_path / "empty"))  # how CI shows a machine without the data
    with pytest.raises(FileNotFoundError, match=f"not found in {tmp_path / 'empty'}: apt-get install sword-text-kjv"):
        find_module("engKJV2006eb")


def test_a_missing_module_says_which_package_to_install(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="apt-get install sword-text-sparv") as err:
        find_module("spaRV1909eb", search=[tmp_path])
    assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="no zText module"):
        read_module(tmp_path / "empty")


@needs_bibles
def test_the_installed_bibles_align_verse_by_verse() -> None:
    kjv, rv = load_module("engKJV2006eb"), load_module("spaRV1909eb")
    assert len(kjv) == len(rv) == 32361  # 31,102 verses, 1,189 chapter and 66 book headers, 4 testament headers
    assert kjv[4] == "In the beginning God created the heaven and the earth."  # Genesis 1:1
    assert rv[4] == "EN el principio crió Dios los cielos y la tierra."  # the 1909 text capitalises its first word
    assert kjv[-1] == "The grace of our Lord Jesus Christ be with you all. Amen."  # Revelation 22:21
    assert sum(map(bool, kjv)) == 31102 and sum(map(bool, rv)) == 31084  # RV merges 18 verses into neighbours
