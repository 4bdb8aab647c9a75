"""Permission YAML files: read, remember where every value was written, hand over records.

A file or a folder of ``*.yaml``/``*.yml`` files (any case; sorted, non-recursive is not enough
for teams that group by API, so subfolders are read too). Every value keeps its line,
so validation errors read ``permissions/pets.yaml:14: httpVerb 'GETT' is not an HTTP
method``. Any bad file fails the whole load: nothing is half-applied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from policy_engine.core.permissions import Locate, compile_records, normalize_records
from policy_engine.errors import PermissionsError
from policy_engine.ports import RawPermissions

__all__ = ["YamlPermissionSource", "load_yaml_document", "load_yaml_records", "yaml_files"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present


def yaml_files(path: Path) -> list[Path]:
    """The permission files at ``path`` (a file, or every YAML file under a folder).

    Raises:
        PermissionsError: the path does not exist or holds no YAML file.
    """
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
        if files:
            return files
        raise PermissionsError(f"{path}: no .yaml or .yml files in this folder")
    if path.exists():  # a FIFO or a device: reading it may never end
        raise PermissionsError(f"{path}: not a regular file or folder")
    raise PermissionsError(f"{path}: no such file or folder")


class _Lines:
    """Line numbers of a YAML value and (for mappings and lists) of its children."""

    __slots__ = ("children", "line")

    def __init__(self, line: int, children: dict[Any, _Lines] | None = None) -> None:
        self.line = line
        self.children = children or {}


def _locator(display: str, lines: _Lines) -> Locate:
    def locate(path: tuple[int | str, ...]) -> str:
        current = lines
        for part in path:
            child = current.children.get(part)
            if child is None:
                break
            current = child
        return f"{display}:{current.line}"

    return locate


_YAML_TAG = "tag:yaml.org,2002:"
# The tags a document may use: JSON's types, merge keys, and dates (which the schemas
# refuse by type, with a line). Others (binary, set, omap, pairs) build values the
# schemas could read as something else: ``!!binary`` bytes would pass as a string
# nobody can read in review.
_TAGS = frozenset(_YAML_TAG + name for name in ("null", "bool", "int", "float", "str", "seq", "map", "merge",
                                                "timestamp"))
# Aliases may repeat values (merge keys, shared lists), but a document may not read as
# more than this many times the values written in it: a few hundred bytes of nested
# aliases would otherwise expand to millions of values (the "billion laughs").
MAX_ALIAS_EXPANSION = 100
# Values any document may read beyond that ratio: a tiny file that shares one list a few
# times is no bomb.
_ALIAS_ALLOWANCE = 1000


def _inspect(root: yaml.Node, display: str) -> _Lines:
    """Check the composed document once, and map its values' lines.

    Each node is visited once, however many aliases name it, so this takes time in
    the size of the text. Refused (``file:line``): a key given twice in one mapping
    (PyYAML keeps the last silently; in a permission file that hides a grant), a key
    that is not a plain value, a tag outside ``_TAGS``, an alias inside the value it
    names, and a document that aliases make more than ``MAX_ALIAS_EXPANSION`` times
    larger than it is written.

    Raises:
        PermissionsError: any of those.
    """
    lines: dict[int, _Lines] = {}
    sizes: dict[int, int] = {}
    ancestors: dict[int, list[tuple[Any, yaml.Node]]] = {}  # the nodes being visited, and their children
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = ancestors.pop(key)
            lines[key] = _Lines(node.start_mark.line + 1, {label: lines[id(child)] for label, child in children})
            sizes[key] = 1 + sum(sizes[id(child)] for _, child in children)
            continue
        if key in lines:
            continue
        children = ancestors[key] = _children(node, display)
        stack.append((node, True))
        for _, child in children:
            if id(child) in lines:
                continue
            if child.__class__ is yaml.ScalarNode:  # most values: no children, done here
                _children(child, display)
                lines[id(child)], sizes[id(child)] = _Lines(child.start_mark.line + 1), 1
            elif id(child) in ancestors:
                raise PermissionsError(f"{display}:{child.start_mark.line + 1}: an alias names a value that "
                                       "contains it (a recursive structure)")
            else:
                stack.append((child, False))
    written, read = len(lines), sizes[id(root)]
    if read > MAX_ALIAS_EXPANSION * written + _ALIAS_ALLOWANCE:
        raise PermissionsError(f"{display}: aliases make this document read as {read} values from {written} "
                               f"written ones (at most {MAX_ALIAS_EXPANSION} times as many are read)")
    return lines[id(root)]


def _children(node: yaml.Node, display: str) -> list[tuple[Any, yaml.Node]]:
    # A node's values with their labels (mapping keys, list positions), once what
    # _inspect refuses about the node itself is ruled out.
    if node.tag not in _TAGS:
        raise PermissionsError(f"{display}:{node.start_mark.line + 1}: the tag {node.tag.removeprefix(_YAML_TAG)!r} "
                               "is not allowed here (only plain values, lists and mappings)")
    if isinstance(node, yaml.MappingNode):
        labelled: list[tuple[Any, yaml.Node]] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _TAGS:
                raise PermissionsError(f"{display}:{line}: a mapping key must be a plain value")
            if key_node.value in seen:
                raise PermissionsError(f"{display}:{line}: duplicate key {key_node.value!r}")
            seen.add(key_node.value)
            labelled.append((key_node.value, value_node))
        return labelled
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    return []


def load_yaml_document(text: str, display: str) -> tuple[Any, Locate]:
    """Parse one YAML document and return it with a locator of its values' lines.

    Raises:
        PermissionsError: YAML syntax errors or duplicate keys (with ``file:line``).
    """
    # One parse: compose the node tree (lines, duplicate keys), then build values from it.
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, _locator(display, _Lines(1))
        lines = _inspect(node, display)
        document = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{display}:{mark.line + 1}" if mark is not None else display
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PermissionsError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return document, _locator(display, lines)


def load_yaml_records(text: str, display: str, problems: list[str] | None = None) -> tuple[list[Any], Locate]:
    """Parse one permission document and return its records with a locator.

    With ``problems``, shape problems of the grouped form are added to it instead of
    raised (``normalize_records``), with the records of the rest.

    Raises:
        PermissionsError: YAML syntax errors, duplicate keys, or an unknown document shape.
    """
    document, locate = load_yaml_document(text, display)
    if document is None:
        return [], locate
    return normalize_records(document, locate, problems)


class YamlPermissionSource:
    """``PermissionSource`` over a YAML file or folder; the etag is the files' content hash."""

    def __init__(self, path: str | Path, *, display_root: Path | None = None) -> None:
        self.path = Path(path)
        self.description = str(self.path)
        self._display_root = display_root

    def _display(self, file: Path) -> str:
        root = self._display_root or Path.cwd()
        try:
            return str(file.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(file)

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        """Read every file; ``None`` when their bytes hash to ``known_etag``.

        Raises:
            PermissionsError: a file is unreadable or invalid (named with its line).
        """
        files = yaml_files(self.path)
        texts: list[tuple[str, str]] = []
        digest = hashlib.sha256()
        # A file that cannot be read is one problem among the others: every file is still
        # read and checked, so that one run reports them all (nothing loads either way).
        problems: list[str] = []
        for file in files:
            display = self._display(file)
            try:
                data = file.read_bytes()
                text = data.decode("utf-8")
            except OSError as exc:
                problems.append(f"{display}: cannot read ({exc.strerror or exc})")
                continue
            except UnicodeDecodeError:
                problems.append(f"{display}: not UTF-8 text")
                continue
            digest.update(display.encode() + b"\0" + data + b"\0")
            texts.append((display, text))
        etag = "files:" + digest.hexdigest()[:16]
        if etag == known_etag and not problems:
            return None
        records: list[Any] = []
        locators: list[tuple[int, Locate]] = []
        for display, text in texts:
            try:
                file_records, locate = load_yaml_records(text, display, problems)
            except PermissionsError as exc:
                problems.extend(exc.problems)
                continue
            locators.append((len(records), locate))
            records.extend(file_records)
        if problems:
            # Nothing loads; the records that could be read are still checked, so that
            # one run reports every problem, not only those of the files' shapes.
            try:
                compile_records(records, _chain(locators))
            except PermissionsError as exc:
                problems.extend(exc.problems)
            raise PermissionsError(problems)
        return RawPermissions(records, _chain(locators), None, etag)


def _chain(locators: Sequence[tuple[int, Locate]]) -> Locate:
    def locate(path: tuple[int | str, ...]) -> str:
        if not path or not locators:
            return locators[0][1](()) if locators else "<no files>"
        index = path[0]
        assert isinstance(index, int)
        for start, inner in reversed(locators):
            if index >= start:
                return inner((index - start, *path[1:]))
        return locators[0][1](())

    return locate
