"""Atlassian Document Format (ADF) ⇄ plain text, for Jira Cloud comment bodies.

Jira's REST API v3 returns comment bodies as ADF, a JSON tree (``{"type": "doc", "version": 1,
"content": [...]}``); its webhooks (REST v2 shapes) send them as plain strings. The model keeps
plain text (``docs/DATA_MODEL.md``):

* ``text`` nodes give their text (marks such as bold or links are dropped, a link's text kept);
* ``hardBreak`` is a newline; block nodes (paragraph, heading, blockquote, code block, panel,
  rule, table row) end with one; list items start with ``- `` (bullet) or ``N. `` (ordered);
  table cells are separated by `` | ``;
* ``mention`` → its ``attrs.text`` (``@Jane Doe``), ``emoji`` → ``attrs.text`` or
  ``attrs.shortName``, ``status`` → ``attrs.text``, ``date`` → ``attrs.timestamp``,
  ``inlineCard`` / ``blockCard`` → ``attrs.url``; media and extensions give nothing.

The walk is bounded (:data:`MAX_DEPTH`, :data:`MAX_NODES`); what lies beyond is dropped.
:func:`from_text` builds the ADF keyway posts: one paragraph per blank-line-separated block,
single newlines as ``hardBreak``.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 64
MAX_NODES = 50_000
_BLOCKS = frozenset({"paragraph", "heading", "blockquote", "codeBlock", "panel", "rule",
                     "tableRow", "mediaSingle", "mediaGroup", "expand", "nestedExpand",
                     "decisionItem", "taskItem"})
_ATTR_TEXT = {"mention": "text", "status": "text", "date": "timestamp", "inlineCard": "url",
              "blockCard": "url", "embedCard": "url"}


class _Walk:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.nodes = 0

    def node(self, node: Any, depth: int) -> None:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES or not isinstance(node, dict):
            return
        kind, attrs = node.get("type"), node.get("attrs") or {}
        attrs = attrs if isinstance(attrs, dict) else {}
        if kind == "text":
            self.out.append(str(node.get("text") or ""))
        elif kind == "hardBreak":
            self.out.append("\n")
        elif kind == "emoji":
            self.out.append(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind in _ATTR_TEXT:
            self.out.append(str(attrs.get(_ATTR_TEXT[kind]) or ""))
        elif kind in ("bulletList", "orderedList"):
            self.items(node, depth, kind == "orderedList", attrs)
        elif kind == "tableCell" or kind == "tableHeader":
            cell = _Walk()
            cell.nodes = self.nodes
            cell.children(node, depth)
            self.nodes = cell.nodes
            self.out.append(" ".join("".join(cell.out).split()) + " | ")
        else:
            self.children(node, depth)
            if kind in _BLOCKS:
                self.out.append("\n")

    def children(self, node: dict, depth: int) -> None:
        content = node.get("content")
        for child in content if isinstance(content, list) else ():
            self.node(child, depth + 1)

    def items(self, node: dict, depth: int, ordered: bool, attrs: dict) -> None:
        start = attrs.get("order") if isinstance(attrs.get("order"), int) else 1
        content = node.get("content")
        for n, item in enumerate(content if isinstance(content, list) else ()):
            self.out.append(f"{start + n}. " if ordered else "- ")
            self.node(item, depth + 1)


def to_text(body: Any) -> str | None:
    """Plain text of an ADF document; a string is returned as is; anything else → None."""
    if body is None or isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return None
    walk = _Walk()
    walk.node(body, 0)
    lines = "".join(walk.out).replace(" | \n", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def from_text(text: str) -> dict[str, Any]:
    """An ADF document for ``text``: paragraphs at blank lines, ``hardBreak`` at newlines."""
    paragraphs = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        content: list[dict[str, Any]] = []
        for i, line in enumerate(block.split("\n")):
            if i:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        if content:
            paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}
