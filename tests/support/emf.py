"""A checker of CloudWatch Embedded Metric Format documents, written from the specification:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

``emf_problems(line)`` lists what keeps a log line from being an EMF document whose
metrics CloudWatch extracts; ``metrics_of(line)`` reads the metrics it carries.
"""

from __future__ import annotations

import json
from typing import Any

#: CloudWatch's units (MetricDatum.Unit): what a MetricDefinition's Unit may be.
UNITS = frozenset({
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits",
    "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second",
    "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
    "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
})
MAX_DIMENSIONS = 30  # keys in one DimensionSet
MAX_METRICS = 100  # MetricDefinitions in one directive
MAX_DIMENSION_VALUE = 1024


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def emf_problems(line: str) -> list[str]:
    """Everything in ``line`` (one log line) that the EMF specification does not allow; empty when valid."""
    try:
        root = json.loads(line)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    if not isinstance(root, dict):
        return ["the root is not an object"]
    meta = root.get("_aws")
    if not isinstance(meta, dict):
        return ["no _aws object at the root"]
    problems = []
    if set(meta) - {"Timestamp", "CloudWatchMetrics"}:
        problems.append(f"_aws has other members: {sorted(set(meta) - {'Timestamp', 'CloudWatchMetrics'})}")
    stamp = meta.get("Timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp < 0:
        problems.append(f"_aws.Timestamp is not a non-negative integer of milliseconds: {stamp!r}")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*problems, "_aws.CloudWatchMetrics is not a non-empty list of directives"]
    for n, directive in enumerate(directives):
        where = f"CloudWatchMetrics[{n}]"
        if not isinstance(directive, dict):
            problems.append(f"{where} is not an object")
            continue
        if set(directive) - {"Namespace", "Dimensions", "Metrics"}:
            problems.append(f"{where} has other members")
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 1024:
            problems.append(f"{where}.Namespace is not a string of 1 to 1024 characters")
        dimension_sets = directive.get("Dimensions")
        if not isinstance(dimension_sets, list):
            problems.append(f"{where}.Dimensions is not a list of dimension sets")
            dimension_sets = []
        for d, keys in enumerate(dimension_sets):
            if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
                problems.append(f"{where}.Dimensions[{d}] is not a list of strings")
                continue
            if len(keys) > MAX_DIMENSIONS:
                problems.append(f"{where}.Dimensions[{d}] has more than {MAX_DIMENSIONS} keys")
            for key in keys:
                value = root.get(key)
                if not isinstance(value, str):
                    problems.append(f"dimension {key!r} is not a string member of the root")
                elif not 1 <= len(value) <= MAX_DIMENSION_VALUE:
                    problems.append(f"dimension {key!r} is empty or longer than {MAX_DIMENSION_VALUE} characters")
        definitions = directive.get("Metrics")
        if not isinstance(definitions, list) or not 1 <= len(definitions) <= MAX_METRICS:
            problems.append(f"{where}.Metrics is not a list of 1 to {MAX_METRICS} definitions")
            definitions = []
        for m, definition in enumerate(definitions):
            if not isinstance(definition, dict) or not isinstance(definition.get("Name"), str):
                problems.append(f"{where}.Metrics[{m}] has no Name")
                continue
            if set(definition) - {"Name", "Unit", "StorageResolution"}:
                problems.append(f"{where}.Metrics[{m}] has other members")
            if "Unit" in definition and definition["Unit"] not in UNITS:
                problems.append(f"{where}.Metrics[{m}].Unit {definition['Unit']!r} is not a CloudWatch unit")
            if "StorageResolution" in definition and definition["StorageResolution"] not in (1, 60):
                problems.append(f"{where}.Metrics[{m}].StorageResolution is neither 1 nor 60")
            value = root.get(definition["Name"])
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > 100 or not all(_number(v) for v in values):
                problems.append(f"metric {definition['Name']!r} is not a number member of the root")
    return problems


def metrics_of(line: str) -> dict[str, tuple[Any, str | None, list[list[str]], str]]:
    """``{metric: (value, unit, dimension sets, namespace)}`` of a valid EMF line."""
    root = json.loads(line)
    out = {}
    for directive in root["_aws"]["CloudWatchMetrics"]:
        for definition in directive["Metrics"]:
            out[definition["Name"]] = (root[definition["Name"]], definition.get("Unit"), directive["Dimensions"],
                                       directive["Namespace"])
    return out
