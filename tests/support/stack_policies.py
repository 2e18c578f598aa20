"""template.yaml's IAM policies with concrete ARNs, as a deployed stack would hold them.

The SAM template is translated offline (``infra.template.sam_translate``) with the given parameters;
resources whose ``Condition`` is false are left out, and every ``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` and
``Fn::If`` in the rest is resolved against made-up physical names in one account and region, so the
policies can be evaluated (``tests.support.iam``) on the same ARNs that requests will carry.
The AWS managed policies SAM attaches are included by their documents (``MANAGED_POLICIES``); any other
managed policy, or an intrinsic this module cannot resolve, raises.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.template import IntrinsicResolver, load_template, sam_translate

REGION = "eu-west-1"
ACCOUNT = "123456789012"
PARTITION = "aws"
STACK = "reliquary-prod"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"  # the root key's; every other key gets its own

# The AWS managed policies SAM attaches (`Tracing: Active` adds X-Ray), as AWS publishes them.
MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    },
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AWSXrayWriteOnlyAccess",
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "Resource": ["*"],
            }
        ],
    },
    "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogGroups",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                    "logs:GetLogEvents",
                    "logs:FilterLogEvents",
                ],
                "Resource": "*",
            }
        ],
    },
}


class UnresolvableError(ValueError):
    """The template holds an intrinsic or a resource type this module does not resolve."""


@dataclass(frozen=True)
class _Resolver(IntrinsicResolver):
    template: Mapping[str, Any]
    parameters: Mapping[str, str]

    def types(self) -> dict[str, str]:
        return {lid: str(res["Type"]) for lid, res in self.template["Resources"].items()}

    def name(self, logical_id: str) -> str:
        """The name CloudFormation would give a resource: a state machine's own ``StateMachineName``, or
        stack, logical id and a random suffix (bucket names are lower case)."""
        properties = self.template["Resources"][logical_id].get("Properties", {})
        if (
            self.types().get(logical_id) == "AWS::StepFunctions::StateMachine"
            and "StateMachineName" in properties
        ):
            return str(self.resolve(properties["StateMachineName"]))
        name = f"{STACK}-{logical_id}-1A2B3C4D5E6F"
        return name.lower() if self.types().get(logical_id) == "AWS::S3::Bucket" else name

    def key_id(self, logical_id: str) -> str:
        return KEY_ID if logical_id == "RootKey" else str(uuid.uuid5(uuid.NAMESPACE_URL, logical_id))

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = self.types().get(name)
        if kind is None:
            raise UnresolvableError(f"nothing named {name} to refer to")
        if kind == "AWS::KMS::Key":
            return self.key_id(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name(name)}"
        if kind in ("AWS::StepFunctions::StateMachine", "AWS::Lambda::LayerVersion"):
            return self.attribute(name, "Arn")
        return self.name(name)

    def attribute(self, logical_id: str, attribute: str) -> str:  # noqa: PLR0911  (one answer per type)
        kind, name = self.types().get(logical_id), self.name(logical_id)
        base = f"arn:{PARTITION}"
        if (kind, attribute) == ("AWS::DynamoDB::Table", "Arn"):
            return f"{base}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        if (kind, attribute) == ("AWS::DynamoDB::Table", "StreamArn"):
            return f"{base}:dynamodb:{REGION}:{ACCOUNT}:table/{name}/stream/2026-01-01T00:00:00.000"
        if (kind, attribute) == ("AWS::S3::Bucket", "Arn"):
            return f"{base}:s3:::{name}"
        if (kind, attribute) == ("AWS::KMS::Key", "Arn"):
            return f"{base}:kms:{REGION}:{ACCOUNT}:key/{self.key_id(logical_id)}"
        if (kind, attribute) == ("AWS::Lambda::Function", "Arn"):
            return f"{base}:lambda:{REGION}:{ACCOUNT}:function:{name}"
        if (kind, attribute) == ("AWS::SQS::Queue", "Arn"):
            return f"{base}:sqs:{REGION}:{ACCOUNT}:{name}"
        if (kind, attribute) == ("AWS::Logs::LogGroup", "Arn"):
            return f"{base}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
        if (kind, attribute) == ("AWS::IAM::Role", "Arn"):
            return f"{base}:iam::{ACCOUNT}:role/{name}"
        if (kind, attribute) == ("AWS::StepFunctions::StateMachine", "Arn"):
            return f"{base}:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        raise UnresolvableError(f"cannot resolve {logical_id}.{attribute} ({kind})")

    def unresolvable(self, function: str) -> Exception:
        return UnresolvableError(f"cannot resolve {function} in a policy")


@dataclass(frozen=True)
class StackPolicies:
    """Every role's policy documents, and the resource policies, with concrete ARNs."""

    roles: Mapping[str, tuple[dict[str, Any], ...]]  # role logical id -> inline and managed policies
    resource_policies: Mapping[str, dict[str, Any]]  # resource ARN -> its policy (keys, buckets)
    arns: Mapping[str, str]  # logical id -> ARN (tables, buckets, keys, functions, queue, roles, machines)
    names: Mapping[str, str]  # logical id -> physical name (tables, buckets, functions)
    environments: Mapping[str, dict[str, str]]  # function logical id -> its environment, resolved

    def resource_policies_for(self, resource_arn: str) -> list[dict[str, Any]]:
        """The resource policies that apply to a request on ``resource_arn`` (a key, a bucket or one of
        its objects)."""
        return [
            policy
            for arn, policy in self.resource_policies.items()
            if resource_arn == arn or resource_arn.startswith(f"{arn}/")
        ]


@functools.cache
def stack_policies(**overrides: str) -> StackPolicies:
    """The policies of template.yaml's stack (prod stage; the template's defaults for the parameters not
    in ``overrides``), resolved once per test session and parameters."""
    template = load_template()
    defaults = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    parameters = {**defaults, "Stage": "prod", **overrides}
    translated = sam_translate(template, region=REGION, parameter_values=parameters)
    resolver = _Resolver(translated, parameters)
    translated["Resources"] = {
        lid: res
        for lid, res in translated["Resources"].items()
        if "Condition" not in res or resolver.condition(res["Condition"])
    }
    roles: dict[str, tuple[dict[str, Any], ...]] = {}
    resource_policies: dict[str, dict[str, Any]] = {}
    for logical_id, resource in translated["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            inline = [resolver.resolve(p["PolicyDocument"]) for p in properties.get("Policies", [])]
            managed = []
            for arn in resolver.resolve(properties.get("ManagedPolicyArns", [])):
                if arn not in MANAGED_POLICIES:
                    raise UnresolvableError(f"{logical_id} attaches an unknown managed policy {arn}")
                managed.append(MANAGED_POLICIES[arn])
            roles[logical_id] = (*inline, *managed)
        elif resource["Type"] == "AWS::KMS::Key":
            resource_policies[resolver.attribute(logical_id, "Arn")] = resolver.resolve(
                properties["KeyPolicy"]
            )
        elif resource["Type"] == "AWS::S3::BucketPolicy":
            bucket = resolver.resolve(properties["Bucket"])
            resource_policies[f"arn:{PARTITION}:s3:::{bucket}"] = resolver.resolve(
                properties["PolicyDocument"]
            )
    named_types = {
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::Lambda::Function",
        "AWS::SQS::Queue",
        "AWS::IAM::Role",
        "AWS::StepFunctions::StateMachine",
    }
    named = [lid for lid, res in translated["Resources"].items() if res["Type"] in named_types]
    return StackPolicies(
        roles=roles,
        resource_policies=resource_policies,
        arns={lid: resolver.attribute(lid, "Arn") for lid in named},
        names={lid: resolver.ref(lid) for lid in named},
        environments={
            lid: {
                k: str(v) for k, v in resolver.resolve(res["Properties"]["Environment"]["Variables"]).items()
            }
            for lid, res in translated["Resources"].items()
            if res["Type"] == "AWS::Lambda::Function" and "Environment" in res["Properties"]
        },
    )
