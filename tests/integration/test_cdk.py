"""The CDK construct: synthesised (no AWS account), checked property by property, then cfn-lint and checkov.

Every stack is synthesised once, in one ``App`` (module fixture): starting jsii's Node.js
process and loading aws-cdk-lib is most of the cost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as apigwv2_integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns

from policy_engine.admin.cdk import (
    BEARER_TOKEN_PATTERN,
    DEFAULT_IDENTITY_SOURCES,
    DEFAULT_METRICS_NAMESPACE,
    AlarmThresholds,
    AuthorizerType,
    PolicyEngineAuthorizer,
)
from policy_engine.errors import BundleError, ConfigurationError
from policy_engine.events import parse_identity_source
from policy_engine.settings import VARIABLES, Settings
from tests.integration.cfn import ROOT, TEMPLATE, load_template
from tests.integration.metrics_contract import (
    DECISIONS,
    DEFAULT_NAMESPACE,
    PUBLISHED_METRICS,
    dashboard_searches,
    graphed,
    metric_problems,
    parse_dashboard,
    template_dashboard,
)
from tests.support.tool_venv import tool

CFN_LINT = Path(sys.executable).parent / "cfn-lint"
CHECKOV_VENV = ROOT / ".cache" / "checkov-venv"
ISSUER = "https://issuer.example"
ENV_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c"
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/team-permissions"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0b6a7e4c-1d2f-4a5b-9c8d-7e6f5a4b3c2d"
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
TABLE_READS = {"dynamodb:GetItem", "dynamodb:BatchGetItem"}
DECLARED = {var.name for var in VARIABLES}
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:policy-engine-alarms"


@dataclass(frozen=True)
class Shape:
    name: str
    kind: AuthorizerType
    store: str  # "table" (created), "bucket" (imported), "existing-table" (imported, with a KMS key)
    options: tuple[tuple[str, Any], ...] = ()
    #: opaque tokens too: the client secret from Secrets Manager, the environment under a customer key
    introspection: bool = False
    #: "default" (dashboard and alarms as template.yaml's defaults), "tuned" (thresholds and a topic), "off"
    monitoring: str = "default"


SHAPES = [
    Shape("RestToken", AuthorizerType.REST_TOKEN, "table"),
    Shape("RestTokenBucket", AuthorizerType.REST_TOKEN, "bucket",
          (("authorizer_cache_ttl", 0), ("permissions_cache_ttl", 30)), monitoring="tuned"),
    Shape("RestRequest", AuthorizerType.REST_REQUEST, "existing-table", introspection=True),
    Shape("HttpIam", AuthorizerType.HTTP_IAM, "table"),
    Shape("HttpSimple", AuthorizerType.HTTP_SIMPLE, "table"),
    Shape("HttpSimpleBucket", AuthorizerType.HTTP_SIMPLE, "bucket",
          (("architecture", "arm64"), ("python_version", "3.13")), monitoring="off"),
]


@dataclass
class Synthesised:
    shape: Shape
    template: dict[str, Any]
    path: Path
    construct: PolicyEngineAuthorizer

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.template["Resources"].items() if r["Type"] == kind}

    def one(self, kind: str, prefix: str = "") -> tuple[str, dict[str, Any]]:
        found = [(n, r) for n, r in self.of_type(kind).items() if n.startswith(prefix)]
        assert len(found) == 1, (kind, prefix, [n for n, _ in found])
        return found[0]


#: The "tuned" shape's thresholds: every one differs from its default.
TUNED = AlarmThresholds(failures_closed=5, shadow_differences=20, stale_permissions=cdk.Duration.minutes(5),
                        permission_version_age=cdk.Duration.days(2), dependency_failure_periods=6)


def write_bundle(path: Path, files: dict[str, bytes] | None = None) -> Path:
    """A stand-in for ``policy-engine bundle``'s zip: what the construct checks, nothing more."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in (files or {"handler/app.py": b"def lambda_handler(event, context): ...\n"}).items():
            archive.writestr(name, data)
    return path


def _stack(app: cdk.App, shape: Shape, bundle: Path) -> PolicyEngineAuthorizer:
    stack = cdk.Stack(app, shape.name)
    options: dict[str, Any] = {}
    for key, value in shape.options:
        options[key] = cdk.Duration.seconds(value) if key.endswith("_ttl") else value
    if shape.store == "bucket":
        options["permissions_bucket"] = s3.Bucket.from_bucket_name(stack, "Permissions", "team-permissions")
    elif shape.store == "existing-table":
        options["permissions_table"] = dynamodb.Table.from_table_attributes(
            stack, "Permissions", table_arn=TABLE_ARN, encryption_key=kms.Key.from_key_arn(stack, "Key", KEY_ARN))
    if shape.introspection:
        options["environment_key"] = kms.Key.from_key_arn(stack, "EnvironmentKey", ENV_KEY_ARN)
        options["settings"] = {
            "INTROSPECTION_URL": "https://issuer.example/oauth2/introspect", "INTROSPECTION_CLIENT_ID": "pets-api",
            "INTROSPECTION_CLIENT_SECRET": cdk.SecretValue.secrets_manager("pets-introspection").unsafe_unwrap(),
        }
    if shape.monitoring == "tuned":
        options["alarm_topic"] = sns.Topic.from_topic_arn(stack, "Alarms", TOPIC_ARN)
        options["alarm_thresholds"] = TUNED
    elif shape.monitoring == "off":
        options.update(dashboard=False, alarms=False)
    authorizer = PolicyEngineAuthorizer(stack, "Authorizer", issuer=[ISSUER], audience="pets-api", bundle=bundle,
                                        authorizer_type=shape.kind, **options)
    # What a user writes: a route behind the authorizer (API Gateway binds authorizers to routes).
    backend = lambda_.Function(stack, "Backend", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                               code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"))
    if shape.kind.is_http:
        http = apigwv2.HttpApi(stack, "Api")
        http.add_routes(path="/pets/{petId}", methods=[apigwv2.HttpMethod.GET],
                        integration=apigwv2_integrations.HttpLambdaIntegration("Pets", backend),
                        authorizer=authorizer.http_authorizer)
    else:
        rest = apigateway.RestApi(stack, "Api")
        rest.root.add_resource("pets").add_method("GET", apigateway.LambdaIntegration(backend),
                                                  authorizer=authorizer.rest_authorizer)
    return authorizer


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(tmp_path_factory.mktemp("bundle") / "policy-engine-lambda.zip")


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory: pytest.TempPathFactory, bundle: Path) -> dict[str, Synthesised]:
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    constructs = {shape.name: (shape, _stack(app, shape, bundle)) for shape in SHAPES}
    assembly = app.synth()
    result = {}
    for name, (shape, construct) in constructs.items():
        path = Path(assembly.get_stack_by_name(name).template_full_path)
        result[name] = Synthesised(shape, json.loads(path.read_text()), path, construct)
    return result


@pytest.fixture(params=[shape.name for shape in SHAPES])
def shape(request: pytest.FixtureRequest, synthesised: dict[str, Synthesised]) -> Synthesised:
    return synthesised[request.param]


def _text(node: Any) -> str:
    """A CloudFormation value as text: pseudo parameters by name, other references as ``<Ref:X>``."""
    if isinstance(node, str):
        return node
    if "Fn::Join" in node:
        separator, parts = node["Fn::Join"]
        return separator.join(_text(part) for part in parts)
    if "Ref" in node:
        return {"AWS::Partition": "aws"}.get(node["Ref"], f"<Ref:{node['Ref']}>")
    if "Fn::GetAtt" in node:
        return f"<GetAtt:{'.'.join(node['Fn::GetAtt'])}>"
    if "Fn::Select" in node:
        return "<Select>"
    raise AssertionError(f"unexpected value {node!r}")


def _statements(synth: Synthesised) -> tuple[str, list[dict[str, Any]]]:
    name, role = synth.one("AWS::IAM::Role", "Authorizer")
    assert "ManagedPolicyArns" not in role["Properties"]  # no AWSLambdaBasicExecutionRole: it writes any log group
    return name, [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def test_the_role_may_only_read_its_store_and_write_its_own_log_group(shape: Synthesised):
    role_name, statements = _statements(shape)
    assert {s["Effect"] for s in statements} == {"Allow"}
    granted = {(action, _text(resource)) for s in statements for action in _actions(s)
               for resource in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])}
    log_group, _ = shape.one("AWS::Logs::LogGroup", "Authorizer")
    expected = {(action, f"<GetAtt:{log_group}.Arn>") for action in LOG_ACTIONS}
    if shape.shape.store == "table":
        table, _ = shape.one("AWS::DynamoDB::Table", "Authorizer")
        expected |= {(action, f"<GetAtt:{table}.Arn>") for action in TABLE_READS}
    elif shape.shape.store == "existing-table":
        expected |= {(action, TABLE_ARN) for action in TABLE_READS} | {("kms:Decrypt", KEY_ARN)}
    else:
        # the live snapshot and its candidate (a table's candidate is an item of the same table)
        expected |= {("s3:GetObject", "arn:aws:s3:::team-permissions/policy-engine/permissions.json"),
                     ("s3:GetObject", "arn:aws:s3:::team-permissions/policy-engine/permissions.json.candidate")}
    if shape.shape.introspection:
        expected |= {("kms:Decrypt", ENV_KEY_ARN)}
    assert granted == expected
    # nothing else grants the role anything
    assert not [p for p in shape.of_type("AWS::IAM::Policy").values()
                if {"Ref": role_name} in p["Properties"].get("Roles", [])]
    _, function = shape.one("AWS::Lambda::Function", "Authorizer")
    assert function["Properties"]["Role"] == {"Fn::GetAtt": [role_name, "Arn"]}
    assert function["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}


def test_the_environment_uses_the_declared_names_and_agrees_with_the_authorizer(shape: Synthesised):
    _, function = shape.one("AWS::Lambda::Function", "Authorizer")
    env = function["Properties"]["Environment"]["Variables"]
    assert set(env) <= DECLARED
    assert env["ISSUER"] == ISSUER and env["AUDIENCE"] == "pets-api"
    source = _text(env["PERMISSIONS_SOURCE"])
    if shape.shape.store == "table":
        table, _ = shape.one("AWS::DynamoDB::Table", "Authorizer")
        assert source == f"dynamodb://<Ref:{table}>"
    elif shape.shape.store == "existing-table":
        assert source == "dynamodb://team-permissions"
    else:
        assert source == "s3://team-permissions/policy-engine/permissions.json"
    # Only what differs from the declared defaults is set.
    assert env.get("PERMISSIONS_CACHE_TTL") == ("30" if shape.shape.name == "RestTokenBucket" else None)
    if shape.shape.introspection:
        # resolved by CloudFormation at deploy time: never in the template as text
        assert _text(env["INTROSPECTION_CLIENT_SECRET"]).startswith("{{resolve:secretsmanager:")
        assert function["Properties"]["KmsKeyArn"] == ENV_KEY_ARN
    # The function reads its environment as it will at a cold start ...
    settings = Settings.from_environ({**env, "PERMISSIONS_SOURCE": source})
    assert settings.simple_responses is (shape.shape.kind is AuthorizerType.HTTP_SIMPLE)
    # ... and its identity sources are exactly API Gateway's (TOKEN events carry the token itself).
    if shape.shape.kind is AuthorizerType.REST_TOKEN:
        assert "IDENTITY_SOURCE" not in env
    else:
        assert tuple(env["IDENTITY_SOURCE"].split(",")) == _authorizer_identity_sources(shape)
        assert settings.identity_source.per_route is (shape.shape.kind is not AuthorizerType.HTTP_IAM)


def _authorizer_identity_sources(shape: Synthesised) -> tuple[str, ...]:
    if shape.shape.kind.is_http:
        _, authorizer = shape.one("AWS::ApiGatewayV2::Authorizer")
        return tuple(authorizer["Properties"]["IdentitySource"])
    _, authorizer = shape.one("AWS::ApiGateway::Authorizer")
    return tuple(authorizer["Properties"]["IdentitySource"].split(","))


def test_the_authorizer_has_the_recommended_type_identity_sources_and_cache(shape: Synthesised):
    kind = shape.shape.kind
    ttl = 0 if shape.shape.name == "RestTokenBucket" else 300
    assert _authorizer_identity_sources(shape) == DEFAULT_IDENTITY_SOURCES[kind]
    function, _ = shape.one("AWS::Lambda::Function", "Authorizer")
    if kind.is_http:
        _, authorizer = shape.one("AWS::ApiGatewayV2::Authorizer")
        props = authorizer["Properties"]
        assert props["AuthorizerType"] == "REQUEST"
        assert props["AuthorizerResultTtlInSeconds"] == ttl
        if kind is AuthorizerType.HTTP_SIMPLE:
            assert (props["EnableSimpleResponses"], props["AuthorizerPayloadFormatVersion"]) == (True, "2.0")
            # a cached boolean must not serve another route
            assert parse_identity_source(tuple(props["IdentitySource"])).per_route
        else:
            assert not props.get("EnableSimpleResponses") and props["AuthorizerPayloadFormatVersion"] == "1.0"
    else:
        _, authorizer = shape.one("AWS::ApiGateway::Authorizer")
        props = authorizer["Properties"]
        assert props["Type"] == ("TOKEN" if kind is AuthorizerType.REST_TOKEN else "REQUEST")
        assert props["AuthorizerResultTtlInSeconds"] == ttl
        if kind is AuthorizerType.REST_TOKEN:
            assert props["IdentityValidationExpression"] == BEARER_TOKEN_PATTERN
    assert f"<GetAtt:{function}.Arn>" in _text(props["AuthorizerUri"])
    # API Gateway may invoke the function through this authorizer only
    invokers = [p["Properties"] for p in shape.of_type("AWS::Lambda::Permission").values()
                if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function, "Arn"]}]
    assert invokers and all(p["Principal"] == "apigateway.amazonaws.com" for p in invokers)
    assert all("/authorizers/" in _text(p["SourceArn"]) for p in invokers)


def test_the_function_runs_the_bundle_as_configured(shape: Synthesised):
    _, function = shape.one("AWS::Lambda::Function", "Authorizer")
    props = function["Properties"]
    arm = shape.shape.name == "HttpSimpleBucket"
    assert props["Handler"] == "handler.app.lambda_handler"
    assert (props["Runtime"], props["Architectures"]) == (("python3.13", ["arm64"]) if arm
                                                          else ("python3.12", ["x86_64"]))
    assert (props["MemorySize"], props["Timeout"]) == (512, 10)
    assert props["Code"]["S3Key"].endswith(".zip")
    _, log_group = shape.one("AWS::Logs::LogGroup", "Authorizer")
    assert log_group["Properties"]["RetentionInDays"] == 30
    assert log_group["DeletionPolicy"] == "Retain"


def test_a_created_table_is_on_demand_recoverable_protected_and_kept(synthesised: dict[str, Synthesised]):
    for name in ("RestToken", "HttpIam", "HttpSimple"):
        _, table = synthesised[name].one("AWS::DynamoDB::Table", "Authorizer")
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["DeletionProtectionEnabled"] is True
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
        assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                      {"AttributeName": "sk", "KeyType": "RANGE"}]
    for name in ("RestTokenBucket", "RestRequest", "HttpSimpleBucket"):
        assert not synthesised[name].of_type("AWS::DynamoDB::Table")  # an existing store: none created


def test_the_defaults_are_template_yamls(synthesised: dict[str, Synthesised]):
    sam = load_template()
    resources = sam["Resources"]
    sam_function = resources["AuthorizerFunction"]["Properties"]
    _, function = synthesised["RestToken"].one("AWS::Lambda::Function", "Authorizer")
    for key in ("Handler", "Runtime", "Architectures", "MemorySize", "Timeout"):
        assert function["Properties"][key] == sam_function[key], key
    _, log_group = synthesised["RestToken"].one("AWS::Logs::LogGroup", "Authorizer")
    retention = resources["AuthorizerLogGroup"]["Properties"]["RetentionInDays"]
    assert log_group["Properties"]["RetentionInDays"] == retention
    _, table = synthesised["RestToken"].one("AWS::DynamoDB::Table", "Authorizer")
    for key in ("KeySchema", "BillingMode", "PointInTimeRecoverySpecification", "DeletionProtectionEnabled"):
        assert table["Properties"][key] == resources["PermissionsTable"]["Properties"][key], key
    token = resources["RestApi"]["Properties"]["Auth"]["Authorizers"]["PolicyEngineTokenAuthorizer"]["Identity"]
    _, authorizer = synthesised["RestToken"].one("AWS::ApiGateway::Authorizer")
    assert authorizer["Properties"]["IdentityValidationExpression"] == token["ValidationExpression"]
    ttl = sam["Parameters"]["AuthorizerCacheTtl"]["Default"]
    assert authorizer["Properties"]["AuthorizerResultTtlInSeconds"] == ttl
    assert (sam["Parameters"]["PermissionsObjectKey"]["Default"]
            == "policy-engine/permissions.json"
            == _text(synthesised["RestTokenBucket"].one("AWS::Lambda::Function", "Authorizer")[1]
                     ["Properties"]["Environment"]["Variables"]["PERMISSIONS_SOURCE"]).split("/", 3)[3])


def test_the_synthesised_templates_pass_cfn_lint(synthesised: dict[str, Synthesised]):
    # W3005 (a DependsOn that a GetAtt already implies) is how aws-cdk-lib writes every
    # function with its role, the test's own backend included: redundant, not wrong.
    paths = [str(s.path) for s in synthesised.values()]
    result = subprocess.run([str(CFN_LINT), "--format", "parseable", *paths, "--ignore-checks", "W3005"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_cfn_lint_catches_a_broken_synthesised_template(synthesised: dict[str, Synthesised], tmp_path: Path):
    synth = synthesised["RestToken"]
    template = json.loads(synth.path.read_text())
    table, _ = synth.one("AWS::DynamoDB::Table", "Authorizer")
    template["Resources"][table]["Properties"]["BillingMode"] = "ON_DEMAND"
    (tmp_path / "broken.json").write_text(json.dumps(template))
    result = subprocess.run([str(CFN_LINT), "--format", "parseable", str(tmp_path / "broken.json"),
                             "--ignore-checks", "W3005"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0 and "E3030" in result.stdout


# ---- metrics: dashboard and alarms ------------------------------------------------------------------------------

def _sam_threshold(sam: dict[str, Any], value: Any) -> Any:
    return sam["Parameters"][value["Ref"]]["Default"] if isinstance(value, dict) else value


def _dimensions(props: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in props["Dimensions"]}


def _alarms(synth: Synthesised) -> dict[str, dict[str, Any]]:
    """The construct's alarms by name (``AuthorizerFailuresClosedAlarm1A2B3C4D`` is ``FailuresClosed``)."""
    found = {}
    for logical_id, alarm in synth.of_type("AWS::CloudWatch::Alarm").items():
        assert logical_id.startswith("Authorizer") and "Alarm" in logical_id, logical_id
        found[logical_id.removeprefix("Authorizer").rsplit("Alarm", 1)[0]] = alarm["Properties"]
    return found


def test_every_alarm_reads_a_metric_the_function_publishes(shape: Synthesised):
    function, _ = shape.one("AWS::Lambda::Function", "Authorizer")
    alarms = _alarms(shape)
    construct = shape.construct
    if shape.shape.monitoring == "off":
        assert alarms == {} and construct.alarms == {} and construct.failures_closed_alarm is None
        return
    names = {"FailuresClosed", "ShadowDifferences", "StalePermissions", "StoreFailures", "JwksFailures"}
    if shape.shape.monitoring == "tuned":
        names.add("PermissionVersionAge")
    assert set(alarms) == set(construct.alarms) == names
    assert construct.failures_closed_alarm is construct.alarms["FailuresClosed"]
    assert construct.stale_permissions_alarm is construct.alarms["StalePermissions"]
    assert construct.shadow_differences_alarm is construct.alarms["ShadowDifferences"]
    assert construct.metrics_namespace == DEFAULT_NAMESPACE
    for name, props in alarms.items():
        dimensions = _dimensions(props)
        assert props["Namespace"] == DEFAULT_NAMESPACE, name
        assert dimensions["FunctionName"] == {"Ref": function}, name  # the function's name: AWS_LAMBDA_FUNCTION_NAME
        assert metric_problems(props["MetricName"], dimensions) == [], name
        assert props["TreatMissingData"] == "notBreaching" and props["Period"] == 300, name
        assert "Unit" not in props, name
        if shape.shape.monitoring == "tuned":
            assert props["AlarmActions"] == props["OKActions"] == [TOPIC_ARN], name
        else:
            assert "AlarmActions" not in props and "OKActions" not in props, name


def test_the_alarms_are_template_yamls(synthesised: dict[str, Synthesised]):
    sam = load_template()
    sam_alarms = {name.removesuffix("Alarm"): alarm["Properties"]
                  for name, alarm in sam["Resources"].items() if alarm["Type"] == "AWS::CloudWatch::Alarm"}
    same = ("MetricName", "Statistic", "ComparisonOperator", "Period", "TreatMissingData")
    defaults = _alarms(synthesised["RestToken"])
    tuned = _alarms(synthesised["RestTokenBucket"])
    # the version age alarm is off by default in both (PermissionVersionMaxAge 0, no threshold)
    assert set(defaults) == set(sam_alarms) - {"PermissionVersionAge"} and set(tuned) == set(sam_alarms)
    assert _sam_threshold(sam, sam_alarms["PermissionVersionAge"]["Threshold"]) == 0
    for name, sam_props in sam_alarms.items():
        for key in same:
            assert tuned[name][key] == sam_props[key], (name, key)
        sam_dimensions = {k: v for k, v in _dimensions(sam_props).items() if k != "FunctionName"}
        assert {k: v for k, v in _dimensions(tuned[name]).items() if k != "FunctionName"} == sam_dimensions, name
        if name in defaults:
            assert defaults[name]["Threshold"] == _sam_threshold(sam, sam_props["Threshold"]), name
            assert defaults[name]["EvaluationPeriods"] == _sam_threshold(sam, sam_props["EvaluationPeriods"]), name
            assert defaults[name]["DatapointsToAlarm"] == _sam_threshold(sam, sam_props["DatapointsToAlarm"]), name
    # and the thresholds given reach the alarms
    assert {name: (props["Threshold"], props["EvaluationPeriods"]) for name, props in tuned.items()} == {
        "FailuresClosed": (5, 1), "ShadowDifferences": (20, 1), "StalePermissions": (300, 1),
        "PermissionVersionAge": (172800, 1), "StoreFailures": (1, 6), "JwksFailures": (1, 6)}


def _body(synth: Synthesised) -> dict[str, Any]:
    """The dashboard's body: the function as ``FN``, its log group as ``LOGS``, the region as us-east-1."""
    _, dashboard = synth.one("AWS::CloudWatch::Dashboard", "Authorizer")
    function, _ = synth.one("AWS::Lambda::Function", "Authorizer")
    log_group, _ = synth.one("AWS::Logs::LogGroup", "Authorizer")
    values = {function: "FN", log_group: "LOGS", "AWS::Region": "us-east-1"}
    separator, parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"]
    return parse_dashboard(separator.join(part if isinstance(part, str) else values[part["Ref"]] for part in parts))


def test_the_dashboard_is_template_yamls(synthesised: dict[str, Synthesised]):
    assert not synthesised["HttpSimpleBucket"].of_type("AWS::CloudWatch::Dashboard")
    assert synthesised["HttpSimpleBucket"].construct.dashboard is None
    sam = template_dashboard(load_template(), {
        "MetricsNamespace": DEFAULT_NAMESPACE, "AuthorizerFunction": "FN", "AuthorizerLogGroup": "LOGS",
        "StalePermissionsSeconds": "600", "AWS::Region": "us-east-1"})
    shown = graphed(sam)
    assert {name for _, name, _, _ in shown} == set(PUBLISHED_METRICS)
    assert {dict(d)["decision"] for _, name, d, _ in shown if name == "Decisions"} == DECISIONS
    for name in ("RestToken", "HttpIam"):
        body = _body(synthesised[name])
        assert graphed(body) == shown, name
        assert list(dashboard_searches(body)) == list(dashboard_searches(sam)), name
        for widget in body["widgets"]:
            assert widget["properties"]["region"] == "us-east-1"
        (log,) = [w for w in body["widgets"] if w["type"] == "log"]
        assert "SOURCE 'LOGS'" in log["properties"]["query"]
        assert "filter event = 'shadow_diff'" in log["properties"]["query"]
    # the stale-permissions line sits at the alarm's threshold
    ages = [w for w in _body(synthesised["RestTokenBucket"])["widgets"] if w["properties"]["title"].startswith("Ages")]
    assert ages[0]["properties"]["annotations"]["horizontal"][0]["value"] == 300
    assert synthesised["RestToken"].construct.dashboard is not None


@pytest.mark.parametrize("thresholds, words", [
    ({"failures_closed": 0}, "failures_closed must be at least 1"),
    ({"stale_permissions": cdk.Duration.seconds(30)}, "at least 60 s"),
    ({"dependency_failure_periods": 289}, "from 1 to 288"),
    ({"permission_version_age": cdk.Duration.seconds(0)}, "must be positive"),
])
def test_bad_alarm_thresholds_are_refused(thresholds: dict[str, Any], words: str):
    with pytest.raises(ConfigurationError, match=words) as caught:
        AlarmThresholds(**thresholds)
    assert caught.value.variable == "alarm_thresholds"


_NO_METRICS_SETTINGS = pytest.mark.skipif(
    not {"METRICS", "METRICS_NAMESPACE"} <= DECLARED,
    reason="METRICS and METRICS_NAMESPACE are declared by the runtime's settings (issue 18, helper R)")


@_NO_METRICS_SETTINGS
def test_the_default_namespace_is_the_runtimes():
    declared = {var.name: var for var in VARIABLES}
    assert declared["METRICS_NAMESPACE"].default == DEFAULT_METRICS_NAMESPACE == DEFAULT_NAMESPACE


@_NO_METRICS_SETTINGS
def test_a_namespace_given_in_settings_reaches_the_alarms_and_the_dashboard(tmp_path: Path):
    authorizer = _build(tmp_path, settings={"METRICS_NAMESPACE": "Team/Pets"}, authorizer_type=AuthorizerType.HTTP_IAM)
    assert authorizer.metrics_namespace == authorizer.environment["METRICS_NAMESPACE"] == "Team/Pets"
    template = assertions.Template.from_stack(cdk.Stack.of(authorizer)).to_json()
    of_type = {kind: [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]
               for kind in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard")}
    alarms, (dashboard,) = of_type["AWS::CloudWatch::Alarm"], of_type["AWS::CloudWatch::Dashboard"]
    assert alarms and {props["Namespace"] for props in alarms} == {"Team/Pets"}
    body = json.dumps(dashboard["DashboardBody"])
    assert "Team/Pets" in body and DEFAULT_NAMESPACE not in body


@_NO_METRICS_SETTINGS
def test_metrics_off_needs_the_dashboard_and_alarms_off(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="dashboard=False and alarms=False") as caught:
        _build(tmp_path, settings={"METRICS": "false"})
    assert caught.value.variable == "METRICS"
    quiet = _build(tmp_path / "quiet", settings={"METRICS": "false"}, dashboard=False, alarms=False)
    assert quiet.alarms == {} and quiet.dashboard is None


# ---- checkov ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkov() -> Path:
    """checkov in its own cached virtual environment: it pins boto3 and an old ``packaging``
    that would downgrade this project's test tools (pytest needs a newer ``packaging``)."""
    return tool(CHECKOV_VENV, "checkov", "checkov>=3.2")


def _without_skips(template: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(template))
    for resource in copy["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
    return copy


@pytest.fixture(scope="module")
def checkov_results(checkov: Path, synthesised: dict[str, Synthesised],
                    tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """checkov's failed and skipped checks per file, as (check id, Type.LogicalId): one run over every template."""
    folder = tmp_path_factory.mktemp("checkov")
    for name, synth in synthesised.items():
        shutil.copy(synth.path, folder / f"{name}.json")
    shutil.copy(TEMPLATE, folder / "template.yaml")
    (folder / "unjustified.json").write_text(json.dumps(_without_skips(synthesised["RestToken"].template)))
    # --skip-download: checkov asks a vendor API for guidelines otherwise (no network here, nor needed).
    done = subprocess.run([str(checkov), "--directory", str(folder), "--framework", "cloudformation",
                           "--skip-download", "--output", "json"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    results: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for key in ("failed_checks", "skipped_checks"):
        for check in report["results"].get(key, []):
            file = Path(check["file_path"]).name
            results.setdefault(file, {"failed_checks": [], "skipped_checks": []})[key].append(
                (check["check_id"], check["resource"]))
    return results


#: What the test's own sample API and backend fail (not the construct's): a user's API is theirs to harden.
SAMPLE_FINDINGS = {"AWS::Lambda::Function.Backend", "AWS::ApiGateway::Stage.", "AWS::ApiGatewayV2::Stage."}


def test_checkov_finds_nothing_unjustified_in_the_construct(checkov_results, synthesised: dict[str, Synthesised]):
    for name in synthesised:
        found = checkov_results.get(f"{name}.json", {"failed_checks": [], "skipped_checks": []})
        construct_failures = [(check, resource) for check, resource in found["failed_checks"]
                              if not resource.startswith(tuple(SAMPLE_FINDINGS))]
        assert construct_failures == [], name
        skipped = {resource.split(".")[1] for _, resource in found["skipped_checks"]}
        assert skipped and all(r.startswith("Authorizer") for r in skipped), name
    # every skip says why
    for synth in synthesised.values():
        for resource in synth.template["Resources"].values():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert skip["id"].startswith("CKV") and len(skip["comment"]) > 40, skip


def test_checkov_finds_nothing_unjustified_in_template_yaml(checkov_results):
    found = checkov_results["template.yaml"]
    assert found["failed_checks"] == []
    assert ("CKV_AWS_117", "AWS::Serverless::Function.AuthorizerFunction") in found["skipped_checks"]
    for resource in load_template()["Resources"].values():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV") and len(skip["comment"]) > 40, skip


def test_checkov_would_fail_without_the_justifications(checkov_results):
    failed = {check for check, resource in checkov_results["unjustified.json"]["failed_checks"]
              if resource.startswith(("AWS::Lambda::Function.Authorizer", "AWS::DynamoDB::Table.Authorizer",
                                      "AWS::Logs::LogGroup.Authorizer"))}
    assert {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_119", "CKV_AWS_158", "CKV_AWS_173"} <= failed


# ---- refusals: each fails at synth time, naming the option or variable -----------------------------------------

def _build(tmp_path: Path, bundle: Path | None = None, **options: Any) -> PolicyEngineAuthorizer:
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "cdk.out")), "Refused")
    options.setdefault("issuer", ISSUER)
    options.setdefault("audience", "pets-api")
    return PolicyEngineAuthorizer(stack, "Authorizer", bundle=bundle or write_bundle(tmp_path / "b.zip"), **options)


@pytest.mark.parametrize("options, variable, words", [
    ({"settings": {"SCOPE_CLAIM": "roles"}}, "SCOPE_CLAIM", "did you mean SCOPE_CLAIMS"),
    ({"settings": {"PERMISSIONS_SOURCE": "s3://b/k"}}, "PERMISSIONS_SOURCE", "set by the construct"),
    ({"settings": {"ISSUER": ISSUER}}, "ISSUER", "also given"),
    ({"settings": {"AWS_LAMBDA_FUNCTION_NAME": "mine"}}, "AWS_LAMBDA_FUNCTION_NAME", "reserved by Lambda"),
    ({"issuer": "http://issuer.example"}, "ISSUER", "https"),
    ({"settings": {"CLOCK_LEEWAY": "900"}}, "CLOCK_LEEWAY", "between"),
    ({"settings": {"INTROSPECTION_URL": "https://idp.example/introspect", "INTROSPECTION_CLIENT_ID": "rs",
                   "INTROSPECTION_CLIENT_SECRET": "s3cr3t"}}, "INTROSPECTION_CLIENT_SECRET", "secret store"),
    ({"authorizer_type": AuthorizerType.HTTP_SIMPLE, "identity_sources": ["$request.header.Authorization"]},
     "SIMPLE_RESPONSES", "per-route"),
    # still checked across variables when a secret is only a reference until deploy time
    ({"authorizer_type": AuthorizerType.HTTP_SIMPLE, "identity_sources": ["$request.header.Authorization"],
      "settings": {"INTROSPECTION_URL": "https://issuer.example/introspect", "INTROSPECTION_CLIENT_ID": "rs",
                   "INTROSPECTION_CLIENT_SECRET": cdk.SecretValue.secrets_manager("s").unsafe_unwrap()}},
     "SIMPLE_RESPONSES", "per-route"),
    ({"authorizer_type": AuthorizerType.HTTP_IAM, "identity_sources": ["method.request.header.Authorization"]},
     "identity_sources", "HTTP API"),
    ({"authorizer_type": AuthorizerType.REST_TOKEN, "identity_sources": ["method.request.querystring.token"]},
     "identity_sources", "one header"),
    ({"authorizer_cache_ttl": cdk.Duration.seconds(3601)}, "authorizer_cache_ttl", "3600"),
    ({"architecture": "aarch64"}, "architecture", "arm64"),
])
def test_bad_options_are_refused_at_synth(tmp_path: Path, options: dict[str, Any], variable: str, words: str):
    with pytest.raises(ConfigurationError) as caught:
        _build(tmp_path, **options)
    assert caught.value.variable == variable
    assert words in str(caught.value)


def test_one_store_only(tmp_path: Path):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "cdk.out")), "Both")
    with pytest.raises(ConfigurationError, match="choose one store"):
        PolicyEngineAuthorizer(stack, "Authorizer", issuer=ISSUER, audience="a",
                               bundle=write_bundle(tmp_path / "b.zip"),
                               permissions_bucket=s3.Bucket.from_bucket_name(stack, "B", "team-permissions"),
                               permissions_table=dynamodb.Table.from_table_name(stack, "T", "team-permissions"))


def test_the_wrong_authorizer_kind_is_named(tmp_path: Path):
    http = _build(tmp_path, authorizer_type=AuthorizerType.HTTP_IAM)
    with pytest.raises(ConfigurationError, match="use http_authorizer"):
        http.rest_authorizer  # noqa: B018


def _elf(machine: int) -> bytes:
    header = bytearray(64)
    header[:4], header[4], header[18:20] = b"\x7fELF", 2, machine.to_bytes(2, "little")
    return bytes(header)


@pytest.mark.parametrize("files, words", [
    (None, "no bundle"),
    ({"app.py": b""}, "has no handler/app.py"),
    ({"handler/app.py": b"", "cryptography/_rust.abi3.so": _elf(62)}, "another target than arm64"),
])
def test_a_bundle_that_cannot_run_is_refused(tmp_path: Path, files: dict[str, bytes] | None, words: str):
    bundle = tmp_path / "missing.zip" if files is None else write_bundle(tmp_path / "bundle.zip", files)
    with pytest.raises(BundleError, match=words):
        _build(tmp_path, bundle=bundle, architecture="arm64")
