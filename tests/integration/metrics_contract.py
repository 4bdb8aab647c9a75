"""The metrics the authorizer publishes, as the deployment tests expect them: one list for both templates.

Read from the runtime's declaration (``policy_engine.metrics``, the Embedded Metric Format). The SAM
template's and the CDK construct's alarms and dashboards may only read these names, with
one of these dimension sets: CloudWatch files a data point under exactly the dimension set
its EMF directive names, so an alarm on any other combination would stay without data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from policy_engine.metrics import METRICS
from policy_engine.settings import variable

#: The namespace the authorizer writes to unless ``METRICS_NAMESPACE`` says otherwise.
DEFAULT_NAMESPACE = variable("METRICS_NAMESPACE").default
#: The values of the ``decision`` dimension.
DECISIONS = frozenset({"Allow", "Deny", "Unauthorized", "Error"})

#: metric name -> (unit, the dimension sets it is published with): the runtime's own
#: declaration (``policy_engine.metrics.METRICS``), so a template can only read what is written.
PUBLISHED_METRICS: Mapping[str, tuple[str, tuple[frozenset[str], ...]]] = {
    name: (unit, tuple(frozenset(dimensions) for dimensions in sets)) for name, (unit, sets) in METRICS.items()
}


def metric_problems(name: str, dimensions: Mapping[str, Any]) -> list[str]:
    """Why the authorizer would never publish ``name`` with ``dimensions`` (empty: it does)."""
    if name not in PUBLISHED_METRICS:
        return [f"{name}: not a metric the authorizer publishes"]
    _, sets = PUBLISHED_METRICS[name]
    problems = []
    if frozenset(dimensions) not in sets:
        problems.append(f"{name}: dimensions {sorted(dimensions)} are not one of "
                        f"{[sorted(s) for s in sets]}")
    decision = dimensions.get("decision")
    if isinstance(decision, str) and decision not in DECISIONS:
        problems.append(f"{name}: decision={decision!r} is not one of {sorted(DECISIONS)}")
    return problems


def dashboard_metrics(body: Mapping[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(widget title, namespace, metric name, dimensions, rendering options) of each metric a
    dashboard body graphs, in CloudWatch's array form ``[NS, NAME, DIM, VALUE, ..., {options}]``."""
    for widget in body["widgets"]:
        properties = widget["properties"]
        for row in properties.get("metrics", []):
            options = row[-1] if row and isinstance(row[-1], dict) else {}
            values = row[:-1] if options else row
            if "expression" in options:
                continue  # a search or math expression: see dashboard_searches
            namespace, name, *pairs = values
            assert len(pairs) % 2 == 0, row
            yield properties.get("title", ""), namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)), options


_SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\}(?P<terms>[^']*)'")


def dashboard_searches(body: Mapping[str, Any]) -> Iterator[tuple[str, list[str], str]]:
    """(namespace, dimension names, search terms) of each ``SEARCH`` expression a dashboard graphs."""
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            for item in row:
                if isinstance(item, dict) and "expression" in item:
                    match = _SEARCH.search(item["expression"])
                    assert match, item["expression"]
                    namespace, *names = [part.strip().strip('"') for part in match["schema"].split(",")]
                    yield namespace, names, match["terms"]


def parse_dashboard(text: str) -> dict[str, Any]:
    body = json.loads(text)
    assert isinstance(body, dict) and isinstance(body.get("widgets"), list)
    return body


def graphed(body: Mapping[str, Any]) -> set[tuple[str, str, frozenset[tuple[str, Any]], str]]:
    """What a dashboard shows, however it is written: (widget title, metric name, dimensions besides
    ``FunctionName``, statistic) of each metric, the widget's statistic where the metric names none."""
    stats = {w["properties"].get("title", ""): w["properties"].get("stat") for w in body["widgets"]}
    return {(title, name, frozenset((k, v) for k, v in dimensions.items() if k != "FunctionName"),
             options.get("stat") or stats[title])
            for title, _, name, dimensions, options in dashboard_metrics(body)}


def template_dashboard(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """``template.yaml``'s dashboard body, its ``${}`` references replaced by ``values``."""
    (dashboard,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(text, str)
    return parse_dashboard(re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text))
