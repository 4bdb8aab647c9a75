"""CloudWatch metrics written as log lines: the Embedded Metric Format (EMF).

Specification: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

A log line that carries metrics has, at its root, one number member per metric, one
string member per dimension (``FunctionName``, and the line's own ``decision`` and
``reason`` where a dimension set names them), and ``_aws``: ``{"Timestamp": <epoch
milliseconds>, "CloudWatchMetrics": [directives]}``. CloudWatch Logs extracts the
metrics; no agent, API call or library is involved. This module owns the metric names,
their units and dimension sets, and the directive text; ``logs`` writes the lines.

    metric                  unit          dimension sets                                      line
    ----------------------  ------------  --------------------------------------------------  ----------------------
    Decisions (1)           Count         [FunctionName, decision], [.., decision, reason]    decision
    DecisionLatency         Milliseconds  [FunctionName]                                      decision
    ShadowDifferences (1)   Count         [FunctionName]                                      shadow_diff
    StoreFailures (1)       Count         [FunctionName]                                      permissions_reload_failed,
                                                                                              permissions_unavailable
    JwksFailures (1)        Count         [FunctionName]                                      jwks_refresh_failed,
                                                                                              jwks_prefetch_failed
    PermissionVersionAge    Seconds       [FunctionName]                                      health
    PermissionsRefreshAge   Seconds       [FunctionName]                                      health
    JwksRefreshAge          Seconds       [FunctionName]                                      health

The directive text of each set of metrics a line carries is built once (per
configuration, ``config``) and reused: only the timestamp changes from line to line.
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii as _quote

__all__ = [
    "DECISIONS",
    "DECISION_LATENCY",
    "DEFAULT_NAMESPACE",
    "FUNCTION_NAME",
    "JWKS_FAILURES",
    "JWKS_REFRESH_AGE",
    "LOCAL_FUNCTION_NAME",
    "METRICS",
    "PERMISSIONS_REFRESH_AGE",
    "PERMISSION_VERSION_AGE",
    "SHADOW_DIFFERENCES",
    "STORE_FAILURES",
    "Config",
    "config",
    "configure",
]

DECISIONS = "Decisions"
DECISION_LATENCY = "DecisionLatency"
SHADOW_DIFFERENCES = "ShadowDifferences"
STORE_FAILURES = "StoreFailures"
JWKS_FAILURES = "JwksFailures"
PERMISSION_VERSION_AGE = "PermissionVersionAge"
PERMISSIONS_REFRESH_AGE = "PermissionsRefreshAge"
JWKS_REFRESH_AGE = "JwksRefreshAge"

#: The dimension every metric has: the Lambda function's name.
FUNCTION_NAME = "FunctionName"
#: Where the metrics go unless ``METRICS_NAMESPACE`` says otherwise (its declared default).
DEFAULT_NAMESPACE = "PolicyEngine"
#: The ``FunctionName`` outside Lambda (``AWS_LAMBDA_FUNCTION_NAME``'s declared default).
LOCAL_FUNCTION_NAME = "local"

_BY_FUNCTION = ((FUNCTION_NAME,),)

#: Each metric's unit (CloudWatch's unit names) and dimension sets (root member names).
METRICS: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    DECISIONS: ("Count", ((FUNCTION_NAME, "decision"), (FUNCTION_NAME, "decision", "reason"))),
    DECISION_LATENCY: ("Milliseconds", _BY_FUNCTION),
    SHADOW_DIFFERENCES: ("Count", _BY_FUNCTION),
    STORE_FAILURES: ("Count", _BY_FUNCTION),
    JWKS_FAILURES: ("Count", _BY_FUNCTION),
    PERMISSION_VERSION_AGE: ("Seconds", _BY_FUNCTION),
    PERMISSIONS_REFRESH_AGE: ("Seconds", _BY_FUNCTION),
    JWKS_REFRESH_AGE: ("Seconds", _BY_FUNCTION),
}


class Config:
    """What the metrics of this process look like: ``enabled`` (``METRICS``), the
    ``FunctionName`` member as JSON text (``function``), and the ``_aws`` text of each set
    of metrics (``tail``), the decision line's built in advance."""

    __slots__ = ("decision_tail", "enabled", "function", "namespace", "tails")

    def __init__(self, enabled: bool, namespace: str, function: str) -> None:
        self.enabled = enabled
        self.namespace = namespace
        self.function = f'"{FUNCTION_NAME}":{_quote(function)}'
        # Per tuple of metric names: the text of _aws after its Timestamp.
        self.tails: dict[tuple[str, ...], str] = {}
        self.decision_tail = self.tail((DECISIONS, DECISION_LATENCY))

    def tail(self, names: tuple[str, ...]) -> str:
        """The text of ``_aws`` that follows its ``Timestamp`` value, for a line carrying
        the metrics ``names`` (each a key of ``METRICS``): ``,"CloudWatchMetrics":[...]}``.
        Metrics that share their dimension sets share one directive.

        Raises:
            KeyError: a name is not a known metric.
        """
        text = self.tails.get(names)
        if text is None:
            groups: dict[tuple[tuple[str, ...], ...], list[str]] = {}
            for name in names:
                groups.setdefault(METRICS[name][1], []).append(name)
            directives = []
            for dimension_sets, members in groups.items():
                dimensions = ",".join("[" + ",".join(map(_quote, group)) + "]" for group in dimension_sets)
                metrics = ",".join(f'{{"Name":{_quote(name)},"Unit":{_quote(METRICS[name][0])}}}' for name in members)
                directives.append(f'{{"Namespace":{_quote(self.namespace)},"Dimensions":[{dimensions}],'
                                  f'"Metrics":[{metrics}]}}')
            text = self.tails[names] = ',"CloudWatchMetrics":[' + ",".join(directives) + "]}"
        return text


#: The configuration in force. Every process that logs has one, configured or not (tests,
#: local tools): the declared defaults of METRICS and METRICS_NAMESPACE, FunctionName "local".
config = Config(True, DEFAULT_NAMESPACE, LOCAL_FUNCTION_NAME)


def configure(*, enabled: bool, namespace: str, function_name: str) -> None:
    """Set ``METRICS``, ``METRICS_NAMESPACE`` and the ``FunctionName`` dimension for this
    process (``bootstrap`` calls it with the settings; the last call wins)."""
    global config
    config = Config(enabled, namespace, function_name)
