"""Exact compaction of policy Resources: fewer bytes, the same requests allowed.

API Gateway evaluates an authorizer's policy against the methodArns of ONE API and ONE
stage (that is the scope of its authorizer cache), but against any method and any
path, including paths that contain ``/``, ``:``, ``*``, method names, the stage name
or the API id. IAM's ``*`` crosses ``/`` and ``:``, so most "obvious" merges over-grant:
``stage/*/pets`` allows ``GET /x/pets``; ``*:a1b2c3d4e5/dev/GET/pets`` allows
``GET /x:a1b2c3d4e5/dev/GET/pets``; ``GET/pets*`` allows ``GET /petshop``.

The merges made here are the ones that cannot change the set of allowed methodArns
``<api>/<stage>/<VERB>/<path>`` when VERB is one of ``HTTP_VERBS`` (the methods API
Gateway routes; a methodArn carries the concrete, upper-case method):

* duplicates go, and ``**`` is written ``*`` (same language);
* a Resource whose language is contained in another's (same API and stage) goes;
  containment is decided exactly by :func:`glob_subsumes`;
* a resource granted for every method, whose path starts with ``*``, becomes
  ``<stage>/*/<path>``: the verb field never holds ``/``, and a leading ``*`` in the
  path already absorbs anything a wider verb match could add;
* ``GET`` and ``PUT`` of one resource become ``???``: ``?`` is exactly one character
  (``/`` included), no method is shorter than three letters and none holds ``/``, so
  ``???/pets`` matches ``GET/pets`` and ``PUT/pets`` and nothing else a methodArn can
  hold. Longer runs are not safe: ``????/pets`` also matches ``GET//pets``.

``tests/unit/test_compaction_property.py`` checks the result against an independent
reading of the mappings for generated permission sets and adversarial requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from policy_engine.core.arn import HTTP_VERBS

__all__ = ["VERB_CLASSES", "compact_resources", "glob_subsumes", "globs_intersect"]


#: ``?``-run -> the methods it stands for. Only the shortest method length is safe:
#: ``?`` matches ``/`` too, so ``????/pets`` also matches ``GET//pets`` (verb ``GET``,
#: path ``/pets``); a run as short as the shortest method cannot reach past the verb.
VERB_CLASSES: dict[str, frozenset[str]] = {
    "?" * len(min(HTTP_VERBS, key=len)): frozenset(v for v in HTTP_VERBS if len(v) == len(min(HTTP_VERBS, key=len))),
}

# Characters that cannot occur in a resource (the schema refuses control characters):
# stand-ins for the '*' and '?' of the narrower pattern in the subsumption test.
_FRESH_STAR = "\x00"
_FRESH_ONE = "\x02"
_STARS = re.compile(r"\*{2,}")


@lru_cache(maxsize=8192)
def _cover_regex(pattern: str) -> re.Pattern[str]:
    # A '?' of the wider pattern is one character, so it may stand for a literal or a
    # narrower '?', never for a narrower '*' (which can be any number of characters).
    parts = (".*" if c == "*" else f"[^{_FRESH_STAR}]" if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def glob_subsumes(wide: str, narrow: str) -> bool:
    """True when every string IAM-matched by ``narrow`` is also matched by ``wide``.

    Sound by construction: each ``*`` of ``narrow`` is written as a character ``wide``
    has no literal for, so if ``wide`` still matches, that character lies inside a
    ``*`` run of ``wide``, which accepts any replacement; each ``?`` of ``narrow`` is a
    second such character, which a ``*`` or ``?`` of ``wide`` accepts. A ``False`` is
    exact for ``*``-only patterns (the witness is itself a string ``narrow`` matches)
    and may be conservative when ``wide`` holds ``?``; callers only ever drop entries
    on ``True``.
    """
    if wide == narrow:
        return True
    witness = "".join(_FRESH_STAR if c == "*" else _FRESH_ONE if c == "?" else c for c in narrow)
    return _cover_regex(wide).fullmatch(witness) is not None


# Token classes for the intersection test: a literal character, any character, or
# any character except '/'. A token may repeat (0..n) or appear once.
_ANY = "\x01any"
_SEGMENT = "\x01seg"


def _tokens(pattern: str, template: bool) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append((_ANY, True))
        elif char == "?":
            out.append((_ANY, False))
        elif template and char == "{":
            end = pattern.find("}", i)
            if end < 0:
                out.append(("{", False))
            else:
                greedy = pattern[end - 1] == "+"
                # {name} is one non-empty path segment; {name+} one or more characters.
                kind = _ANY if greedy else _SEGMENT
                out.extend([(kind, False), (kind, True)])
                i = end
        else:
            out.append((char, False))
        i += 1
    return out


def _classes_meet(a: str, b: str) -> bool:
    if a == _ANY or b == _ANY:
        return True
    if a == _SEGMENT:
        return b != "/"
    if b == _SEGMENT:
        return a != "/"
    return a == b


def globs_intersect(glob: str, template: str) -> bool:
    """True when some path matches both the IAM glob ``glob`` and the route ``template``.

    ``template`` is an API Gateway route path: ``{name}`` is one non-empty segment,
    ``{name+}`` is one or more characters, ``*`` (if present) is a glob star.
    """
    left, right = _tokens(glob, False), _tokens(template, True)
    seen: set[tuple[int, int]] = set()
    stack = [(0, 0)]
    while stack:
        state = stack.pop()
        if state in seen:
            continue
        seen.add(state)
        i, j = state
        if i == len(left) and j == len(right):
            return True
        if i < len(left) and left[i][1]:
            stack.append((i + 1, j))
        if j < len(right) and right[j][1]:
            stack.append((i, j + 1))
        if i < len(left) and j < len(right) and _classes_meet(left[i][0], right[j][0]):
            stack.append((i if left[i][1] else i + 1, j if right[j][1] else j + 1))
    return False


def _split(resource: str) -> tuple[str, str, str] | None:
    # <api-arn>/<stage>/<verb>/<path>: the API ARN has no '/', the stage and verb neither.
    parts = resource.split("/", 3)
    if len(parts) != 4:
        return None
    return f"{parts[0]}/{parts[1]}", parts[2], parts[3]


def compact_resources(resources: Iterable[str]) -> tuple[str, ...]:
    """The smallest Resource list this module knows that allows exactly what ``resources`` do.

    Resources that are not ``<api>/<stage>/<verb>/<path>`` are kept as they are. The
    result is sorted, so equal inputs give byte-identical policies.
    """
    kept: set[str] = set()
    # (api/stage, path) -> verbs; '*' stands for "every method".
    by_path: dict[tuple[str, str], set[str]] = {}
    for resource in resources:
        parts = _split(resource)
        if parts is None:
            kept.add(resource)
            continue
        base, verb, path = parts
        path = _STARS.sub("*", path)
        if verb != "*" and verb not in HTTP_VERBS:
            kept.add(f"{base}/{verb}/{path}")
            continue
        if verb == "*" and not path.startswith("*"):
            # Its IAM meaning crosses into the path ('*/pets' matches 'GET/x/pets');
            # it is what the caller asked for, so it stays as written.
            kept.add(f"{base}/*/{path}")
            continue
        by_path.setdefault((base, path), set()).add(verb)

    candidates: dict[str, list[tuple[str, str]]] = {}
    for (base, path), verbs in by_path.items():
        if "*" in verbs or (path.startswith("*") and verbs >= set(HTTP_VERBS)):
            candidates.setdefault(base, []).append(("*", path))
            continue
        for run, members in VERB_CLASSES.items():
            if members <= verbs:
                candidates.setdefault(base, []).append((run, path))
                verbs = verbs - members
        for verb in verbs:
            candidates.setdefault(base, []).append((verb, path))

    for base, entries in candidates.items():
        full = [f"{verb}/{path}" for verb, path in entries]
        kept.update(f"{base}/{tail}" for tail in _drop_subsumed(full))
    return tuple(sorted(kept))


def _drop_subsumed(tails: list[str]) -> list[str]:
    # Remove an entry only while another entry that covers it is still present: the
    # union of what is present never changes, whatever the order or ties.
    present = set(tails)
    # Possible covers, by method field and the literal text their path starts with: a
    # cover's literal opening must open the covered path too, so each entry only
    # meets the few patterns indexed under one of its own prefixes.
    covers: dict[tuple[str, str], list[str]] = {}
    for tail in present:
        head, _, path = tail.partition("/")
        cut = min((i for i in (path.find("*"), path.find("?")) if i >= 0), default=-1)
        if cut >= 0 or "?" in head or head == "*":
            covers.setdefault((head, path[:cut] if cut >= 0 else path), []).append(tail)
    for tail in sorted(present):
        head, _, path = tail.partition("/")
        if _covered(tail, head, path, covers, present):
            present.discard(tail)
    return sorted(present)


def _covered(tail: str, head: str, path: str, covers: dict[tuple[str, str], list[str]], present: set[str]) -> bool:
    for cover_head in _covering_heads(head):
        for k in range(len(path) + 1):
            for other in covers.get((cover_head, path[:k]), ()):
                if other != tail and other in present and glob_subsumes(other, tail):
                    return True
    return False


def _covering_heads(verb: str) -> tuple[str, ...]:
    # Method fields that can match every method ``verb`` stands for.
    if verb == "*":
        return ("*",)
    if len(verb) == 3 and verb != "???":
        return (verb, "???", "*")
    return (verb, "*")
