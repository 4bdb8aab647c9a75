"""The construct's dashboard and alarms on the metrics the authorizer writes (CloudWatch EMF).

The same alarms, thresholds and widgets as ``template.yaml`` (``tests/integration/test_cdk.py``
compares them). Every metric is read with ``FunctionName`` = the function's name and the
dimension set the authorizer publishes it under: CloudWatch files an EMF data point under
exactly the dimensions its directive names, so an alarm on any other combination would
never see one. Missing data means "nothing happened" (no decision, no failure line), so
every alarm treats it as not breaching.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from policy_engine.errors import ConfigurationError
from policy_engine.metrics import DEFAULT_NAMESPACE

__all__ = ["DEFAULT_METRICS_NAMESPACE", "AlarmThresholds", "Monitoring"]

#: ``METRICS_NAMESPACE``'s default: where the authorizer writes unless told otherwise.
DEFAULT_METRICS_NAMESPACE = DEFAULT_NAMESPACE
#: Every alarm and graph aggregates over five minutes.
PERIOD = Duration.minutes(5)
#: What a healthy container's ``PermissionsRefreshAge`` stays under (the default
#: ``PERMISSIONS_CACHE_TTL``); a lower threshold would alarm on health.
MIN_STALE_PERMISSIONS_SECONDS = 60
#: A day of five-minute periods: CloudWatch evaluates at most 24 hours for such a period.
MAX_DEPENDENCY_FAILURE_PERIODS = 288


def _seconds(value: int) -> Duration:
    return Duration.seconds(value)


@dataclass(frozen=True, kw_only=True)
class AlarmThresholds:
    """When each alarm goes off: ``template.yaml``'s parameters of the same meaning and defaults.

    Raises:
        ConfigurationError: a threshold is out of range (``variable`` is ``alarm_thresholds``).
    """

    #: Error decisions (500, failed closed) in five minutes (``FailuresClosedThreshold``).
    failures_closed: int = 1
    #: ``shadow_diff`` lines in five minutes (``ShadowDifferencesThreshold``).
    shadow_differences: int = 1
    #: ``PermissionsRefreshAge`` above which the permissions are stale (``StalePermissionsSeconds``):
    #: above ``PERMISSIONS_CACHE_TTL``, below ``PERMISSIONS_MAX_STALE`` (900 s by default).
    stale_permissions: Duration = field(default_factory=lambda: _seconds(600))
    #: ``PermissionVersionAge`` that raises an alarm, for teams that publish on a schedule;
    #: ``None`` (default): no such alarm (``PermissionVersionMaxAge`` 0).
    permission_version_age: Duration | None = None
    #: Consecutive five-minute periods with store or JWKS failures (``DependencyFailurePeriods``).
    dependency_failure_periods: int = 3

    def __post_init__(self) -> None:
        for name in ("failures_closed", "shadow_differences"):
            if getattr(self, name) < 1:
                raise ConfigurationError("alarm_thresholds", f"{name} must be at least 1")
        if not 1 <= self.dependency_failure_periods <= MAX_DEPENDENCY_FAILURE_PERIODS:
            raise ConfigurationError("alarm_thresholds", "dependency_failure_periods must be from 1 to "
                                     f"{MAX_DEPENDENCY_FAILURE_PERIODS} (a day of five-minute periods)")
        for name in ("stale_permissions", "permission_version_age"):
            value: Duration | None = getattr(self, name)
            if value is not None and Token.is_unresolved(value):
                raise ConfigurationError("alarm_thresholds", f"{name} must be known at synth time")
        if self.stale_permissions.to_seconds() < MIN_STALE_PERMISSIONS_SECONDS:
            raise ConfigurationError("alarm_thresholds", f"stale_permissions must be at least "
                                     f"{MIN_STALE_PERMISSIONS_SECONDS} s: a healthy container checks its store "
                                     "once per PERMISSIONS_CACHE_TTL")
        if self.permission_version_age is not None and self.permission_version_age.to_seconds() <= 0:
            raise ConfigurationError("alarm_thresholds", "permission_version_age must be positive (None: no alarm)")


class Monitoring:
    """The metrics of one authorizer function, its alarms and its dashboard."""

    def __init__(
        self,
        scope: Construct,
        *,
        function: lambda_.IFunction,
        log_group: logs.ILogGroup,
        namespace: str,
        thresholds: AlarmThresholds,
        topic: sns.ITopic | None,
        alarms: bool,
        dashboard: bool,
    ) -> None:
        self.namespace = namespace
        self._function_name = function.function_name
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        if alarms:
            self._add_alarms(scope, thresholds, topic)
        self.dashboard = self._dashboard(scope, log_group, thresholds) if dashboard else None

    def metric(self, name: str, statistic: str, label: str | None = None, **dimensions: str) -> cloudwatch.Metric:
        """The authorizer's metric ``name`` for this function, with ``dimensions`` besides ``FunctionName``."""
        return cloudwatch.Metric(namespace=self.namespace, metric_name=name, statistic=statistic, period=PERIOD,
                                 dimensions_map={"FunctionName": self._function_name, **dimensions}, label=label)

    def _add_alarms(self, scope: Construct, limits: AlarmThresholds, topic: sns.ITopic | None) -> None:
        at_least = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        wanted: list[tuple[str, cloudwatch.Metric, float, cloudwatch.ComparisonOperator, int, str]] = [
            ("FailuresClosed", self.metric("Decisions", "Sum", decision="Error"), limits.failures_closed, at_least, 1,
             "policy-engine answered 500 (failed closed: keys, introspection, store or an internal error); "
             "callers are refused."),
            ("ShadowDifferences", self.metric("ShadowDifferences", "Sum"), limits.shadow_differences, at_least, 1,
             "A published permission candidate decides some real requests otherwise than the live version "
             "(shadow_diff lines). Read them before promoting."),
            ("StalePermissions", self.metric("PermissionsRefreshAge", "Maximum"),
             limits.stale_permissions.to_seconds(), above, 1,
             "A container has not reached its permission store for too long: it decides with its last good "
             "mappings and fails closed once PERMISSIONS_MAX_STALE passes."),
        ]
        if limits.permission_version_age is not None:
            wanted.append(("PermissionVersionAge", self.metric("PermissionVersionAge", "Maximum"),
                           limits.permission_version_age.to_seconds(), above, 1,
                           "The permission version a container decides with was published too long ago: the "
                           "scheduled publish did not happen, or a container did not pick it up."))
        periods = limits.dependency_failure_periods
        wanted += [
            ("StoreFailures", self.metric("StoreFailures", "Sum"), 1, at_least, periods,
             f"Reading the permission store has failed in each of the last {periods} five-minute periods."),
            ("JwksFailures", self.metric("JwksFailures", "Sum"), 1, at_least, periods,
             f"Fetching an issuer's JWKS has failed in each of the last {periods} five-minute periods."),
        ]
        for name, metric, threshold, comparison, evaluation_periods, description in wanted:
            alarm = cloudwatch.Alarm(
                scope, f"{name}Alarm", metric=metric, threshold=threshold, comparison_operator=comparison,
                evaluation_periods=evaluation_periods, datapoints_to_alarm=evaluation_periods,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{description} See \"{name}\" on the operations page of the docs.")
            if topic is not None:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
                alarm.add_ok_action(cloudwatch_actions.SnsAction(topic))
            self.alarms[name] = alarm

    def _dashboard(self, scope: Construct, log_group: logs.ILogGroup, limits: AlarmThresholds) -> cloudwatch.Dashboard:
        def graph(title: str, metrics: list[cloudwatch.IMetric], *, stacked: bool = False,
                  right: list[cloudwatch.IMetric] | None = None,
                  annotations: list[cloudwatch.HorizontalAnnotation] | None = None) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=metrics, right=right, stacked=stacked, width=12, height=6,
                                          period=PERIOD, left_annotations=annotations)

        refusals = cloudwatch.MathExpression(
            expression=(f"SEARCH('{{\"{self.namespace}\",FunctionName,decision,reason}} "
                        f"FunctionName=\"{self._function_name}\" MetricName=\"Decisions\" NOT decision=\"Allow\"', "
                        f"'Sum', {int(PERIOD.to_seconds())})"),
            using_metrics={}, label="", period=PERIOD)
        widgets: list[list[cloudwatch.IWidget]] = [
            [graph("Decisions by outcome", [self.metric("Decisions", "Sum", label, decision=decision)
                                            for decision, label in (("Allow", "Allow"), ("Deny", "Deny"),
                                                                    ("Unauthorized", "Unauthorized (401)"),
                                                                    ("Error", "Error (500, failed closed)"))],
                   stacked=True),
             graph("Decision latency (ms)", [self.metric("DecisionLatency", "p50", "p50"),
                                             self.metric("DecisionLatency", "p99", "p99")])],
            [graph("Refusals by reason", [refusals], stacked=True),
             graph("Shadow differences (candidate vs live)",
                   [self.metric("ShadowDifferences", "Sum", "shadow_diff lines")])],
            [graph("Store and JWKS failures", [self.metric("StoreFailures", "Sum", "permission store"),
                                               self.metric("JwksFailures", "Sum", "JWKS")]),
             graph("Ages (seconds, oldest container)",
                   [self.metric("PermissionsRefreshAge", "Maximum", "since the store was last reached"),
                    self.metric("JwksRefreshAge", "Maximum", "since the JWKS was last fetched")],
                   right=[self.metric("PermissionVersionAge", "Maximum", "since the live version was published")],
                   annotations=[cloudwatch.HorizontalAnnotation(value=limits.stale_permissions.to_seconds(),
                                                                label="StalePermissions alarm")])],
            [cloudwatch.LogQueryWidget(
                title="Latest shadow differences", log_group_names=[log_group.log_group_name], width=24, height=6,
                view=cloudwatch.LogQueryVisualizationType.TABLE,
                query_lines=["fields @timestamp, principal, coalesce(route, concat(verb, ' ', path)) as request, "
                             "live_outcome, candidate_outcome, live_version, candidate_version, gained_count, "
                             "lost_count",
                             "filter event = 'shadow_diff'", "sort @timestamp desc", "limit 50"])],
        ]
        return cloudwatch.Dashboard(scope, "Dashboard", start="-PT6H", widgets=widgets)
