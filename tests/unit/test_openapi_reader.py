"""``admin.openapi.read_openapi``: operations, their effective security, paths, and errors
with ``file:line``.

The three specs under ``tests/data/openapi/`` were written for these tests: a pet store in
OpenAPI 3.0 (root default, AND, OR, ``[]``, ``{}``, non-OAuth schemes), an API Gateway
Swagger 2.0 export (``basePath`` as the stage, an authorizer on an apiKey scheme, usage-plan
keys, ``ANY``, IAM) and an OpenAPI 3.1 JSON API (literal and parameter siblings, ``{proxy+}``,
a ``basePath`` server variable, ``$default``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from policy_engine.admin.openapi import OpenApiDocument, Operation, minimal, read_openapi
from policy_engine.errors import OpenApiError, PermissionsError
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data" / "openapi"
PETSTORE = DATA / "petstore-oas30.yaml"
GATEWAY = DATA / "apigateway-swagger20.yaml"
CATALOG = DATA / "catalog-oas31.json"


def line_of(path: Path, text: str, after: str | None = None) -> int:
    """The 1-based number of the first line holding ``text`` (after the line holding ``after``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line) + 1
    return next(i for i, line in enumerate(lines) if i >= start and text in line) + 1


def by_route(document: OpenApiDocument) -> dict[str, Operation]:
    return {op.route: op for op in document.operations}


def needs(*alternatives: set[str] | frozenset[str]) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(a) for a in alternatives)


def spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


OAS30 = """\
openapi: 3.0.3
info: {title: t, version: '1'}
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: https://idp.example.com/token, scopes: {a: '', b: ''}}}
    key: {type: apiKey, in: header, name: x-api-key}
paths:
"""


def failure(tmp_path: Path, text: str, name: str = "spec.yaml", **options: str) -> str:
    path = spec(tmp_path, text, name)
    with pytest.raises(OpenApiError) as caught:
        read_openapi(path, **options)
    assert isinstance(caught.value, PermissionsError)
    return str(caught.value)


# -- the pet store: OpenAPI 3.0 -----------------------------------------------------------


def test_the_document_is_described_by_its_version_title_and_the_digest_of_its_bytes():
    document = read_openapi(PETSTORE)
    assert (document.source, document.version, document.title) == (str(PETSTORE), "3.0.3", "Test pet store")
    assert document.digest == "sha256:" + hashlib.sha256(PETSTORE.read_bytes()).hexdigest()
    assert [(op.path, op.verb) for op in document.operations] == sorted((op.path, op.verb)
                                                                          for op in document.operations)


def test_the_root_default_applies_where_an_operation_has_no_security_and_is_replaced_where_it_has():
    ops = by_route(read_openapi(PETSTORE))
    assert ops["GET /pets"].requirements == needs({"pets:read"})
    # POST replaces the root list with its own: both scopes, not the root's one OR them.
    assert ops["POST /pets"].requirements == needs({"pets:read", "pets:write"})


def test_alternatives_are_ored_schemes_in_one_object_anded_and_every_listed_scope_required():
    ops = by_route(read_openapi(PETSTORE))
    # oauth [pets:read] OR oidc [openid, pets:read] OR api_key: the OIDC alternative holds the
    # first, so it is never needed; the API-key alternative is not the authorizer's.
    get_pet = ops["GET /pets/{petId}"]
    assert get_pet.requirements == needs({"pets:read"})
    assert any("alternative 3 left out: api_key (API key in header x-api-key)" in n for n in get_pet.notes)
    assert any("1 alternative(s) dropped" in n for n in get_pet.notes)
    # oauth [pets:admin] AND api_key: the OAuth part is kept, the key is API Gateway's.
    delete = ops["DELETE /pets/{petId}"]
    assert delete.requirements == needs({"pets:admin"})
    assert any("api_key (API key in header x-api-key) is checked by API Gateway" in n for n in delete.notes)


def test_an_empty_list_needs_no_authorization_and_an_empty_object_is_any_authenticated_caller():
    ops = by_route(read_openapi(PETSTORE))
    assert ops["GET /health"].requirements is None
    assert ops["GET /catalog"].requirements == (frozenset(),)
    assert "anonymous access allowed" in ops["GET /catalog"].notes[0]


def test_requirements_made_only_of_schemes_the_authorizer_does_not_read_grant_nobody():
    ops = by_route(read_openapi(PETSTORE))
    assert ops["GET /store/inventory"].requirements == ()
    assert ops["GET /store/basic"].requirements == ()
    assert "basic (HTTP basic authentication) is checked by API Gateway or nobody" in ops["GET /store/basic"].notes[0]


def test_oauth_anded_with_what_nothing_checks_beside_the_authorizer_is_left_out_not_cut_down(tmp_path):
    # API Gateway checks an API key or mutual TLS beside a Lambda authorizer; nothing checks
    # HTTP basic or bearer there, and IAM is another authorization type of the method. Cut
    # down to its OAuth part, such an alternative would let in callers without the rest.
    text = OAS30.replace("    key: {type: apiKey, in: header, name: x-api-key}\n", """\
    key: {type: apiKey, in: header, name: x-api-key}
    basic: {type: http, scheme: basic}
    bearer: {type: http, scheme: bearer}
    iam: {type: apiKey, in: header, name: Authorization, x-amazon-apigateway-authtype: awsSigv4}
""") + """\
  /basic: {get: {security: [{oauth: [a], basic: []}]}}
  /bearer: {get: {security: [{oauth: [a], bearer: []}]}}
  /iam: {get: {security: [{oauth: [], iam: []}]}}
  /key: {get: {security: [{oauth: [a], key: []}]}}
  /either: {get: {security: [{oauth: [a], basic: []}, {oauth: [b]}]}}
"""
    ops = by_route(read_openapi(spec(tmp_path, text)))
    for route, scheme in (("GET /basic", "basic"), ("GET /bearer", "bearer"), ("GET /iam", "iam")):
        assert ops[route].requirements == (), route
        assert any(f"left out: it also needs {scheme} (" in note for note in ops[route].notes), route
    assert ops["GET /either"].requirements == needs({"b"})
    assert ops["GET /key"].requirements == needs({"a"})


def test_a_local_ref_path_item_is_read_and_a_superset_alternative_dropped():
    photos = by_route(read_openapi(PETSTORE))["GET /pets/{petId}/photos"]
    assert photos.requirements == needs({"pets:read"})
    assert photos.where == f"{PETSTORE}:{line_of(PETSTORE, 'get:', after='photos:')}"
    assert any("'photos:read' is not among the scopes petstore_auth declares" in n for n in photos.notes)


def test_each_operation_is_named_by_the_line_of_its_method_key():
    ops = by_route(read_openapi(PETSTORE))
    assert ops["GET /pets"].where == f"{PETSTORE}:{line_of(PETSTORE, 'get:', after='  /pets:')}"
    assert ops["POST /pets"].where == f"{PETSTORE}:{line_of(PETSTORE, 'post:', after='  /pets:')}"
    assert ops["DELETE /pets/{petId}"].where == f"{PETSTORE}:{line_of(PETSTORE, 'delete:')}"


def test_trace_is_reported_and_skipped_and_the_root_default_is_noted():
    document = read_openapi(PETSTORE)
    assert [(s.verb, s.path, s.where) for s in document.skipped] == [
        ("TRACE", "/pets/{petId}", f"{PETSTORE}:{line_of(PETSTORE, 'trace:')}")]
    assert "API Gateway has no TRACE method" in document.skipped[0].reason
    assert "TRACE /pets/{petId}" not in by_route(document)
    assert document.notes and "REST import ignores root security" in document.notes[0]


def test_the_server_url_path_is_the_base_path():
    routes = {op.path for op in read_openapi(PETSTORE, base_path="prepend").operations}
    assert "/v1/pets/{petId}" in routes and "/v1/health" in routes
    assert {op.path for op in read_openapi(PETSTORE, base_path="split").operations} == \
        {op.path for op in read_openapi(PETSTORE).operations}


# -- an API Gateway export: Swagger 2.0 --------------------------------------------------


def test_an_api_gateway_export_reads_its_authorizer_scopes_any_method_and_greedy_paths():
    ops = by_route(read_openapi(GATEWAY))
    assert ops["GET /"].requirements == needs({"orders:read"})
    assert ops["POST /orders"].requirements == needs({"orders:read", "orders:write"})
    assert ops["GET /orders/{orderId}"].requirements == (frozenset(),)
    assert ops["ANY /orders/{orderId}"].requirements == needs({"orders:admin"})
    assert ops["ANY /static/{proxy+}"].requirements == needs({"static:read"})
    assert ops["ANY /orders/{orderId}"].where == f"{GATEWAY}:{line_of(GATEWAY, 'x-amazon-apigateway-any-method:')}"


def test_x_amazon_apigateway_auth_none_is_no_authorization_and_iam_schemes_grant_nobody():
    ops = by_route(read_openapi(GATEWAY))
    assert ops["GET /ping"].requirements is None  # written 'none': the type is case-insensitive
    assert ops["GET /reports"].requirements == ()
    assert "IAM authorization" in ops["GET /reports"].notes[0]


def test_templates_differing_only_in_parameter_names_are_refused_for_one_method(tmp_path):
    text = OAS30 + """\
  /a/{x}: {get: {security: [{oauth: [a]}]}}
  /a/{y}:
    get: {security: [{oauth: [b]}]}
"""
    message = failure(tmp_path, text)
    assert ":12: paths['/a/{y}'].get: GET /a/{y} routes the same requests as GET /a/{x}" in message
    # Other methods on the two names, or another shape, are no such pair.
    ops = by_route(read_openapi(spec(tmp_path, OAS30 + """\
  /a/{x}: {get: {security: [{oauth: [a]}]}}
  /a/{y}: {post: {security: [{oauth: [b]}]}}
  /a/{z}/c: {get: {security: [{oauth: [b]}]}}
""")))
    assert set(ops) == {"GET /a/{x}", "POST /a/{y}", "GET /a/{z}/c"}


def test_auth_none_beside_a_security_requirement_grants_nobody(tmp_path):
    # Which of the two API Gateway applies is undocumented: if it is the security, a
    # mapping-less route would be reached by the sibling template's wildcard.
    text = OAS30 + """\
  /files/{id}: {get: {security: [{oauth: [a]}]}}
  /files/admin: {get: {security: [{oauth: [b]}], x-amazon-apigateway-auth: {type: NONE}}}
  /files/open: {get: {security: [], x-amazon-apigateway-auth: {type: none}}}
"""
    ops = by_route(read_openapi(spec(tmp_path, text)))
    assert ops["GET /files/admin"].requirements == ()
    assert "contradicts its security" in ops["GET /files/admin"].notes[0]
    assert ops["GET /files/open"].requirements is None


@pytest.mark.parametrize("mode,expected", [("ignore", "/orders"), ("prepend", "/dev/orders"), ("split", "/orders")])
def test_swagger_base_path_modes_are_api_gateways(mode, expected):
    document = read_openapi(GATEWAY, base_path=mode)
    assert expected in {op.path for op in document.operations}
    root = "/dev" if mode == "prepend" else "/"
    assert f"GET {root}" in by_route(document)


def test_split_drops_the_first_segment_of_a_longer_base_path(tmp_path):
    path = spec(tmp_path, "swagger: '2.0'\ninfo: {title: t, version: '1'}\nbasePath: /a/b/c\npaths:\n"
                          "  /e: {get: {security: [], responses: {}}}\n")
    assert [op.path for op in read_openapi(path, base_path="split").operations] == ["/b/c/e"]
    assert [op.path for op in read_openapi(path, base_path="prepend").operations] == ["/a/b/c/e"]
    assert [op.path for op in read_openapi(path).operations] == ["/e"]


# -- OpenAPI 3.1 in JSON ------------------------------------------------------------------


def test_literal_and_parameter_siblings_keep_their_own_requirements():
    document = read_openapi(CATALOG)
    ops = by_route(document)
    assert document.version == "3.1.0" and document.title == "Catalog \u00e9dition \U0001F4DA"
    assert ops["GET /items/search"].requirements == needs({"items:search"})
    assert ops["GET /items/{itemId}"].requirements == needs({"items:read"})
    assert ops["GET /items/{itemId}/history"].requirements == needs({"items:admin"}, {"items:audit"})
    assert ops["GET /files/{proxy+}"].requirements == needs({"files:read"})
    assert ops["ANY /files/{proxy+}"].requirements == needs({"files:write"})
    get_items = line_of(CATALOG, '"get"', after='"/items"')
    assert ops["GET /items"].where == f"{CATALOG}:{get_items}"


def test_the_default_route_is_reported_and_skipped():
    document = read_openapi(CATALOG, base_path="prepend")
    assert [(s.verb, s.path) for s in document.skipped] == [("ANY", "/$default")]
    assert "$default" in document.skipped[0].reason


@pytest.mark.parametrize("mode,prefix", [("prepend", "/catalog/v2"), ("split", "/v2"), ("ignore", "")])
def test_a_base_path_server_variable_is_the_base_path(mode, prefix):
    document = read_openapi(CATALOG, base_path=mode)
    assert document.base_path == prefix
    assert f"GET {prefix}/items/{{itemId}}" in by_route(document)


def test_a_json_document_on_one_line_is_read_and_its_errors_name_the_element(tmp_path):
    document = json.loads(CATALOG.read_text(encoding="utf-8"))
    one_line = spec(tmp_path, json.dumps(document), "one.json")
    read = read_openapi(one_line)
    assert {op.route: op.requirements for op in read.operations} == \
        {op.route: op.requirements for op in read_openapi(CATALOG).operations}
    assert {op.where for op in read.operations} == {f"{one_line}:1"}
    document["paths"]["/items"]["get"]["security"] = [{"oauth": ["items:read"], "nope": []}]
    message = failure(tmp_path, json.dumps(document), "one.json")
    assert message.startswith(f"{tmp_path / 'one.json'}:1: paths['/items'].get.security[0].nope: security scheme "
                              "'nope' is not declared (declared: oauth)")


# -- rules on their own -------------------------------------------------------------------


def test_no_security_declared_anywhere_grants_nobody(tmp_path):
    path = spec(tmp_path, OAS30 + "  /open:\n    get: {responses: {}}\n")
    (operation,) = read_openapi(path).operations
    assert operation.requirements == ()
    assert operation.notes == ("no security declared (neither on the operation nor at the root): no caller is "
                               "granted it",)


def test_a_scope_that_is_not_a_scope_token_leaves_its_alternative_out(tmp_path):
    path = spec(tmp_path, OAS30 + "  /x:\n    get:\n      security: [{oauth: ['a b']}, {oauth: [b]}]\n"
                                  "      responses: {}\n")
    (operation,) = read_openapi(path).operations
    assert operation.requirements == needs({"b"})
    assert "'a b' is not one OAuth scope token" in operation.notes[0]


def test_an_alternative_made_only_of_bad_scopes_leaves_the_operation_granted_to_nobody(tmp_path):
    path = spec(tmp_path, OAS30 + "  /x:\n    get:\n      security: [{oauth: ['a\"b']}]\n      responses: {}\n")
    assert read_openapi(path).operations[0].requirements == ()


def test_an_openid_connect_scheme_and_a_bearer_scheme_with_an_authorizer_are_read(tmp_path):
    text = """\
openapi: 3.1.0
info: {title: t, version: '1'}
components:
  securitySchemes:
    oidc: {type: openIdConnect, openIdConnectUrl: https://idp.example.com/.well-known/openid-configuration}
    jwt:
      type: http
      scheme: bearer
      x-amazon-apigateway-authorizer: {type: jwt, jwtConfiguration: {issuer: https://idp.example.com}}
    plain: {type: http, scheme: bearer}
    tls: {type: mutualTLS}
paths:
  /a: {get: {security: [{oidc: [openid, profile]}], responses: {}}}
  /b: {get: {security: [{jwt: [b]}], responses: {}}}
  /c: {get: {security: [{plain: []}, {tls: []}], responses: {}}}
"""
    ops = by_route(read_openapi(spec(tmp_path, text)))
    assert ops["GET /a"].requirements == needs({"openid", "profile"})
    assert ops["GET /b"].requirements == needs({"b"})
    assert ops["GET /c"].requirements == ()
    assert len(ops["GET /c"].notes) == 2


def test_aws_iam_on_an_operation_grants_nobody(tmp_path):
    path = spec(tmp_path, OAS30 + "  /x:\n    get:\n      x-amazon-apigateway-auth: {type: AWS_IAM}\n"
                                  "      security: [{oauth: [a]}]\n      responses: {}\n")
    (operation,) = read_openapi(path).operations
    assert operation.requirements == ()
    assert "AWS_IAM" in operation.notes[0] and "its security is not what API Gateway applies" in operation.notes[0]


def test_two_parameter_names_under_one_parent_are_noted(tmp_path):
    path = spec(tmp_path, OAS30 + "  /a/{x}:\n    get: {security: [], responses: {}}\n"
                                  "  /a/{y}/b:\n    get: {security: [], responses: {}}\n")
    notes = read_openapi(path).notes
    assert any("{y} beside {x}" in note and "one path parameter" in note for note in notes)


def test_minimal_keeps_the_smallest_alternatives_and_any_caller_alone():
    assert minimal([frozenset("ab"), frozenset("a"), frozenset("bc"), frozenset("a")]) == needs({"a"}, {"b", "c"})
    assert minimal([frozenset("a"), frozenset()]) == (frozenset(),)


def test_surrogate_pairs_in_json_strings_are_read(tmp_path):
    path = spec(tmp_path, '{"openapi": "3.0.3", "info": {"title": "\\ud83d\\ude00 \\\\ud83d", "version": "1"},'
                          ' "paths": {}}', "s.json")
    assert read_openapi(path).title == "\U0001F600 \\ud83d"


# -- errors: one clear message with file:line --------------------------------------------


@pytest.mark.parametrize("text,line,message", [
    ("openapi: 3.0.3\npaths: {\n", 3, "not valid YAML or JSON"),
    ("- a\n- b\n", 1, "not an OpenAPI document (expected a mapping"),
    ("info: {title: t}\npaths: {}\n", 1, "not an OpenAPI document (no 'openapi' or 'swagger' field)"),
    ("openapi: 2.5.0\npaths: {}\n", 1, "openapi: OpenAPI version '2.5.0' is not supported"),
    ("swagger: '1.2'\npaths: {}\n", 1, "swagger: Swagger version '1.2' is not supported"),
    ("openapi: 3.0.3\nopenapi: 3.1.0\n", 2, "duplicate key 'openapi'"),
    ("openapi: 3.0.3\npaths: []\n", 2, "paths: paths must be a mapping"),
    (OAS30 + "  /x:\n    get:\n      security: [{oauth: [a]}, {missing: []}]\n", 12,
     "paths['/x'].get.security[1].missing: security scheme 'missing' is not declared (declared: key, oauth)"),
    (OAS30 + "  /x:\n    get:\n      security: {oauth: [a]}\n", 12, "security must be a list"),
    (OAS30 + "  /x:\n    get:\n      security:\n        - oauth: a\n", 13,
     "the value of 'oauth' must be a list of scopes"),
    (OAS30 + "  /x:\n    get:\n      security:\n        - oauth:\n", 13, "must be a list of scopes ([] for none)"),
    (OAS30 + "  /x:\n    get:\n      security: [oauth]\n", 12, "a security requirement must map scheme names"),
    (OAS30 + "  /x:\n    get:\n      x-amazon-apigateway-auth: {type: COGNITO}\n", 12,
     "x-amazon-apigateway-auth type 'COGNITO' is not NONE or AWS_IAM"),
    (OAS30 + "  /x:\n    GET: {}\n", 11, "unknown path item field 'GET' (methods are lower-case"),
    # A misspelt 'security' would drop the operation's own requirement for the root's.
    (OAS30 + "  /x:\n    get:\n      Security: [{oauth: [a]}]\n", 12,
     "unknown operation field 'Security' (did you mean 'security'?"),
    (OAS30 + "  /x:\n    get: [a]\n", 11, "an operation must be a mapping"),
    (OAS30 + "  /x{id}:\n    get: {}\n", 10, "a path parameter is a whole segment"),
    (OAS30 + "  /x/{p+}/y:\n    get: {}\n", 10, "the greedy parameter {p+} must be the last segment"),
    (OAS30 + "  /x/a b:\n    get: {}\n", 10, "has characters other than letters, digits"),
    (OAS30 + "  /x/:\n    get: {}\n", 10, "an empty segment"),
    (OAS30 + "  x:\n    get: {}\n", 10, "a path starts with '/'"),
    (OAS30 + "  /x/{claim:tenant}:\n    get: {}\n", 10, "a path parameter is a whole segment"),
    (OAS30 + "  /x:\n    $ref: 'other.yaml#/paths/~1x'\n", 11,
     "$ref 'other.yaml#/paths/~1x' points outside this document"),
    (OAS30 + "  /x:\n    $ref: '#/paths/~1y'\n", 11, "$ref '#/paths/~1y' does not resolve"),
    (OAS30.replace("type: apiKey", "type: cookie"), 8, "security scheme type 'cookie' is not one of"),
    # mutualTLS came with OpenAPI 3.1; an unquoted 3.1 is a YAML number.
    (OAS30.replace("type: apiKey", "type: mutualTLS"), 8, "security scheme type 'mutualTLS' is not one of"),
    (OAS30.replace("openapi: 3.0.3", "openapi: 3.1"), 1, "is not supported (3.0.x, 3.1.x or 3.2.x) (quote it"),
])
def test_a_bad_document_is_one_error_naming_file_and_line(tmp_path, text, line, message):
    error = failure(tmp_path, text)
    where = f"{tmp_path / 'spec.yaml'}:{line}: "
    assert error.startswith(where), error
    assert message in error, error


def test_a_bad_base_path_is_named_only_when_it_is_used(tmp_path):
    text = "swagger: '2.0'\ninfo: {title: t, version: '1'}\nbasePath: /a b\npaths: {}\n"
    assert read_openapi(spec(tmp_path, text)).operations == ()
    assert failure(tmp_path, text, base_path="prepend").startswith(f"{tmp_path / 'spec.yaml'}:3: basePath: base path")


def test_files_that_cannot_be_read_are_errors(tmp_path):
    with pytest.raises(OpenApiError, match="cannot read"):
        read_openapi(tmp_path / "missing.yaml")
    (tmp_path / "latin.yaml").write_bytes(b"openapi: 3.0.3\ninfo: {title: caf\xe9}\n")
    with pytest.raises(OpenApiError, match="not UTF-8 text"):
        read_openapi(tmp_path / "latin.yaml")
    with pytest.raises(OpenApiError, match="base path mode 'keep'"):
        read_openapi(PETSTORE, base_path="keep")


def test_extensions_under_paths_are_not_routes_and_an_unquoted_swagger_version_is_read(tmp_path):
    path = spec(tmp_path, "swagger: 2.0\ninfo: {title: t, version: '1'}\npaths:\n  x-note: {get: {}}\n"
                          "  /a: {get: {security: []}, x-owner: team}\n")
    document = read_openapi(path)
    assert document.version == "2.0" and [op.route for op in document.operations] == ["GET /a"]


def test_a_relative_server_url_is_the_base_path(tmp_path):
    path = spec(tmp_path, "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: /api/v1/}]\npaths:\n"
                          "  /a: {get: {security: []}}\n")
    assert [op.path for op in read_openapi(path, base_path="prepend").operations] == ["/api/v1/a"]
    assert [op.path for op in read_openapi(path, base_path="split").operations] == ["/v1/a"]


def test_a_method_both_in_a_path_item_and_its_ref_is_an_error(tmp_path):
    text = OAS30 + "  /a:\n    get: {security: []}\n  /b:\n    $ref: '#/paths/~1a'\n    get: {security: []}\n"
    assert failure(tmp_path, text).startswith(f"{tmp_path / 'spec.yaml'}:14: paths['/b'].get: get is both here and "
                                              "in the $ref'd path item")


def test_security_schemes_may_be_local_refs(tmp_path):
    text = OAS30.replace("    key: {type: apiKey, in: header, name: x-api-key}\n",
                         "    key: {$ref: '#/components/x-schemes/o'}\n  x-schemes:\n"
                         "    o: {type: openIdConnect, openIdConnectUrl: https://idp.example.com/oidc}\n")
    path = spec(tmp_path, text + "  /a: {get: {security: [{key: [s]}]}}\n")
    assert read_openapi(path).operations[0].requirements == needs({"s"})
