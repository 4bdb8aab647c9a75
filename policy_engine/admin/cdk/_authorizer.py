"""``PolicyEngineAuthorizer``: the bundle as a Lambda authorizer, its store and its API Gateway authorizer.

It makes the choices ``template.yaml`` makes (read-only access to one table or one object
and its candidate, a retained, recoverable table, a 30-day log group, a bearer-token regex in
front of a TOKEN authorizer, a 300-second result cache, the same dashboard and alarms on the
function's metrics) and sets the function's environment from the one
declaration of each variable in ``policy_engine.settings``, checking the values there at
synth time, so a bad setting fails ``cdk synth`` instead of the first cold start.
"""

from __future__ import annotations

import difflib
import enum
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnResource, Duration, RemovalPolicy, Token
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as apigwv2_authorizers
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct, IConstruct

from policy_engine.admin.cdk._monitoring import DEFAULT_METRICS_NAMESPACE, AlarmThresholds, Monitoring
from policy_engine.admin.packaging import ARCHITECTURES, ENTRY_POINT, PYTHON_VERSIONS, default_output, native_problems
from policy_engine.errors import BundleError, ConfigurationError
from policy_engine.events import parse_identity_source
from policy_engine.settings import VARIABLES, Settings, number_text, read_variable

__all__ = [
    "BEARER_TOKEN_PATTERN",
    "DEFAULT_AUTHORIZER_CACHE_TTL",
    "DEFAULT_IDENTITY_SOURCES",
    "DEFAULT_METRICS_NAMESPACE",
    "DEFAULT_PERMISSIONS_OBJECT_KEY",
    "AlarmThresholds",
    "AuthorizerType",
    "PolicyEngineAuthorizer",
]

#: ``handler/app.py``'s entry point, as Lambda names it.
HANDLER = ENTRY_POINT.removesuffix(".py").replace("/", ".") + ".lambda_handler"
#: What API Gateway lets through to a TOKEN authorizer; anything else gets 401 without an
#: invocation (and without a bill). The same expression as ``template.yaml``'s.
BEARER_TOKEN_PATTERN = "^Bearer [-0-9A-Za-z._~+/]+=*$"
#: Seconds API Gateway reuses an answer (``template.yaml``'s ``AuthorizerCacheTtl``): see the
#: cache-TTL trade-off in the deployment docs. API Gateway allows 0 (off) to 3600.
DEFAULT_AUTHORIZER_CACHE_TTL = 300
MAX_AUTHORIZER_CACHE_TTL = 3600
DEFAULT_PERMISSIONS_OBJECT_KEY = "policy-engine/permissions.json"
DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_MONTH
DEFAULT_MEMORY_MB = 512
DEFAULT_TIMEOUT_SECONDS = 10


class AuthorizerType(enum.Enum):
    """Which API Gateway authorizer the function serves (one handler serves them all)."""

    #: REST API, ``type: TOKEN``: the token alone is the cache key; the answer is a policy
    #: covering every route the caller may use.
    REST_TOKEN = "rest-token"
    #: REST API, ``type: REQUEST``: keyed on the token, the method and the concrete path, so
    #: a policy too large for one answer can fall back to the requested route.
    REST_REQUEST = "rest-request"
    #: HTTP API Lambda authorizer answering with IAM policies (cached per token).
    HTTP_IAM = "http-iam"
    #: HTTP API Lambda authorizer answering ``{isAuthorized, context}`` for one route: its
    #: cache key must name the route, or a ``true`` would serve every route.
    HTTP_SIMPLE = "http-simple"

    @property
    def is_http(self) -> bool:
        return self in (AuthorizerType.HTTP_IAM, AuthorizerType.HTTP_SIMPLE)


#: The identity sources each type gets unless told otherwise (the docs' recommendations).
DEFAULT_IDENTITY_SOURCES: Mapping[AuthorizerType, tuple[str, ...]] = {
    AuthorizerType.REST_TOKEN: ("method.request.header.Authorization",),
    AuthorizerType.REST_REQUEST: ("method.request.header.Authorization", "context.httpMethod", "context.path"),
    AuthorizerType.HTTP_IAM: ("$request.header.Authorization",),
    AuthorizerType.HTTP_SIMPLE: ("$request.header.Authorization", "$context.routeKey"),
}

_ARCHITECTURES = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
_BY_ATTRIBUTE = {var.attribute: var for var in VARIABLES}
_BY_NAME = {var.name: var for var in VARIABLES}
#: Settings the construct derives from its store and authorizer: never taken from ``settings``,
#: so the function and API Gateway cannot disagree about them.
_DERIVED = ("permissions_source", "identity_source", "simple_responses")


def _name(attribute: str) -> str:
    """The environment variable ``Settings.<attribute>`` is declared with."""
    return _BY_ATTRIBUTE[attribute].name


class PolicyEngineAuthorizer(Construct):
    """The policy-engine Lambda authorizer with its permission store and API Gateway authorizer.

    Creates a role that may only read the permission store and write its own log group, the
    log group, the function (from the zip ``policy-engine bundle`` writes), the DynamoDB table
    (unless ``permissions_table`` or ``permissions_bucket`` names an existing store), and an
    authorizer of ``authorizer_type`` to attach to routes: ``rest_authorizer`` for
    ``apigateway.RestApi`` methods, ``http_authorizer`` for ``apigatewayv2.HttpApi`` routes.
    Unless turned off, also a CloudWatch dashboard and alarms on the metrics the function
    writes (``dashboard``, ``alarms``; the alarms notify ``alarm_topic`` when given).

    Every option is keyword-only; see ``docs/cdk.md`` for the table of them.

    Raises:
        ConfigurationError: an option or a setting is invalid (``.variable`` names it).
        BundleError: the bundle is missing, is not a policy-engine bundle, or holds native
            code for another architecture or Python.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        jwks_uri: str | Sequence[str] | None = None,
        authorizer_type: AuthorizerType = AuthorizerType.REST_TOKEN,
        identity_sources: Sequence[str] | None = None,
        authorizer_cache_ttl: Duration | None = None,
        token_validation_regex: str | None = BEARER_TOKEN_PATTERN,
        permissions_table: dynamodb.ITable | None = None,
        permissions_bucket: s3.IBucket | None = None,
        permissions_object_key: str = DEFAULT_PERMISSIONS_OBJECT_KEY,
        permissions_cache_ttl: Duration | None = None,
        settings: Mapping[str, str] | None = None,
        bundle: str | os.PathLike[str] | None = None,
        architecture: str = "x86_64",
        python_version: str = "3.12",
        memory_size: int = DEFAULT_MEMORY_MB,
        timeout: Duration | None = None,
        reserved_concurrent_executions: int | None = None,
        environment_key: kms.IKey | None = None,
        log_retention: logs.RetentionDays = DEFAULT_LOG_RETENTION,
        authorizer_name: str | None = None,
        dashboard: bool = True,
        alarms: bool = True,
        alarm_thresholds: AlarmThresholds | None = None,
        alarm_topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if architecture not in ARCHITECTURES:
            raise ConfigurationError("architecture", f"{architecture!r} is not one of {', '.join(ARCHITECTURES)}")
        if python_version not in PYTHON_VERSIONS:
            raise ConfigurationError("python_version", f"{python_version!r} is not one of {', '.join(PYTHON_VERSIONS)}")
        if permissions_table is not None and permissions_bucket is not None:
            raise ConfigurationError("permissions_bucket", "and permissions_table are both given; choose one store")
        self.authorizer_type = authorizer_type
        self.identity_sources = _identity_sources(authorizer_type, identity_sources)
        ttl = _cache_ttl(authorizer_cache_ttl)

        environment = _environment(
            settings or {},
            issuers=_listed(issuer), audiences=_listed(audience), jwks_uris=_listed(jwks_uri),
            permissions_cache_ttl=permissions_cache_ttl,
        )
        if authorizer_type is not AuthorizerType.REST_TOKEN:
            # TOKEN events carry the token itself; every other kind reads it where these say,
            # and learns from them what API Gateway's cache key covers.
            environment[_name("identity_source")] = ",".join(self.identity_sources)
        if authorizer_type is AuthorizerType.HTTP_SIMPLE:
            environment[_name("simple_responses")] = "true"

        # The store: read-only, and only this table or this one object and its candidate
        # (the item META/CANDIDATE of the same table; the object KEY.candidate).
        self.table: dynamodb.ITable | None = None
        self.bucket: s3.IBucket | None = permissions_bucket
        reads: list[iam.PolicyStatement] = []
        key: kms.IKey | None
        if permissions_bucket is not None:
            self.permissions_source = f"s3://{permissions_bucket.bucket_name}/{permissions_object_key}"
            reads.append(iam.PolicyStatement(
                sid="ReadPermissionSnapshot", actions=["s3:GetObject"],
                resources=[permissions_bucket.arn_for_objects(permissions_object_key),
                           permissions_bucket.arn_for_objects(f"{permissions_object_key}.candidate")]))
            key = permissions_bucket.encryption_key
        else:
            self.table = permissions_table if permissions_table is not None else self._create_table()
            self.permissions_source = f"dynamodb://{self.table.table_name}"
            # GetItem reads the version pointer, BatchGetItem the snapshot's parts; no Query,
            # no Scan, no write: a compromised authorizer cannot change who may call what.
            reads.append(iam.PolicyStatement(
                sid="ReadPermissionTable", actions=["dynamodb:GetItem", "dynamodb:BatchGetItem"],
                resources=[self.table.table_arn]))
            key = self.table.encryption_key
        if key is not None:
            reads.append(iam.PolicyStatement(sid="DecryptPermissions", actions=["kms:Decrypt"],
                                             resources=[key.key_arn]))
        if environment_key is not None:
            reads.append(iam.PolicyStatement(sid="DecryptEnvironment", actions=["kms:Decrypt"],
                                             resources=[environment_key.key_arn]))
        environment[_name("permissions_source")] = self.permissions_source
        _check_settings(environment)
        self.environment: dict[str, str] = environment

        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        _skip_checks(self.log_group.node.default_child, {
            "CKV_AWS_158": "Decision logs carry principals and routes, never tokens or secrets; CloudWatch Logs "
                           "encrypts them at rest by default.",
        })
        self.role = iam.Role(
            self, "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="policy-engine authorizer: reads its permission store, writes its own log group",
            # Inline, not attached later: the function never runs without its read rights, and
            # no AWSLambdaBasicExecutionRole (which may create and write any log group).
            inline_policies={
                "PolicyEngineAuthorizer": iam.PolicyDocument(statements=[
                    *reads,
                    iam.PolicyStatement(sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                        resources=[self.log_group.log_group_arn]),
                ]),
            },
        )

        code_path = Path(bundle) if bundle is not None else default_output(architecture, python_version)
        _check_bundle(code_path, architecture, python_version)
        self.function = lambda_.Function(
            self, "Function",
            description="policy-engine API Gateway authorizer",
            code=lambda_.Code.from_asset(str(code_path)),
            handler=HANDLER,
            runtime=lambda_.Runtime(f"python{python_version}", lambda_.RuntimeFamily.PYTHON),
            architecture=_ARCHITECTURES[architecture],
            memory_size=memory_size,
            timeout=timeout or Duration.seconds(DEFAULT_TIMEOUT_SECONDS),
            role=self.role,
            log_group=self.log_group,
            environment=environment,
            reserved_concurrent_executions=reserved_concurrent_executions,
            environment_encryption=environment_key,
        )
        skips = {
            "CKV_AWS_116": "An authorizer is invoked synchronously by API Gateway; a dead-letter queue only "
                           "receives failed asynchronous invocations.",
            "CKV_AWS_117": "The function must reach the identity provider's JWKS or introspection endpoint; a VPC "
                           "would add a NAT gateway and cold-start latency and protect nothing it holds.",
            "CKV_AWS_115": "A concurrency cap on the authorizer throttles every protected route (API Gateway answers "
                           "500); reserved_concurrent_executions sets one where a team wants it.",
            "CKV_AWS_173": "The environment holds issuer URLs, audiences and the store's name, no secrets "
                           "(Lambda encrypts it at rest with an AWS key); environment_key sets a customer key.",
        }
        if environment_key is not None:
            del skips["CKV_AWS_173"]
        _skip_checks(self.function.node.default_child, skips)

        self._rest: apigateway.IAuthorizer | None = None
        self._http: apigwv2.IHttpRouteAuthorizer | None = None
        name = authorizer_name or f"{construct_id}PolicyEngine"
        ttl_duration = Duration.seconds(ttl)
        if authorizer_type is AuthorizerType.REST_TOKEN:
            self._rest = apigateway.TokenAuthorizer(
                self, "TokenAuthorizer", handler=self.function, authorizer_name=name,
                identity_source=self.identity_sources[0], validation_regex=token_validation_regex,
                results_cache_ttl=ttl_duration)
        elif authorizer_type is AuthorizerType.REST_REQUEST:
            self._rest = apigateway.RequestAuthorizer(
                self, "RequestAuthorizer", handler=self.function, authorizer_name=name,
                identity_sources=list(self.identity_sources), results_cache_ttl=ttl_duration)
        else:
            simple = authorizer_type is AuthorizerType.HTTP_SIMPLE
            # aws-cdk-lib picks the payload format: 2.0 for simple responses, 1.0 for IAM ones.
            # The handler reads both (an IAM answer is the same policy either way).
            self._http = apigwv2_authorizers.HttpLambdaAuthorizer(
                name, self.function, authorizer_name=name, identity_source=list(self.identity_sources),
                response_types=[apigwv2_authorizers.HttpLambdaResponseType.SIMPLE if simple
                                else apigwv2_authorizers.HttpLambdaResponseType.IAM],
                results_cache_ttl=ttl_duration)
        self.authorizer_cache_ttl = ttl

        enabled, self.metrics_namespace = _metrics(environment)
        if not enabled and (dashboard or alarms):
            raise ConfigurationError(_METRICS, "is false: the function writes no metrics for the dashboard and the "
                                     "alarms to read; pass dashboard=False and alarms=False too")
        monitoring = Monitoring(self, function=self.function, log_group=self.log_group,
                                namespace=self.metrics_namespace, thresholds=alarm_thresholds or AlarmThresholds(),
                                topic=alarm_topic, alarms=alarms, dashboard=dashboard)
        #: Every alarm created, by name: FailuresClosed, ShadowDifferences, StalePermissions,
        #: PermissionVersionAge (only with a threshold for it), StoreFailures, JwksFailures.
        self.alarms: Mapping[str, cloudwatch.Alarm] = dict(monitoring.alarms)
        self.failures_closed_alarm = monitoring.alarms.get("FailuresClosed")
        self.shadow_differences_alarm = monitoring.alarms.get("ShadowDifferences")
        self.stale_permissions_alarm = monitoring.alarms.get("StalePermissions")
        self.permission_version_age_alarm = monitoring.alarms.get("PermissionVersionAge")
        self.store_failures_alarm = monitoring.alarms.get("StoreFailures")
        self.jwks_failures_alarm = monitoring.alarms.get("JwksFailures")
        self.dashboard: cloudwatch.Dashboard | None = monitoring.dashboard

    def _create_table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self, "PermissionsTable",
            # The layout of migrations/0001_create_table.py: string keys pk (HASH) and sk (RANGE).
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            deletion_protection=True,
            # Mappings decide who may call what: keep them when the stack goes away.
            removal_policy=RemovalPolicy.RETAIN,
        )
        _skip_checks(table.node.default_child, {
            "CKV_AWS_119": "Encrypted at rest with the AWS-owned key, as every DynamoDB table is; the items are "
                           "mappings (routes and grant names), not secrets. Pass permissions_table to bring a "
                           "table with your own key (the role then gets kms:Decrypt on it).",
        })
        return table

    @property
    def rest_authorizer(self) -> apigateway.IAuthorizer:
        """The authorizer for ``RestApi`` methods (``authorizer=`` of ``add_method``).

        Raises:
            ConfigurationError: the construct was made for an HTTP API.
        """
        if self._rest is None:
            raise ConfigurationError("authorizer_type", f"{self.authorizer_type.value} has no REST authorizer; "
                                     "use http_authorizer")
        return self._rest

    @property
    def http_authorizer(self) -> apigwv2.IHttpRouteAuthorizer:
        """The authorizer for ``HttpApi`` routes (``authorizer=`` of ``add_routes``); one HTTP API only.

        Raises:
            ConfigurationError: the construct was made for a REST API.
        """
        if self._http is None:
            raise ConfigurationError("authorizer_type", f"{self.authorizer_type.value} has no HTTP API authorizer; "
                                     "use rest_authorizer")
        return self._http


_METRICS = "METRICS"
_METRICS_NAMESPACE = "METRICS_NAMESPACE"


def _metrics(environment: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the function writes metrics, and under which namespace: its ``METRICS`` and
    ``METRICS_NAMESPACE``, given through ``settings`` (a value only CloudFormation knows counts as on)."""
    enabled = True
    flag = environment.get(_METRICS)
    if flag is not None and not Token.is_unresolved(flag):
        enabled = bool(read_variable(_BY_NAME[_METRICS], environment))
    namespace = environment.get(_METRICS_NAMESPACE, "").strip() or DEFAULT_METRICS_NAMESPACE
    return enabled, namespace


def _listed(value: str | Sequence[str] | None) -> str | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    return ",".join(v.strip() for v in values if v.strip()) or None


def _identity_sources(kind: AuthorizerType, given: Sequence[str] | None) -> tuple[str, ...]:
    entries = tuple(e.strip() for e in given) if given is not None else DEFAULT_IDENTITY_SOURCES[kind]
    parse_identity_source(entries, "identity_sources")  # a credential first, nothing API Gateway lacks
    http_spelling = [e for e in entries if e.startswith("$")]
    if kind.is_http and len(http_spelling) != len(entries):
        raise ConfigurationError("identity_sources", "an HTTP API writes identity sources as "
                                 "$request.header.NAME, $context.NAME, ...")
    if not kind.is_http and http_spelling:
        raise ConfigurationError("identity_sources", "a REST API writes identity sources as "
                                 "method.request.header.NAME, context.NAME, ...")
    if kind is AuthorizerType.REST_TOKEN and (len(entries) != 1 or not entries[0].startswith("method.request.header.")):
        raise ConfigurationError("identity_sources", "a TOKEN authorizer reads one header "
                                 "(method.request.header.NAME); use REST_REQUEST for more")
    return entries


def _cache_ttl(ttl: Duration | None) -> int:
    if ttl is None:
        return DEFAULT_AUTHORIZER_CACHE_TTL
    if Token.is_unresolved(ttl):
        raise ConfigurationError("authorizer_cache_ttl", "must be a number of seconds known at synth time")
    seconds = ttl.to_seconds()
    if not 0 <= seconds <= MAX_AUTHORIZER_CACHE_TTL or not float(seconds).is_integer():
        raise ConfigurationError("authorizer_cache_ttl", f"{seconds} s must be whole seconds from 0 (no cache) "
                                 f"to {MAX_AUTHORIZER_CACHE_TTL}")
    return int(seconds)


def _environment(settings: Mapping[str, str], **props: Any) -> dict[str, str]:
    """The function's variables: ``settings`` by their declared names, then the typed props."""
    known = {var.name: var for var in VARIABLES}
    environment: dict[str, str] = {}
    for name, value in settings.items():
        var = known.get(name)
        if var is None:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigurationError(name, f"is not a policy-engine setting{hint}")
        if var.attribute in _DERIVED:
            raise ConfigurationError(name, "is set by the construct from its store and authorizer type")
        if name.startswith("AWS_"):
            # Lambda reserves these names and sets them itself; a deploy that sets one fails.
            raise ConfigurationError(name, "is reserved by Lambda, which sets it; leave it out")
        if var.attribute in props and props[var.attribute] is not None:
            raise ConfigurationError(name, f"is also given as the {var.attribute!r} prop; give it once")
        if not isinstance(value, str):
            raise ConfigurationError(name, f"must be text, as the environment holds it (got {type(value).__name__})")
        if var.kind == "secret" and not Token.is_unresolved(value):
            # A literal would sit in the synthesised template (and in the code that wrote it).
            raise ConfigurationError(name, "must come from a secret store, not a literal: e.g. "
                                     "SecretValue.secrets_manager(NAME).unsafe_unwrap(); see docs/cdk.md")
        environment[name] = value
    for attribute, value in props.items():
        if value is None:
            continue  # unset: the function's declared default applies
        if isinstance(value, Duration):
            value = number_text(value.to_seconds())
        environment[_name(attribute)] = value
    return environment


def _check_settings(environment: Mapping[str, str]) -> None:
    """Read the variables as the function will, so a bad value fails at synth.

    Values only CloudFormation knows (a table name, a secret reference) are left to the
    function; when they are free text, the rest is still checked together (``from_environ``'s
    rules across variables), else one variable at a time.
    """
    declared = {var.name: var for var in VARIABLES}
    unresolved = {name for name, value in environment.items() if Token.is_unresolved(value)}
    free_text = {name for name in unresolved
                 if declared[name].kind == "secret"
                 or (declared[name].kind == "text" and not declared[name].urls and not declared[name].choices)}
    if unresolved <= free_text:
        Settings.from_environ({name: "resolved-at-deploy" if name in unresolved else value
                               for name, value in environment.items()})
        return
    for name, value in environment.items():
        if name not in unresolved:
            read_variable(declared[name], {name: value})


def _check_bundle(path: Path, architecture: str, python_version: str) -> None:
    """The zip holds the handler, and its native code fits the function's architecture and runtime."""
    if not path.is_file():
        raise BundleError(f"{path}: no bundle; build it with `policy-engine bundle --arch {architecture} "
                          f"--python {python_version}` (or pass bundle=)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            native = {n: archive.read(n) for n in names if n.endswith(".so") or ".so." in n}
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path}: not a readable zip ({exc})") from exc
    if ENTRY_POINT not in names:
        raise BundleError(f"{path}: has no {ENTRY_POINT}; is it a `policy-engine bundle` zip?")
    problems = native_problems(native, arch=architecture, python=python_version)
    if problems:
        raise BundleError(f"{path}: built for another target than {architecture}/python{python_version}: "
                          + "; ".join(problems[:3]))


def _skip_checks(resource: IConstruct | None, reasons: Mapping[str, str]) -> None:
    """Tell checkov why a check does not apply, on the resource itself (``Metadata.checkov.skip``)."""
    if not isinstance(resource, CfnResource):
        raise AssertionError(f"{resource!r} is not a CloudFormation resource")
    resource.add_metadata("checkov", {"skip": [{"id": check, "comment": why} for check, why in reasons.items()]})
