"""A sweep report as one self-contained HTML page: inline CSS, tables inline, PNGs embedded as base64.

One file that can be mailed, attached or opened from a CI artefact without the images beside it.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from rnnbench.reports.tables import Table

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f2f2f2; }
pre { background: #f7f7f7; padding: 0.75em; overflow-x: auto; }
img { max-width: 100%; display: block; margin: 1em 0; }
""".strip()


def image(path: Path) -> str:
    """An <img> holding the PNG at `path` as a data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def page(title: str, sections: list[tuple[str, list[str | Table]]]) -> str:
    """A complete HTML document; each section is a heading and a list of paragraphs (str) or tables."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, items in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for item in items:
            parts.append(item.html() if isinstance(item, Table) else item)
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>\n{CSS}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def paragraph(text: str) -> str:
    """A Markdown paragraph as a <p>: escaped, with **bold**, *italic* and `code` rendered."""
    escaped = html.escape(text)
    for pattern, tag in ((r"\*\*(.+?)\*\*", "strong"), (r"\*(.+?)\*", "em"), (r"`(.+?)`", "code")):
        escaped = re.sub(pattern, rf"<{tag}>\1</{tag}>", escaped)
    return f"<p>{escaped}</p>"


def code(text: str) -> str:
    """Command lines as an escaped <pre>."""
    return f"<pre>{html.escape(text)}</pre>"
