"""``template.yaml``: cfn-lint clean, least privilege, and consistent with the bundle."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.packaging import default_output
from policy_engine.errors import ConfigurationError
from policy_engine.settings import Settings
from tests.integration.cfn import ROOT, TEMPLATE, load_template, resources
from tests.integration.metrics_contract import (
    DECISIONS,
    DEFAULT_NAMESPACE,
    PUBLISHED_METRICS,
    dashboard_metrics,
    dashboard_searches,
    metric_problems,
    template_dashboard,
)
from tests.support.tool_venv import tool

CFN_LINT = Path(sys.executable).parent / "cfn-lint"
SAM_VENV = ROOT / ".cache" / "sam-venv"
#: What the authorizer reads: the pointer (GetItem) and the snapshot parts (BatchGetItem), or the object.
READ_ACTIONS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "s3:GetObject"}


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CFN_LINT), "--format", "parseable", str(path)],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_template_passes_cfn_lint():
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_a_broken_template_fails_cfn_lint(tmp_path):
    # The lint must be able to fail: a billing mode DynamoDB does not have, and a
    # reference to a parameter that does not exist.
    broken = TEMPLATE.read_text().replace("BillingMode: PAY_PER_REQUEST", "BillingMode: ON_DEMAND")
    broken = broken.replace("ISSUER: !Ref Issuer", "ISSUER: !Ref Issuers")
    assert broken.count("ON_DEMAND") == broken.count("!Ref Issuers") == 1
    (tmp_path / "template.yaml").write_text(broken)
    result = cfn_lint(tmp_path / "template.yaml")
    assert result.returncode != 0
    assert "E3030" in result.stdout  # 'ON_DEMAND' is not one of ['PAY_PER_REQUEST', 'PROVISIONED']
    assert "'Issuers'" in result.stdout


def _references(node: Any) -> set[str]:
    if isinstance(node, list):
        return {name for item in node for name in _references(item)}
    if not isinstance(node, dict):
        return set()
    found = {name for value in node.values() for name in _references(value)}
    if isinstance(node.get("Ref"), str):
        found.add(node["Ref"])
    if isinstance(node.get("Fn::GetAtt"), list):
        found.add(node["Fn::GetAtt"][0])
    sub = node.get("Fn::Sub")
    if isinstance(sub, str):
        found |= {name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", sub)}
    return found


def test_every_reference_names_a_parameter_or_resource(template):
    # cfn-lint (1.58) does not check references that the SAM transform moves into
    # generated resources: '!GetAtt PermissionTable.Arn' in the function's Policies, or a
    # misspelt FunctionArn of an authorizer, lint clean. So check them here.
    known = set(template["Parameters"]) | set(template["Resources"])
    unknown = {name for name in _references(template["Resources"]) | _references(template["Outputs"])
               if name not in known and not name.startswith("AWS::")}
    assert unknown == set()
    # and the check can fail
    assert _references({"a": {"Fn::Sub": "${Nope.Arn}/${AWS::Region}"}}) == {"Nope", "AWS::Region"}


def _statements(node: Any) -> list[dict[str, Any]]:
    """Every statement, on both sides of each ``Fn::If``."""
    if isinstance(node, list):
        return [s for item in node for s in _statements(item)]
    if isinstance(node, dict) and "Fn::If" in node:
        return [s for branch in node["Fn::If"][1:] for s in _statements(branch)]
    return [node] if isinstance(node, dict) else []


def test_the_authorizer_may_only_read_its_own_table_or_object(template):
    function = template["Resources"]["AuthorizerFunction"]["Properties"]
    policies = function["Policies"]
    assert all(isinstance(policy, dict) for policy in policies), "no managed or SAM policy templates (Scan, writes)"
    statements = [s for policy in policies for s in _statements(policy["Statement"])]
    assert {s["Effect"] for s in statements} == {"Allow"}
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == READ_ACTIONS
    resources_ = [r for s in statements for r in (s["Resource"] if isinstance(s["Resource"], list)
                                                  else [s["Resource"]])]
    # the table holds the candidate too (item META/CANDIDATE); an S3 candidate is the object KEY.candidate
    assert sorted(map(json.dumps, resources_)) == sorted(map(json.dumps, [
        {"Fn::GetAtt": ["PermissionsTable", "Arn"]},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${PermissionsBucket}/${PermissionsObjectKey}"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${PermissionsBucket}/${PermissionsObjectKey}.candidate"},
    ]))


def test_the_permissions_table_is_on_demand_recoverable_and_protected(template):
    table = template["Resources"]["PermissionsTable"]
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    # the layout the store and migrations/0001_create_table.py use
    assert properties["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}]
    attributes = {(a["AttributeName"], a["AttributeType"]) for a in properties["AttributeDefinitions"]}
    assert attributes == {("pk", "S"), ("sk", "S")}


def test_the_decision_log_outlives_the_stack(template):
    log_group = template["Resources"]["AuthorizerLogGroup"]
    assert log_group["DeletionPolicy"] == log_group["UpdateReplacePolicy"] == "Retain"


def test_the_provider_settings_the_readme_asks_for_are_parameters(template):
    # README step 1 sets IDP_PRESET (groups are read from it); a deploy from the template
    # must be able to pass it, and GRANT_SOURCES, without editing the template.
    from policy_engine.settings import variable

    variables = template["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["IDP_PRESET"] == {"Ref": "IdpPreset"} and variables["GRANT_SOURCES"] == {"Ref": "GrantSources"}
    preset = template["Parameters"]["IdpPreset"]
    assert preset["Default"] == "" and sorted(preset["AllowedValues"]) == sorted(["", *variable("IDP_PRESET").choices])
    assert template["Parameters"]["GrantSources"]["Default"] == ""


def test_the_function_runs_the_bundle_the_cli_builds(template):
    function = template["Resources"]["AuthorizerFunction"]["Properties"]
    assert function["Handler"] == "handler.app.lambda_handler"
    assert (ROOT / "handler" / "app.py").is_file()
    (arch,) = function["Architectures"]
    python = function["Runtime"].removeprefix("python")
    assert function["CodeUri"] == default_output(arch, python).as_posix()
    env = function["Environment"]["Variables"]
    assert {"ISSUER", "AUDIENCE", "PERMISSIONS_SOURCE", "PERMISSIONS_CACHE_TTL", "METRICS_NAMESPACE"} <= set(env)


def test_the_rest_api_validates_bearer_tokens_before_calling_the_authorizer(template):
    (api,) = resources(template, "AWS::Serverless::Api").values()
    auth = api["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["FunctionPayloadType"] == "TOKEN"
    assert authorizer["Identity"]["ReauthorizeEvery"] == {"Ref": "AuthorizerCacheTtl"}
    pattern = re.compile(authorizer["Identity"]["ValidationExpression"])
    with LocalIdentityProvider() as idp:
        token = idp.mint(scope="pets:read")
    assert pattern.fullmatch(f"Bearer {token}")
    for refused in ["", "Bearer", "Bearer ", f"bearer {token}", f"Basic {token}", f"Bearer {token} x",
                    f"Bearer {token}\n"]:
        assert not pattern.fullmatch(refused), refused
    ttl = template["Parameters"]["AuthorizerCacheTtl"]
    assert (ttl["MinValue"], ttl["MaxValue"]) == (0, 3600)


def test_the_http_api_uses_a_payload_2_lambda_authorizer(template):
    (api,) = resources(template, "AWS::Serverless::HttpApi").values()
    auth = api["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["EnableSimpleResponses"] is False
    assert authorizer["Identity"]["Headers"] == ["Authorization"]


@pytest.fixture(scope="module")
def sam() -> Path:
    """The SAM CLI in its own cached virtual environment (installed once from PyPI)."""
    return tool(SAM_VENV, "sam", "aws-sam-cli")


@pytest.mark.slow
def test_sam_validate_lint_passes(sam, tmp_path):
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "HOME": str(tmp_path)}
    result = subprocess.run([str(sam), "validate", "--lint", "--template-file", str(TEMPLATE)],
                            capture_output=True, text=True, timeout=300, check=False, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def sam_transform(sam: Path) -> Callable[[dict[str, str]], dict[str, Any]]:
    """The template as AWS SAM's translator expands it (what CloudFormation deploys)."""

    def run(parameters: dict[str, str]) -> dict[str, Any]:
        values = {"Issuer": "https://issuer.example", "Audience": "api", **parameters}
        done = subprocess.run(
            [str(sam.parent / "python"), str(Path(__file__).with_name("sam_transform.py")), str(TEMPLATE),
             json.dumps(values)],
            env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"},
            capture_output=True, text=True, timeout=300, check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)["Resources"]

    return run


def _operations(paths: Any) -> list[dict[str, Any]]:
    """Operations of an OpenAPI ``paths`` object, through SAM's ``Fn::If`` wrappers."""
    if isinstance(paths, dict) and "Fn::If" in paths:
        return _operations(paths["Fn::If"][1])
    if isinstance(paths, dict) and "security" in paths:
        return [paths]
    if isinstance(paths, dict):
        return [op for value in paths.values() for op in _operations(value)]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("parameters", [{}, {"EnableHttpApi": "true", "PermissionsBucket": "my-permissions",
                                              "AuthorizerCacheTtl": "0"}])
def test_sam_expands_the_template_with_every_route_behind_the_authorizer(sam_transform, parameters):
    # cfn-lint does not run the SAM transform; an authorizer without an invoke
    # permission, or a route without the authorizer, would only show up on deploy.
    resources = sam_transform(parameters)
    (rest,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    body = rest["Properties"]["Body"]
    # OpenAPI 3 (Globals.Api.OpenApiVersion): security schemes under components
    token = body["components"]["securitySchemes"]["PolicyEngineTokenAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert token["type"] == "token"
    assert token["identityValidationExpression"] == "^Bearer [-0-9A-Za-z._~+/]+=*$"
    assert str(token["authorizerResultTtlInSeconds"]) == parameters.get("AuthorizerCacheTtl", "300")
    operations = _operations(body["paths"])
    assert len(operations) == 2 and all(op["security"] == [{"PolicyEngineTokenAuthorizer": []}] for op in operations)
    # one stage, StageName: no second stage SAM names "Stage" (reachable, and undocumented)
    stage_names = [r["Properties"].get("StageName") for r in resources.values()
                   if r["Type"] in ("AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage")]
    assert stage_names and "Stage" not in stage_names and {"Ref": "StageName"} in stage_names

    (http,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    assert http["Condition"] == "CreateHttpApi"
    scheme = http["Properties"]["Body"]["components"]["securitySchemes"]["PolicyEngineLambdaAuthorizer"]
    lambda_authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert (lambda_authorizer["type"], lambda_authorizer["authorizerPayloadFormatVersion"]) == ("request", "2.0")
    assert not lambda_authorizer.get("enableSimpleResponses")
    assert lambda_authorizer["identitySource"] == ["$request.header.Authorization"]
    http_operations = _operations(http["Properties"]["Body"]["paths"])
    assert http_operations and all(op["security"] == [{"PolicyEngineLambdaAuthorizer": []}] for op in http_operations)

    # API Gateway may invoke the authorizer from both APIs' authorizers, and only from them
    invokers = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"
                and r["Properties"]["FunctionName"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}]
    sources = sorted(json.dumps(r["Properties"]["SourceArn"]) for r in invokers)
    assert len(invokers) == 2 and all("/authorizers/*" in source for source in sources)
    assert sorted(r.get("Condition", "") for r in invokers) == ["", "CreateHttpApi"]

    # the generated role: SAM's log-writing managed policy plus our read-only statements
    role = resources["AuthorizerFunctionRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]
    statements = [s for policy in role["Policies"] for s in _statements(policy["PolicyDocument"]["Statement"])]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == READ_ACTIONS


# ---- metrics: the alarms and the dashboard read what the authorizer publishes ---------------------------------

#: Each alarm: metric, dimensions besides FunctionName, statistic, comparison, threshold, periods to alarm.
ALARMS = {
    "FailuresClosedAlarm": ("Decisions", {"decision": "Error"}, "Sum", "GreaterThanOrEqualToThreshold",
                            {"Ref": "FailuresClosedThreshold"}, 1),
    "ShadowDifferencesAlarm": ("ShadowDifferences", {}, "Sum", "GreaterThanOrEqualToThreshold",
                               {"Ref": "ShadowDifferencesThreshold"}, 1),
    "StalePermissionsAlarm": ("PermissionsRefreshAge", {}, "Maximum", "GreaterThanThreshold",
                              {"Ref": "StalePermissionsSeconds"}, 1),
    "PermissionVersionAgeAlarm": ("PermissionVersionAge", {}, "Maximum", "GreaterThanThreshold",
                                  {"Ref": "PermissionVersionMaxAge"}, 1),
    "StoreFailuresAlarm": ("StoreFailures", {}, "Sum", "GreaterThanOrEqualToThreshold", 1,
                           {"Ref": "DependencyFailurePeriods"}),
    "JwksFailuresAlarm": ("JwksFailures", {}, "Sum", "GreaterThanOrEqualToThreshold", 1,
                          {"Ref": "DependencyFailurePeriods"}),
}
FUNCTION_NAME = {"Ref": "AuthorizerFunction"}
NAMESPACE = {"Ref": "MetricsNamespace"}


def test_the_function_publishes_under_the_namespace_parameter(template):
    env = template["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["METRICS_NAMESPACE"] == NAMESPACE
    assert "METRICS" not in env  # on, the runtime's default: the alarms need the metrics
    parameter = template["Parameters"]["MetricsNamespace"]
    assert parameter["Default"] == DEFAULT_NAMESPACE
    pattern = re.compile(parameter["AllowedPattern"])
    # the runtime's rule for METRICS_NAMESPACE, so a stack never starts a function that refuses it
    for accepted in (DEFAULT_NAMESPACE, "Team/Pets", "pets.auth:prod", "Pets API", "x" * 255):
        assert pattern.fullmatch(accepted), accepted
    for refused in ("", "AWS/Lambda", ":pets", "pets\tapi", "pets,api", "x" * 256):  # AWS/ is AWS's own
        assert not pattern.fullmatch(refused), refused
    # What the stack accepts, the function uses as written: a value it would strip (or
    # refuse once stripped) would put the metrics where no alarm and no dashboard looks.
    for value in (" Team ", "   ", " AWS/Lambda", "Team ", " Team", "Pets API"):
        try:
            environ = {"ISSUER": "https://idp.example.com", "AUDIENCE": "pets", "METRICS_NAMESPACE": value}
            used = Settings.from_environ(environ).metrics_namespace
        except ConfigurationError:
            used = None
        assert bool(pattern.fullmatch(value)) == (used == value), value


def _dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def test_every_alarm_reads_a_metric_the_authorizer_publishes(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == set(ALARMS)
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["Namespace"] == NAMESPACE, name
        dimensions = _dimensions(props)
        assert dimensions["FunctionName"] == FUNCTION_NAME, name
        assert metric_problems(props["MetricName"], dimensions) == [], name
        # chosen, not CloudWatch's default (missing): no data means nothing happened
        assert props["TreatMissingData"] == "notBreaching", name
        assert props["Period"] == 300, name
        notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
        assert props["AlarmActions"] == props["OKActions"] == notify, name
        assert "Unit" not in props  # the unit EMF gives the metric; a different one would match no data
    assert template["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    # and the check can fail: a misspelt metric, a dimension set never published, an unknown decision
    assert metric_problems("Decision", {"FunctionName": "f"})
    assert metric_problems("Decisions", {"FunctionName": "f", "reason": "no_grant"})
    assert metric_problems("Decisions", {"FunctionName": "f", "decision": "error"})
    assert metric_problems("ShadowDifferences", {"FunctionName": "f", "decision": "Allow"})


def test_the_alarms_watch_failures_differences_and_staleness(template):
    for name, (metric, extra, statistic, comparison, threshold, periods) in ALARMS.items():
        alarm = template["Resources"][name]
        props = alarm["Properties"]
        assert (props["MetricName"], props["Statistic"], props["ComparisonOperator"]) == (metric, statistic,
                                                                                          comparison), name
        assert {k: v for k, v in _dimensions(props).items() if k != "FunctionName"} == extra, name
        assert props["Threshold"] == threshold, name
        assert props["EvaluationPeriods"] == props["DatapointsToAlarm"] == periods, name
    parameters = template["Parameters"]
    assert parameters["FailuresClosedThreshold"]["Default"] == 1  # one request failed closed is one too many
    assert parameters["ShadowDifferencesThreshold"]["Default"] == 1
    # a healthy container checks its store every PermissionsCacheTtl (60 s); decisions fail closed
    # after PERMISSIONS_MAX_STALE (900 s): the alarm comes between, with time to act
    stale = parameters["StalePermissionsSeconds"]
    assert parameters["PermissionsCacheTtl"]["Default"] < stale["Default"] < 900
    assert stale["MinValue"] >= parameters["PermissionsCacheTtl"]["Default"]
    assert parameters["DependencyFailurePeriods"]["Default"] == 3
    # the version age alarm only for teams that publish on a schedule: off by default
    assert parameters["PermissionVersionMaxAge"]["Default"] == 0
    assert template["Resources"]["PermissionVersionAgeAlarm"]["Condition"] == "AlarmOnVersionAge"
    assert template["Conditions"]["AlarmOnVersionAge"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PermissionVersionMaxAge"}, "0"]}]}


#: What the dashboard's ``${}`` references stand for in these tests.
DASHBOARD_VALUES = {"MetricsNamespace": "NS", "AuthorizerFunction": "FN", "AuthorizerLogGroup": "LOGS",
                    "StalePermissionsSeconds": "600", "AWS::Region": "us-east-1"}


def _dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    names = set(re.findall(r"\$\{([^}]+)\}", dashboard["Properties"]["DashboardBody"]["Fn::Sub"]))
    known = set(template["Parameters"]) | set(template["Resources"]) | {"AWS::Region"}
    assert names <= known and names == set(DASHBOARD_VALUES)
    return template_dashboard(template, DASHBOARD_VALUES)


def test_the_dashboard_graphs_the_published_metrics(template):
    body = _dashboard_body(template)
    graphed: dict[str, set[str]] = {}
    for title, namespace, name, dimensions, options in dashboard_metrics(body):
        assert namespace == "NS" and dimensions["FunctionName"] == "FN", title
        assert metric_problems(name, dimensions) == [], title
        widget_stat = next(w["properties"].get("stat") for w in body["widgets"] if w["properties"]["title"] == title)
        graphed.setdefault(name, set()).add(options.get("stat") or widget_stat)
        if name == "Decisions":
            graphed.setdefault("decision", set()).add(dimensions["decision"])
    assert graphed.pop("decision") == DECISIONS  # decisions by outcome
    assert graphed == {
        "Decisions": {"Sum"},
        "DecisionLatency": {"p50", "p99"},
        "ShadowDifferences": {"Sum"},
        "StoreFailures": {"Sum"},
        "JwksFailures": {"Sum"},
        "PermissionsRefreshAge": {"Maximum"},
        "PermissionVersionAge": {"Maximum"},
        "JwksRefreshAge": {"Maximum"},
    }
    # refusals by reason: a search over the published [FunctionName, decision, reason] set
    (search,) = dashboard_searches(body)
    namespace, dimension_names, terms = search
    assert namespace == "NS" and frozenset(dimension_names) in PUBLISHED_METRICS["Decisions"][1]
    assert 'MetricName="Decisions"' in terms and 'FunctionName="FN"' in terms
    assert all(w["properties"]["region"] == "us-east-1" for w in body["widgets"])
    (log,) = [w for w in body["widgets"] if w["type"] == "log"]
    assert log["properties"]["query"].startswith("SOURCE 'LOGS' |")
    assert "filter event = 'shadow_diff'" in log["properties"]["query"]
    log_group = template["Resources"]["AuthorizerLogGroup"]["Properties"]["LogGroupName"]
    assert log_group == {"Fn::Sub": "/aws/lambda/${AuthorizerFunction}"}
