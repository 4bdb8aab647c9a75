"""Print the CloudFormation that AWS SAM's own translator makes of ``template.yaml``.

Run by the SAM CLI's interpreter (``.cache/sam-venv``), which has ``samtranslator``:
``python sam_transform.py TEMPLATE '{"Param": "value", ...}'``. The local ``CodeUri``
becomes an S3 URI first, as ``sam deploy`` does after uploading the zip; no AWS call is
made (inline policies need no managed-policy lookup).
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class _NoManagedPolicies:
    def load(self):
        return {}


def main():
    with open(sys.argv[1]) as handle:
        template = yaml_parse(handle.read())
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if isinstance(properties.get("CodeUri"), str) and properties["CodeUri"].endswith(".zip"):
            properties["CodeUri"] = "s3://artifact-bucket/authorizer.zip"
    print(json.dumps(transform(template, json.loads(sys.argv[2]), _NoManagedPolicies())))


if __name__ == "__main__":
    main()
