"""GRANT_SOURCES, IDP_PRESET and IDENTITY_PROVIDERS: parsing, errors, presets, per-issuer rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy_engine.core.grants import SCOPE, GrantSource, read_grants, unconfigured_grant_claims
from policy_engine.core.tokens.issuers import PRESETS, IssuerRules, check_issuer_claims, parse_grant_sources
from policy_engine.core.tokens.verifier import hints_for
from policy_engine.errors import ConfigurationError, InvalidClaimsError
from policy_engine.settings import Settings

BASE = {"ISSUER": "https://idp.example.com", "AUDIENCE": "api"}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA = "https://login.microsoftonline.com/{tenantid}/v2.0"


def providers(*entries: dict[str, Any]) -> dict[str, str]:
    return {"IDENTITY_PROVIDERS": json.dumps(list(entries))}


def refused(environ: dict[str, str]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ(environ)
    return info.value


def rules_of(environ: dict[str, str]) -> dict[str, IssuerRules]:
    return {rule.issuer: rule for rule in Settings.from_environ(environ).issuer_rules()}


# GRANT_SOURCES


def test_grant_sources_parse_kinds_and_paths():
    settings = Settings.from_environ({**BASE, "GRANT_SOURCES": " scope:scope, group:cognito:groups ,"
                                      "role:realm_access.roles,role:https://example.com/roles,permission:perms"})
    assert settings.grant_sources == (
        GrantSource("scope", (("scope",),)), GrantSource("group", (("cognito:groups",),)),
        GrantSource("role", (("realm_access", "roles"),)), GrantSource("role", (("https://example.com/roles",),)),
        GrantSource("permission", (("perms",),)),
    )
    assert rules_of({**BASE, "GRANT_SOURCES": "scope:scp"})["https://idp.example.com"].sources == (
        GrantSource("scope", (("scp",),)),)


def test_a_dot_in_a_claim_name_is_escaped_and_a_url_without_its_scheme_is_refused():
    # Keycloak client ids may hold dots: resource_access["pets.api"].roles.
    settings = Settings.from_environ({**BASE, "GRANT_SOURCES": "role:resource_access.pets\\.api.roles,"
                                                               "role:a\\\\b.c"})
    assert [source.paths for source in settings.grant_sources] == [(("resource_access", "pets.api", "roles"),),
                                                                   (("a\\b", "c"),)]
    assert [source.text for source in settings.grant_sources] == ["role:resource_access.pets\\.api.roles",
                                                                  "role:a\\\\b.c"]
    payload = {"resource_access": {"pets.api": {"roles": ["writer"]}, "pets": {"api": {"roles": ["forged"]}}}}
    assert read_grants(payload, settings.grant_sources[:1]) == frozenset({"role writer"})
    # Auth0's namespace without its scheme would be read as a path into objects.
    assert "write a URL-named claim whole" in refused({**BASE, "GRANT_SOURCES": "role:example.com/roles"}).problem


@pytest.mark.parametrize("value", ["scope", "scope:", ":scope", "Scope:scope", "1x:scope", "scope:a..b",
                                   "scope:.a", "scope:scope,scope:scope", "k" * 33 + ":x", "scope:a\\",
                                   "scope:a\\b"])
def test_bad_grant_sources_name_the_variable(value):
    error = refused({**BASE, "GRANT_SOURCES": value})
    assert error.variable == "GRANT_SOURCES"


def test_scope_claims_and_grant_sources_together_name_both():
    error = refused({**BASE, "GRANT_SOURCES": "scope:scope", "SCOPE_CLAIMS": "scp"})
    assert error.variable == "GRANT_SOURCES" and "SCOPE_CLAIMS" in error.problem


def test_scope_claims_keeps_working_as_literal_top_level_names_first_present_wins():
    rule = rules_of({**BASE, "SCOPE_CLAIMS": "scp,scope,a.b"})["https://idp.example.com"]
    assert rule.sources == (GrantSource(SCOPE, (("scp",), ("scope",), ("a.b",))),)
    assert read_grants({"scope": "x", "scp": ["y"]}, rule.sources) == frozenset({"y"})
    assert read_grants({"a.b": "z", "a": {"b": "w"}}, rule.sources) == frozenset({"z"})


def test_the_default_is_todays_scope_then_scp():
    rule = rules_of(BASE)["https://idp.example.com"]
    assert rule.sources == (GrantSource(SCOPE, (("scope",), ("scp",))),)
    assert rule.token_types == frozenset() and not rule.checks


# IDP_PRESET


def test_preset_sources_and_checks():
    expected = {
        "cognito": ["scope:scope", "group:cognito:groups"],
        "okta": ["scope:scp", "scope:scope", "group:groups"],
        "auth0": ["scope:scope", "scope:permissions"],
        "entra": ["scope:scp", "role:roles"],
        "keycloak": ["scope:scope", "role:realm_access.roles"],
        "oidc": ["scope:scope", "scope:scp"],
    }
    assert set(PRESETS) == set(expected)
    for name, sources in expected.items():
        rule = rules_of({**BASE, "IDP_PRESET": name})["https://idp.example.com"]
        assert [s.text for s in rule.sources] == sources, name
        assert rule.preset == name
    assert rules_of({**BASE, "IDP_PRESET": "oidc"})["https://idp.example.com"].token_types == {"at+jwt"}
    assert rules_of({**BASE, "IDP_PRESET": "cognito"})["https://idp.example.com"].token_use_access
    assert rules_of({**BASE, "IDP_PRESET": "keycloak"})["https://idp.example.com"].payload_typ == "Bearer"


def test_explicit_settings_override_the_presets():
    rule = rules_of({**BASE, "IDP_PRESET": "oidc", "GRANT_SOURCES": "role:roles",
                     "TOKEN_TYPES": "application/JWT"})["https://idp.example.com"]
    assert [s.text for s in rule.sources] == ["role:roles"] and rule.token_types == {"jwt"}


def test_unknown_preset_and_preset_with_scope_claims_are_refused():
    assert refused({**BASE, "IDP_PRESET": "google"}).variable == "IDP_PRESET"
    assert refused({**BASE, "IDP_PRESET": "okta", "SCOPE_CLAIMS": "scp"}).variable == "SCOPE_CLAIMS"


# IDENTITY_PROVIDERS


def test_entra_template_expands_one_issuer_per_tenant_with_its_tid():
    other = "0B1C2D3E-4F50-4A6B-8C7D-9E0F1A2B3C4D"
    rules = rules_of(providers({"issuer": ENTRA, "preset": "entra", "audiences": ["api://pets"],
                                "tenants": [TENANT, other]}))
    assert set(rules) == {f"https://login.microsoftonline.com/{TENANT}/v2.0",
                          f"https://login.microsoftonline.com/{other.lower()}/v2.0"}
    rule = rules[f"https://login.microsoftonline.com/{TENANT}/v2.0"]
    assert rule.tenant == TENANT and rule.audiences == {"api://pets"} and rule.jwks_uri is None
    assert [s.text for s in rule.sources] == ["scope:scp", "role:roles"]


def test_v1_template_and_a_tenant_jwks_uri():
    rules = rules_of(providers({"issuer": "https://sts.windows.net/{tenantid}/", "audiences": ["api://pets"],
                                "tenants": [TENANT],
                                "jwksUri": "https://login.microsoftonline.com/{tenantid}/discovery/keys"}))
    rule = rules[f"https://sts.windows.net/{TENANT}/"]
    assert rule.jwks_uri == f"https://login.microsoftonline.com/{TENANT}/discovery/keys"


def test_entries_fall_back_to_the_global_settings():
    rules = rules_of({**BASE, "GRANT_SOURCES": "scope:scope,group:groups", "TOKEN_TYPES": "at+jwt",
                      **providers({"issuer": "https://other.example.com"},
                                  {"issuer": "https://okta.example.com/oauth2/default", "preset": "okta",
                                   "audiences": ["https://api"], "grantSources": ["scope:scp"]},
                                  {"issuer": "https://oidc.example.com", "preset": "oidc"},
                                  {"issuer": "https://open.example.com", "preset": "okta", "tokenTypes": []})})
    plain, okta = rules["https://other.example.com"], rules["https://okta.example.com/oauth2/default"]
    assert plain.audiences == {"api"} and [s.text for s in plain.sources] == ["scope:scope", "group:groups"]
    assert plain.token_types == {"at+jwt"}
    # An entry's own keys, then its preset's, beat the global settings; a preset that
    # checks no token type leaves TOKEN_TYPES in force, and only the entry's own [] ends it.
    assert [s.text for s in okta.sources] == ["scope:scp"] and okta.token_types == {"at+jwt"}
    assert rules["https://oidc.example.com"].token_types == {"at+jwt"}
    assert rules["https://open.example.com"].token_types == frozenset()
    assert okta.audiences == {"https://api"}
    assert rules["https://idp.example.com"].audiences == {"api"}


@pytest.mark.parametrize(
    "entry,words",
    [
        ({"issuer": ENTRA, "audiences": ["a"]}, ["[0]", "tenants"]),
        ({"issuer": ENTRA, "audiences": ["a"], "tenants": ["not-a-guid"]}, ["[0]", "tenants", "GUID"]),
        ({"issuer": ENTRA, "audiences": ["a"], "tenants": []}, ["[0]", "tenants"]),
        ({"issuer": ENTRA, "audiences": ["a"], "tenants": [TENANT, TENANT.upper()]}, ["[0]", "twice"]),
        ({"issuer": "https://x.example.com", "audiences": ["a"], "tenants": [TENANT]}, ["[0]", "tenants"]),
        ({"issuer": "https://login.microsoftonline.com/x{tenantid}/v2.0", "audiences": ["a"], "tenants": [TENANT]},
         ["[0]", "issuer", "segment"]),
        ({"issuer": "https://{tenantid}.example.com/", "audiences": ["a"], "tenants": [TENANT]},
         ["[0]", "issuer"]),
        ({"issuer": "https://x.example.com/{other}", "audiences": ["a"]}, ["[0]", "issuer"]),
        ({"issuer": "http://idp.example.com", "audiences": ["a"]}, ["[0]", "issuer"]),
        ({"issuer": "https://x.example.com", "audiences": ["a"], "jwksUri": "https://k/{tenantid}"},
         ["[0]", "jwksUri"]),
        ({"issuer": "https://x.example.com", "audiences": ["a"], "tenant": [TENANT]}, ["[0]", "'tenant'"]),
        ({"issuer": "https://x.example.com", "audiences": "a"}, ["[0]", "audiences"]),
        ({"issuer": "https://x.example.com", "audiences": []}, ["[0]", "audiences"]),
        ({"issuer": "https://x.example.com", "audiences": ["a"], "preset": "google"}, ["[0]", "preset"]),
        ({"issuer": "https://x.example.com", "audiences": ["a"], "grantSources": ["bad"]}, ["[0]", "grantSources"]),
        ({"issuer": "https://x.example.com", "audiences": ["a"], "tokenTypes": "at+jwt"}, ["[0]", "tokenTypes"]),
        ({"audiences": ["a"]}, ["[0]", "issuer"]),
        ({"issuer": "https://x.example.com"}, ["[0]", "audiences", "AUDIENCE"]),
        ("https://x.example.com", ["[0]", "object"]),
    ],
)
def test_bad_entries_name_the_variable_the_index_and_the_key(entry, words):
    error = refused(providers(entry))
    assert error.variable == "IDENTITY_PROVIDERS"
    for word in words:
        assert word in error.problem, (word, error.problem)


@pytest.mark.parametrize("text", ["", "{", "{}", "[]", "[1"])
def test_identity_providers_must_be_a_json_list(text):
    if not text:
        assert refused({"IDENTITY_PROVIDERS": text}).variable == "ISSUER"  # unset: ISSUER is required again
        return
    assert refused({"IDENTITY_PROVIDERS": text}).variable == "IDENTITY_PROVIDERS"


def test_an_issuer_configured_twice_is_an_error_naming_the_entry():
    error = refused({**BASE, **providers({"issuer": "https://idp.example.com", "audiences": ["a"]})})
    assert error.variable == "IDENTITY_PROVIDERS" and "[0]" in error.problem and "twice" in error.problem
    error = refused(providers({"issuer": "https://a.example.com", "audiences": ["a"]},
                              {"issuer": "https://a.example.com", "audiences": ["b"]}))
    assert "[1]" in error.problem
    expanded = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    error = refused(providers({"issuer": ENTRA, "audiences": ["a"], "tenants": [TENANT]},
                              {"issuer": expanded, "audiences": ["b"]}))
    assert "[1]" in error.problem


def test_identity_providers_alone_need_neither_issuer_nor_audience():
    settings = Settings.from_environ(providers({"issuer": "https://a.example.com", "audiences": ["a"]}))
    assert settings.issuers == () and settings.audiences == ()
    assert refused({**providers({"issuer": "https://a.example.com", "audiences": ["a"]}),
                    "ISSUER": "https://b.example.com"}).variable == "AUDIENCE"


# The provider checks and hints


def _rule(**facts: Any) -> IssuerRules:
    return IssuerRules("https://i", frozenset({"a"}), (GrantSource(SCOPE, (("scope",),)),), **facts)


def test_issuer_checks():
    entra = _rule(tenant=TENANT)
    check_issuer_claims({"tid": TENANT}, entra)
    for payload in ({}, {"tid": TENANT.upper()}, {"tid": None}, {"tid": [TENANT]}):
        with pytest.raises(InvalidClaimsError):
            check_issuer_claims(payload, entra)
    cognito = _rule(token_use_access=True)
    check_issuer_claims({"token_use": "access"}, cognito)
    for payload in ({}, {"token_use": "id"}):
        with pytest.raises(InvalidClaimsError):
            check_issuer_claims(payload, cognito)
    keycloak = _rule(payload_typ="Bearer")
    check_issuer_claims({}, keycloak)
    check_issuer_claims({"typ": "Bearer"}, keycloak)
    for payload in ({"typ": "ID"}, {"typ": None}, {"typ": "bearer"}):
        with pytest.raises(InvalidClaimsError):
            check_issuer_claims(payload, keycloak)
    assert not _rule().checks and entra.checks and cognito.checks and keycloak.checks


def test_hints_name_present_common_claims_no_source_reads_and_never_values():
    rule = _rule()
    assert hints_for({"scope": "a"}, rule) == ()
    payload = {"scope": "a", "roles": ["R"], "cognito:groups": ["G"], "realm_access": {"roles": ["x"]}, "x": 1}
    assert hints_for(payload, rule) == ("roles", "cognito:groups", "realm_access")
    read = IssuerRules("https://i", frozenset(), (GrantSource("role", (("realm_access", "roles"),)),
                                                  GrantSource("role", (("roles",),))))
    assert hints_for(payload, read) == ("scope", "cognito:groups")
    # Entra's groups overage: no groups claim, a pointer to fetch them instead.
    overage = {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph"}}}
    assert hints_for(overage, rule) == ("_claim_names",)


_NAMES = ["scope", "scp", "roles", "groups", "permissions", "cognito:groups", "realm_access", "resource_access",
          "entitlements", "_claim_names", "sub", "other"]


@given(st.dictionaries(st.sampled_from(_NAMES), st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3)))),
       st.lists(st.tuples(st.sampled_from(["scope", "role", "group"]), st.sampled_from(_NAMES)), max_size=4))
def test_the_hints_guard_gives_the_rules_answer(payload, written):
    sources = tuple(GrantSource(kind, ((name,),)) for kind, name in written)
    rule = IssuerRules("https://i", frozenset(), sources)
    assert hints_for(payload, rule) == unconfigured_grant_claims(payload, sources)


def test_a_group_or_role_written_as_a_string_is_one_name_and_only_scopes_split():
    # Providers write a single group or role as a string (an Auth0 Action, ADFS-style
    # single values). Split on spaces, "super admin" would grant the role "admin".
    sources = parse_grant_sources(["scope:scope", "role:https://example.com/roles", "group:groups"], "GRANT_SOURCES")
    payload = {"scope": "pets:read pets:write", "https://example.com/roles": "super admin", "groups": "Pet Sitters"}
    assert read_grants(payload, sources) == frozenset(
        {"pets:read", "pets:write", "role super admin", "group Pet Sitters"})
    assert read_grants({"groups": ""}, sources) == frozenset()
    assert read_grants({"groups": ["Pet Sitters", "admins"]}, sources) == frozenset(
        {"group Pet Sitters", "group admins"})
