"""Access groups: resolved per document (front matter, config rules, default), enforced as one SQL prefilter."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import replace

import yaml

from ragindex.config import AccessConfig
from ragindex.documents import GROUP_NAME, PUBLIC, Document, sha256_hex
from ragindex.lance_tables import quote

GROUPS_COLUMN = "groups"
_FENCE = "---"


def check_group(name: object) -> str:
    """A group name as given, or ValueError: a non-empty string without commas or control characters."""
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        raise ValueError(f"bad access group {name!r}: expected a name without commas, control characters or "
                         "surrounding spaces")
    return name


def parse_groups(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A caller's groups from `a,b` or a list; None: no groups (public chunks only). An empty name is an error."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(sorted({check_group(item.strip() if isinstance(item, str) else item) for item in items}))


def visible_where(groups: Iterable[str]) -> str:
    """The prefilter a caller's searches carry: the row's groups share one with the caller's, or are public."""
    names = sorted({PUBLIC, *(check_group(g) for g in groups)})
    return f"array_has_any({GROUPS_COLUMN}, [{', '.join(quote(n) for n in names)}])"


def combine(access: str | None, where: str | None) -> str | None:
    """User filters (already quoted) ANDed under the access predicate, parenthesised so they cannot widen it."""
    if access is None:
        return where
    return f"{access} AND ({where})" if where else access


def split_front_matter(text: str) -> tuple[str, tuple[str, ...] | None, str | None]:
    """(text without its YAML front matter, the `access` groups it declares or None, a problem or None). A
    front matter that cannot be read declares no group (the document is visible to no caller)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != _FENCE:
        return text, None, None
    end = next((i for i, line in enumerate(lines[1:], start=1) if line.strip() in (_FENCE, "...")), None)
    if end is None:
        return text, None, None
    body = "".join(lines[end + 1:])
    try:
        meta = yaml.safe_load("".join(lines[1:end])) or {}
    except yaml.YAMLError as error:
        return body, (), f"front matter is not valid YAML ({str(error).splitlines()[0]})"
    if not isinstance(meta, dict) or "access" not in meta:
        return body, None, None
    raw = meta["access"]
    try:
        groups = parse_groups([raw] if isinstance(raw, str) else raw if isinstance(raw, list) else [raw])
    except ValueError as error:
        return body, (), f"front matter access: {error}"
    return body, groups, None


class AccessPolicy:
    """A source's access configuration applied to its documents."""

    def __init__(self, config: AccessConfig | None = None):
        self.config = config or AccessConfig()
        self.fingerprint = hashlib.sha256(self.config.model_dump_json().encode()).hexdigest()[:16]

    def groups_for(self, doc_id: str, declared: tuple[str, ...] | None) -> tuple[str, ...]:
        """Front matter wins, then the first rule whose glob matches the document id, then the default."""
        if declared is not None:
            return tuple(sorted(set(declared)))
        for rule in self.config.rules:
            if fnmatch.fnmatchcase(doc_id, rule.glob):
                return tuple(sorted(set(rule.groups)))
        return (PUBLIC,) if self.config.default == PUBLIC else ()

    def apply(self, document: Document) -> Document:
        """The document with its resolved groups folded into its content hash, so an access change alone makes
        the document modified: re-chunked (the chunk ids carry the groups) and re-committed."""
        groups = self.groups_for(document.doc_id, document.groups)
        return replace(document, groups=groups,
                       content_hash=sha256_hex(f"{document.content_hash}\x1faccess:{','.join(groups)}"))
