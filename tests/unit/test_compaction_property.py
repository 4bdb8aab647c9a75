"""Compaction is exact: the compacted policy allows exactly what the mappings grant.

The reference oracle below reads mappings the way ``core/permissions.py``'s docstring
defines them, with its own glob matcher, and shares no code with the engine. Requests
are generated on the API and stage the policy was issued for (the scope of API
Gateway's authorizer cache), with any method and any path: routes no mapping names,
paths holding '/', ':', '*', method names, stage names and the API id.
"""

from __future__ import annotations

from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.core.compaction import VERB_CLASSES, compact_resources, glob_subsumes, globs_intersect
from policy_engine.core.decision import Decision, render_iam_response
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import HTTP_VERBS, compile_records

APIS = ("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5",
        "arn:aws:execute-api:us-east-1:123456789012:zz9y8x7w6v")
STAGES = ("dev", "prod")
SCOPES = ("pets:read", "pets:write", "admin")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

# Pieces that make paths hard: method names, the stage, the API id, ':' and '*'.
PIECES = ["pets", "p", "s", "GET", "PUT", "OPTIONS", "dev", "prod", "a1b2c3d4e5", "x:a1b2c3d4e5", "", "*", "pe*", "*s",
          "1", "p**s"]
FILLERS = ["", "1", "a/b", "GET/pets", "x:a1b2c3d4e5/dev/GET/pets", "*", "pets/", "/", "dev/*/x", "/x", "s"]

segments = st.lists(st.sampled_from(PIECES), min_size=0, max_size=4)
resources = st.builds(lambda parts, lead: ("/" if lead else "") + "/".join(parts), segments, st.booleans())
records = st.lists(
    st.fixed_dictionaries({
        "arn": st.sampled_from(APIS),
        "stage": st.sampled_from((*STAGES, "*")),
        "httpVerb": st.sampled_from((*METHODS, "*", "ANY", "get")),
        "resource": resources,
        "scope": st.sampled_from(SCOPES),
    }),
    min_size=0,
    max_size=14,
)


@lru_cache(maxsize=65536)
def oracle_glob(pattern: str, text: str) -> bool:
    """IAM matching written out: '*' is any run of characters (including '/'), full match."""
    if not pattern:
        return not text
    head = pattern[0]
    if head == "*":
        return any(oracle_glob(pattern[1:], text[i:]) for i in range(len(text) + 1))
    return bool(text) and text[0] == head and oracle_glob(pattern[1:], text[1:])


def oracle_grants(
    raw: list[dict[str, str]], scopes: frozenset[str], api: str, stage: str, verb: str, path: str
) -> bool:
    """The mapping semantics of core/permissions.py's docstring, implemented independently."""
    for record in raw:
        mapping_verb = record["httpVerb"].upper()
        mapping_path = record["resource"][1:] if record["resource"].startswith("/") else record["resource"]
        if (
            record["scope"] in scopes
            and record["arn"] == api
            and record["stage"] in (stage, "*")
            and (mapping_verb in ("*", "ANY") or mapping_verb == verb)
            and oracle_glob(mapping_path, path)
        ):
            return True
    return False


def instantiate(pattern: str, fill: list[str], one: str = "T") -> str:
    """A string ``pattern`` matches: each '*' becomes the next filler, each '?' ``one``."""
    out, k = [], 0
    for char in pattern:
        if char == "*":
            out.append(fill[k % len(fill)])
            k += 1
        else:
            out.append(one if char == "?" else char)
    return "".join(out)


def adversarial_paths(resource: str, fills: list[list[str]]) -> set[str]:
    """Paths near a mapping's resource: its expansions, and the same with things around them."""
    base = resource[1:] if resource.startswith("/") else resource
    out = set()
    for fill in fills:
        path = instantiate(base, fill)
        out |= {path, f"/{path}", f"{path}/x", f"{path}x", f"x{path}", f"GET/{path}", f"x/{path}",
                f"dev/GET/{path}", f"x:a1b2c3d4e5/dev/GET/{path}"}
    return out


def paths_a_policy_allows(resources: tuple[str, ...], prefix: str, fills: list[list[str]]) -> set[tuple[str, str]]:
    """(verb, path) pairs that the policy's own Resources match: where an over-grant would show."""
    out = set()
    for resource in resources:
        tail = resource.removeprefix(prefix)
        for fill in fills:
            for one in ("G", "/", "T"):
                verb, _, path = instantiate(tail, fill, one).partition("/")
                if verb in METHODS:
                    out.add((verb, path))
    return out


def response_for(resources: tuple[str, ...], api: str, stage: str) -> dict:
    decision = Decision(
        effect="Allow" if resources else "Deny", principal_id="p", api_arn=api, stage=stage,
        resources=resources, reason="t", version="v",
    )
    return render_iam_response(decision)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=records,
    scopes=st.frozensets(st.sampled_from((*SCOPES, "email")), max_size=3),
    api=st.sampled_from(APIS),
    stage=st.sampled_from(STAGES),
    free_paths=st.lists(resources.map(lambda r: r.lstrip("/")), max_size=8),
    fills=st.lists(st.lists(st.sampled_from(FILLERS), min_size=1, max_size=3), min_size=1, max_size=3),
)
def test_compacted_policy_allows_exactly_what_the_mappings_grant(raw, scopes, api, stage, free_paths, fills):
    # GIVEN generated mappings, compiled as the runtime compiles them
    permissions = compile_records(raw, lambda path: f"generated:{path[0] if path else 0}")
    compacted = permissions.resources(scopes, api, stage)
    expanded = permissions.resources(scopes, api, stage, compacted=False)
    # WHEN API Gateway evaluates the returned policy for requests on that API and stage
    paths = set(free_paths) | {"", "/", "pets", "x:a1b2c3d4e5/dev/GET/pets", "dev/GET/pets", "GET/pets/1"}
    for record in raw:
        paths |= adversarial_paths(record["resource"], fills)
    requests = {(verb, path) for path in paths for verb in METHODS}
    requests |= paths_a_policy_allows(compacted, f"{api}/{stage}/", fills)
    policy, full = response_for(compacted, api, stage), response_for(expanded, api, stage)
    for verb, path in sorted(requests):
        arn = f"{api}/{stage}/{verb}/{path}"
        expected = oracle_grants(raw, scopes, api, stage, verb, path)
        # THEN it allows exactly what the mappings grant, compacted or not
        assert (evaluate_response(policy, arn) is Verdict.ALLOW) == expected, (arn, compacted)
        assert (evaluate_response(full, arn) is Verdict.ALLOW) == expected, (arn, expanded)
    # and compaction never makes the policy longer
    assert len(compacted) <= len(expanded)
    assert sum(map(len, compacted)) <= sum(map(len, expanded))


def test_only_the_shortest_methods_share_a_question_mark_run():
    # A run longer than the shortest method could swallow 'GET/' and the start of the path.
    assert HTTP_VERBS == METHODS
    assert {"???": frozenset({"GET", "PUT"})} == VERB_CLASSES
    policy = response_for((f"{APIS[0]}/dev/????/x",), APIS[0], "dev")
    assert evaluate_response(policy, f"{APIS[0]}/dev/GET//x") is Verdict.ALLOW


def test_compaction_merges_what_is_safe_and_nothing_else():
    base = f"{APIS[0]}/dev"
    # every method of a '*'-led path is one Resource; of another path it is not
    all_photos = [f"{base}/{v}/*/photos" for v in METHODS]
    assert compact_resources(all_photos) == (f"{base}/*/*/photos",)
    all_pets = compact_resources([f"{base}/{v}/pets" for v in METHODS])
    assert f"{base}/*/pets" not in all_pets and len(all_pets) == 6
    # GET and PUT share a length: '???' stands for exactly those two
    assert compact_resources([f"{base}/GET/pets/*", f"{base}/PUT/pets/*"]) == (f"{base}/???/pets/*",)
    # narrower entries under a wider one of the same method go; other methods stay
    assert compact_resources([f"{base}/GET/pets/*", f"{base}/GET/pets/1", f"{base}/POST/pets/1"]) == (
        f"{base}/GET/pets/*", f"{base}/POST/pets/1")
    # 'pets' and 'pets/*' never merge into 'pets*' (that would allow /petshop)
    assert compact_resources([f"{base}/GET/pets", f"{base}/GET/pets/*"]) == (f"{base}/GET/pets", f"{base}/GET/pets/*")
    # a Resource that is already a '*'-verb pattern keeps its (wider) IAM meaning
    assert compact_resources([f"{base}/*/pets", f"{base}/GET/x/pets"]) == (f"{base}/*/pets", f"{base}/GET/x/pets")


@given(st.sampled_from([*PIECES, "a*b", "**", "p*s*"]), st.sampled_from([*PIECES, "a*b", "ab", "p*s"]),
       st.lists(st.sampled_from([*FILLERS, "a", "b", "ab"]), min_size=1, max_size=3))
def test_subsumption_is_sound(wide, narrow, fill):
    # Whenever wide is said to cover narrow, every expansion of narrow matches wide.
    if glob_subsumes(wide, narrow):
        assert oracle_glob(wide, instantiate(narrow, fill)), (wide, narrow, fill)
    else:
        assert not glob_subsumes(wide, narrow.replace("*", "\x00"))


def test_subsumption_with_single_character_wildcards():
    assert glob_subsumes("???/pets", "GET/pets")
    assert glob_subsumes("*/pets", "???/pets")
    assert not glob_subsumes("???/pets", "*/pets")  # '*' may be longer than three characters
    assert not glob_subsumes("?", "*")
    assert not glob_subsumes("GET/pets", "???/pets")


def test_route_templates_intersect_globs_by_segment():
    assert globs_intersect("pets/*", "pets/{petId}")
    assert globs_intersect("pets/12", "pets/{petId}")
    assert not globs_intersect("pets/12/photos", "pets/{petId}")
    assert globs_intersect("pets/12/photos", "pets/{proxy+}")
    assert not globs_intersect("pets/", "pets/{petId}")
    assert not globs_intersect("store/orders", "pets/{proxy+}")
    assert globs_intersect("*", "")
    assert not globs_intersect("pets", "")


# Paths of any length up to what an older release let through for a one-letter stage.
long_resources = st.builds(
    lambda parts, filler, at: "/" + "/".join([*parts[:at], "r" * filler, *parts[at:]]),
    st.lists(st.sampled_from(PIECES), max_size=3),
    st.one_of(st.integers(min_value=0, max_value=450), st.integers(min_value=300, max_value=450)), st.integers(0, 3))
long_records = st.lists(
    st.fixed_dictionaries({
        "arn": st.just(APIS[0]),
        "stage": st.sampled_from(("*", "dev")),
        "httpVerb": st.sampled_from((*METHODS, "*")),
        "resource": long_resources,
        "scope": st.sampled_from(SCOPES),
    }),
    min_size=1, max_size=8,
)
# API Gateway's stage names: letters, digits, '-' and '_', 1 to 128 characters.
stage_names = st.one_of(st.just("dev"), st.integers(min_value=1, max_value=128).map(lambda n: "s" * n),
                        st.text(alphabet="abz09-_", min_size=1, max_size=128))


def _old_limit_ok(record: dict[str, str]) -> bool:
    # What releases before the worst-case rule accepted: a stage '*' counted as one character.
    path = record["resource"].removeprefix("/")
    return len(f"{record['arn']}/{'x' * len(record['stage'])}/OPTIONS/{path}") <= 512


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=long_records, stage=stage_names, scopes=st.frozensets(st.sampled_from(SCOPES), min_size=1))
def test_no_resource_over_512_characters_whatever_a_store_holds(raw, stage, scopes):
    # GIVEN mappings as an older release published them, loaded the way the runtime loads them
    from policy_engine.adapters.memory import MemoryPermissionSource
    from policy_engine.cache import PermissionCache

    raw = [r for r in raw if _old_limit_ok(r)]
    permissions = PermissionCache(MemoryPermissionSource(raw), ttl=60, max_stale=60).get()
    api = APIS[0]
    # WHEN a policy is written for a stage of any length API Gateway allows
    compacted = permissions.resources(scopes, api, stage)
    expanded = permissions.resources(scopes, api, stage, compacted=False)
    # THEN no Resource passes IAM's 512 characters, compacted or not; compaction never lengthens one
    assert all(len(r) <= 512 for r in compacted + expanded)
    assert max(map(len, compacted), default=0) <= max(map(len, expanded), default=0)
    policy = response_for(compacted, api, stage)
    # and exactly the routes whose Resource fits are allowed: nothing wider, nothing else lost
    fitting = []
    for record in raw:
        if record["scope"] not in scopes or record["stage"] not in ("*", stage):
            continue
        path = record["resource"].removeprefix("/")
        verbs = ["*"] if record["httpVerb"] == "*" and path == "*" else (
            METHODS if record["httpVerb"] == "*" else [record["httpVerb"]])
        fitting += [r for r in (f"{api}/{stage}/{v}/{path}" for v in verbs) if len(r) <= 512]
    for record in raw:
        path = instantiate(record["resource"].removeprefix("/"), ["x"])
        for verb in METHODS:
            arn = f"{api}/{stage}/{verb}/{path}"
            expected = any(oracle_glob(r, arn) for r in fitting)
            assert (evaluate_response(policy, arn) is Verdict.ALLOW) == expected, arn
