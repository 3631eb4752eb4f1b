"""The links of the project's Markdown pages, and which of them do not work where the pages are.

A page's link works when it stays inside the folder the pages were copied to (the repository, or the
installed copy), names a file that is there and, with `#anchor`, a heading of that file. Absolute links
may point at the gateway itself on loopback (the demo's page) and nowhere else: what a technician needs
to use the product is in the repository, not on a web site that may be gone or unreachable from the line.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

# [text](target) and ![alt](target), and <scheme://...> autolinks; code spans and fences are skipped first
_INLINE = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def links(markdown: str) -> list[str]:
    """Every link target of a Markdown text, in order (code is not Markdown: its brackets are not links)."""
    text = _CODE.sub("", _FENCE.sub("", markdown))
    return [m.group(1) for m in _INLINE.finditer(text)] + [m.group(1) for m in _AUTOLINK.finditer(text)]


def slug(heading: str) -> str:
    """The anchor a heading gets (GitHub's rule: lower case, punctuation dropped, spaces to hyphens)."""
    heading = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = "".join(ch for ch in heading if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a page's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for match in _HEADING.finditer(_FENCE.sub("", markdown)):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def problems(root: Path, pages: list[Path]) -> list[str]:
    """'page: target: why' for every link of `pages` that does not work inside `root`."""
    root = root.resolve()
    found = []
    for page in pages:
        for target in links(page.read_text(encoding="utf-8")):
            why = _problem(root, page.resolve(), target)
            if why is not None:
                found.append(f"{page.resolve().relative_to(root)}: {target}: {why}")
    return found


def _problem(root: Path, page: Path, target: str) -> str | None:
    parts = urlsplit(target)
    if parts.scheme or target.startswith("//"):
        if parts.scheme in ("http", "https") and (parts.hostname or "") in {h.strip("[]") for h in LOCAL_HOSTS}:
            return None
        return "leaves the repository (an outside address)"
    path, anchor = unquote(parts.path), unquote(parts.fragment)
    file = (page.parent / path).resolve() if path else page
    if not file.is_relative_to(root):
        return "leaves the repository (a path outside it)"
    if not file.exists():
        return "no such file in the repository"
    if anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
        return f"no heading #{anchor} in {file.relative_to(root)}"
    return None
