"""methodArn parsing and API Gateway's policy evaluation (pure)."""

from __future__ import annotations

import pytest

from policy_engine.core.arn import parse_method_arn
from policy_engine.core.iam import MalformedResponseError, Verdict, evaluate_response, glob_matches
from policy_engine.errors import EventError

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


@pytest.mark.parametrize(
    "arn,expected",
    [
        (f"{API}/dev/GET/pets/12", (API, "dev", "GET", "pets/12")),
        (f"{API}/dev/GET/", (API, "dev", "GET", "")),
        (f"{API}/dev/GET", (API, "dev", "GET", "")),
        (f"{API}/dev/GET/a/b:c/2021-08-01T00:00:00Z", (API, "dev", "GET", "a/b:c/2021-08-01T00:00:00Z")),
        ("arn:aws-cn:execute-api:cn-north-1:123456789012:abc123/prod/POST/x",
         ("arn:aws-cn:execute-api:cn-north-1:123456789012:abc123", "prod", "POST", "x")),
        (f"{API}/{'s' * 128}/GET/x", (API, "s" * 128, "GET", "x")),
    ],
)
def test_method_arn_is_parsed_from_the_left(arn, expected):
    parsed = parse_method_arn(arn)
    assert (parsed.api_arn, parsed.stage, parsed.verb, parsed.path) == expected


@pytest.mark.parametrize("arn", [None, 5, "", "nonsense", f"{API}", f"{API}/dev", f"{API}/*/GET/x",
                                 "arn:aws:s3:us-east-1:123456789012:a1b2c3d4e5/dev/GET/x",
                                 f"{API}/dev/GET/" + "x" * 1600,
                                 # API Gateway's stage names are at most 128 characters
                                 f"{API}/{'s' * 129}/GET/x"])
def test_bad_method_arns_are_refused(arn):
    with pytest.raises(EventError):
        parse_method_arn(arn)


@pytest.mark.parametrize(
    "pattern,value,matches",
    [
        ("a/*", "a/b/c", True),
        ("a/*/c", "a/x/y/c", True),
        ("a/?", "a/b", True),
        ("a/?", "a/bc", False),
        ("a/[bc]", "a/b", False),
        ("a/[bc]", "a/[bc]", True),
        ("a/b", "a/b/", False),
        ("A/b", "a/b", False),
        ("a.b", "axb", False),
    ],
)
def test_glob_is_iam_not_fnmatch(pattern, value, matches):
    assert glob_matches(pattern, value) is matches


def _response(*statements, **extra):
    return {"principalId": "p", "policyDocument": {"Version": "2012-10-17", "Statement": list(statements)}, **extra}


def test_deny_wins_over_allow_and_silence_is_implicit_deny():
    allow = {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": [f"{API}/dev/*"]}
    deny = {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": f"{API}/dev/DELETE/*"}
    response = _response(allow, deny)
    assert evaluate_response(response, f"{API}/dev/GET/pets") is Verdict.ALLOW
    assert evaluate_response(response, f"{API}/dev/DELETE/pets/1") is Verdict.EXPLICIT_DENY
    assert evaluate_response(response, f"{API}/prod/GET/pets") is Verdict.IMPLICIT_DENY


def test_statements_for_other_actions_do_not_allow():
    other = {"Effect": "Allow", "Action": "execute-api:InvalidateCache", "Resource": "*"}
    assert evaluate_response(_response(other), f"{API}/dev/GET/pets") is Verdict.IMPLICIT_DENY


@pytest.mark.parametrize(
    "response",
    [
        None,
        {"policyDocument": {}},
        _response({"Effect": "allow", "Action": "execute-api:Invoke", "Resource": "*"}),
        _response({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "x" * 513}),
        _response({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}, context={"a": [1]}),
        _response({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}, context={"a": None}),
        {"principalId": "p", "policyDocument": {"Version": "2012-10-17", "Statement": []}},
    ],
)
def test_malformed_responses_are_what_api_gateway_rejects(response):
    with pytest.raises(MalformedResponseError):
        evaluate_response(response, f"{API}/dev/GET/pets")
