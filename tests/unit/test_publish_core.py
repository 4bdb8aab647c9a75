"""The pure publish plan: smallest change, stable digest, readable diff; stores stay lazy."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import MappingKey, digest, keys_of, plan, record_of
from tests.conftest import API, ROOT

keys = st.builds(MappingKey, st.just(API), st.sampled_from(["dev", "prod", "*"]),
                 st.sampled_from(["GET", "POST", "*"]), st.sampled_from(["/a", "/b/*", "/"]),
                 st.sampled_from(["s:read", "s:write"]))


@given(st.frozensets(keys), st.frozensets(keys))
def test_plan_turns_current_into_desired_with_nothing_extra(current, desired):
    change = plan(current, desired)
    assert (current - set(change.removed)) | set(change.added) == desired
    assert not set(change.added) & current and set(change.removed) <= current
    assert change.unchanged == len(current & desired)
    assert change.empty == (current == desired)


@given(st.lists(keys, min_size=1))
def test_digest_is_order_free_and_equals_the_permission_set_version(found):
    assert digest(found) == digest(reversed(found))
    compiled = compile_records([record_of(k) for k in found], lambda path: "test")
    assert compiled.version == digest(found) and keys_of(compiled) == frozenset(found)


def test_diff_lines_put_the_removal_before_its_replacement():
    old = MappingKey(API, "dev", "DELETE", "/pets/*", "pets:admin")
    new = old._replace(needs="pets:write")
    assert plan({old}, {new}).lines() == ["- a1b2c3d4e5 dev DELETE /pets/* -> pets:admin",
                                          "+ a1b2c3d4e5 dev DELETE /pets/* -> pets:write"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_a_yaml_deployment_never_imports_boto3_and_the_publish_core_is_pure():
    loaded = _modules_after("from policy_engine.bootstrap import permission_source\n"
                            "permission_source('permissions')\nimport policy_engine.core.publish")
    assert not {"boto3", "botocore"} & loaded
    admin = ("policy_engine.admin.publish", "policy_engine.admin.cli", "policy_engine.admin.migrate")
    assert not any(m.startswith(admin) for m in loaded)
