"""template.yaml read by code: one definition for the cloud, the local runtime and the tests.

Tables are created from the key schemas declared in ``template.yaml`` (``create_tables``), function
environments are read from it (``function_environment``), and the SAM template can be translated to
plain CloudFormation offline (``sam_translate``), so tests cannot drift from the infrastructure.
"""

from __future__ import annotations

import copy
import functools
import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

TABLE_TYPE = "AWS::DynamoDB::Table"
BUCKET_TYPE = "AWS::S3::Bucket"
FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})

# CloudFormation short-form tags and their long forms ("Ref" and "Condition" have no "Fn::" prefix).
_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "GetAtt",
            "Sub",
            "If",
            "Equals",
            "Join",
            "Select",
            "Split",
            "FindInMap",
            "Not",
            "And",
            "Or",
            "ImportValue",
            "GetAZs",
            "Base64",
            "Cidr",
            "Transform",
            "Length",
            "ToJsonString",
        )
    },
}
_INTRINSIC_KEYS = frozenset(_SHORT_TAGS.values())

# Where SAM expects uploaded artifacts (`sam package` replaces local paths by S3 locations).
_ARTIFACT_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::HttpApi": "DefinitionUri",
}
_FAKE_ARTIFACT_BUCKET = "reliquary-offline-artifacts"

# Attributes boto3's CreateTable accepts on an index (CloudFormation allows more, e.g. contributor insights).
_GSI_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")
_LSI_KEYS = ("IndexName", "KeySchema", "Projection")


class TemplateError(ValueError):
    """template.yaml does not hold what a test helper needs (e.g. an intrinsic where a literal must be)."""


class _CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that knows CloudFormation's short tags and, like CloudFormation, has no dates."""


_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise TemplateError(f"unexpected YAML node {node!r}")


def _intrinsic_constructor(long_name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value = _node_value(loader, node)
        if long_name == "Fn::GetAtt" and isinstance(value, str):
            # `!GetAtt Resource.Attribute.With.Dots` -> ["Resource", "Attribute.With.Dots"]
            resource, _, attribute = value.partition(".")
            value = [resource, attribute]
        return {long_name: value}

    return construct


for _tag, _long_name in _SHORT_TAGS.items():
    _CfnLoader.add_constructor(f"!{_tag}", _intrinsic_constructor(_long_name))


@functools.cache
def _parse(path: Path, _mtime_ns: int) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources mapping)")
    return document


def load_template(path: Path | None = None) -> dict[str, Any]:
    """The template with short tags in their long form (``!Ref X`` -> ``{"Ref": "X"}``).

    Parsed once per file version; every call returns a fresh copy, so callers may modify it.
    """
    resolved = (path or TEMPLATE_PATH).resolve()
    return copy.deepcopy(_parse(resolved, resolved.stat().st_mtime_ns))


def is_intrinsic(value: object) -> bool:
    """Whether ``value`` is an intrinsic function call such as ``{"Ref": ...}`` or ``{"Fn::Sub": ...}``."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _INTRINSIC_KEYS


_NO_VALUE = object()  # AWS::NoValue: the key or item it stands for is left out
_SUB_REFERENCE = re.compile(r"\$\{([^!}][^}]*)\}")


class IntrinsicResolver(ABC):
    """The template's intrinsic functions (Ref, GetAtt, Sub, Join, If, Equals, Not, And, Or, Condition,
    AWS::NoValue) evaluated over what a subclass knows: its references, attributes and conditions. The
    local runtime resolves against the created stack, the IAM tests against a stack they name."""

    @abstractmethod
    def ref(self, name: str) -> str: ...

    @abstractmethod
    def attribute(self, logical_id: str, attribute: str) -> str: ...

    @abstractmethod
    def condition(self, name: str) -> bool: ...

    @abstractmethod
    def unresolvable(self, function: str) -> Exception:
        """The error for an intrinsic this resolver does not evaluate."""

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic resolved; ``AWS::NoValue`` removes its key or list item."""
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:  # noqa: PLR0911  (one answer per intrinsic)
        if isinstance(value, list):
            return [item for item in map(self._resolve, value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if not is_intrinsic(value):
            pairs = ((key, self._resolve(item)) for key, item in value.items())
            return {key: item for key, item in pairs if item is not _NO_VALUE}
        ((name, argument),) = value.items()
        if name == "Ref":
            return _NO_VALUE if argument == "AWS::NoValue" else self.ref(argument)
        if name == "Fn::GetAtt":
            logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.attribute(logical, attribute)
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self._resolve(items))
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return self._resolve(when_true if self.condition(condition) else when_false)
        if name == "Fn::Equals":
            left, right = (self._resolve(item) for item in argument)
            return left == right
        if name == "Fn::Not":
            (inner,) = argument
            return not self._resolve(inner)
        if name in ("Fn::And", "Fn::Or"):
            values = [bool(self._resolve(item)) for item in argument]
            return all(values) if name == "Fn::And" else any(values)
        if name == "Condition":
            return self.condition(argument)
        raise self.unresolvable(name)

    def _sub(self, argument: Any) -> str:
        text, variables = (
            (argument[0], self._resolve(argument[1])) if isinstance(argument, list) else (argument, {})
        )

        def value(match: re.Match[str]) -> str:
            reference = match.group(1)
            if reference in variables:
                return str(variables[reference])
            if "." in reference and not reference.startswith("AWS::"):
                return self.attribute(*reference.split(".", 1))
            return self.ref(reference)

        return _SUB_REFERENCE.sub(value, str(text)).replace("${!", "${")


def _literal(value: Any, where: str) -> Any:
    """``value`` itself, after checking that nothing in it is resolved only at deploy time."""
    if is_intrinsic(value):
        raise TemplateError(f"{where} must be a literal in template.yaml, found {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            _literal(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _literal(item, f"{where}[{index}]")
    return value


def _resources_of_type(template: Mapping[str, Any], types: frozenset[str]) -> dict[str, dict[str, Any]]:
    resources = cast("dict[str, dict[str, Any]]", template["Resources"])
    return {logical_id: res for logical_id, res in resources.items() if res.get("Type") in types}


@dataclass(frozen=True)
class TableSpec:
    """What CreateTable needs to build a table the way template.yaml declares it."""

    logical_id: str
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    billing_mode: str
    ttl_attribute: str | None
    global_secondary_indexes: list[dict[str, Any]]
    local_secondary_indexes: list[dict[str, Any]]
    provisioned_throughput: dict[str, Any] | None = None

    @property
    def hash_key(self) -> str:
        return next(key["AttributeName"] for key in self.key_schema if key["KeyType"] == "HASH")

    @property
    def range_key(self) -> str | None:
        return next((key["AttributeName"] for key in self.key_schema if key["KeyType"] == "RANGE"), None)

    def create_table_kwargs(self, table_name: str) -> dict[str, Any]:
        """Keyword arguments for boto3's ``create_table`` (TTL is set apart: ``update_time_to_live``)."""
        kwargs: dict[str, Any] = {
            "TableName": table_name,
            "KeySchema": copy.deepcopy(self.key_schema),
            "AttributeDefinitions": copy.deepcopy(self.attribute_definitions),
            "BillingMode": self.billing_mode,
        }
        if self.provisioned_throughput is not None:
            kwargs["ProvisionedThroughput"] = copy.deepcopy(self.provisioned_throughput)
        if self.global_secondary_indexes:
            kwargs["GlobalSecondaryIndexes"] = copy.deepcopy(self.global_secondary_indexes)
        if self.local_secondary_indexes:
            kwargs["LocalSecondaryIndexes"] = copy.deepcopy(self.local_secondary_indexes)
        return kwargs


def _ttl_attribute(properties: Mapping[str, Any], where: str) -> str | None:
    spec = properties.get("TimeToLiveSpecification")
    if spec is None:
        return None
    enabled = _literal(spec.get("Enabled", False), f"{where}.Enabled")
    if enabled not in (True, "true", "True"):
        return None
    return str(_literal(spec["AttributeName"], f"{where}.AttributeName"))


def _table_spec(logical_id: str, properties: Mapping[str, Any]) -> TableSpec:
    where = f"{logical_id}.Properties"
    billing_mode = str(_literal(properties.get("BillingMode", "PROVISIONED"), f"{where}.BillingMode"))
    throughput = properties.get("ProvisionedThroughput")
    gsis = _literal(properties.get("GlobalSecondaryIndexes", []), f"{where}.GlobalSecondaryIndexes")
    lsis = _literal(properties.get("LocalSecondaryIndexes", []), f"{where}.LocalSecondaryIndexes")
    return TableSpec(
        logical_id=logical_id,
        key_schema=_literal(properties["KeySchema"], f"{where}.KeySchema"),
        attribute_definitions=_literal(properties["AttributeDefinitions"], f"{where}.AttributeDefinitions"),
        billing_mode=billing_mode,
        ttl_attribute=_ttl_attribute(properties, f"{where}.TimeToLiveSpecification"),
        global_secondary_indexes=[{key: gsi[key] for key in _GSI_KEYS if key in gsi} for gsi in gsis],
        local_secondary_indexes=[{key: lsi[key] for key in _LSI_KEYS if key in lsi} for lsi in lsis],
        provisioned_throughput=(
            _literal(throughput, f"{where}.ProvisionedThroughput") if billing_mode == "PROVISIONED" else None
        ),
    )


def table_specs(path: Path | None = None) -> dict[str, TableSpec]:
    """Logical id -> spec of every ``AWS::DynamoDB::Table`` in the template, in template order."""
    tables = _resources_of_type(load_template(path), frozenset({TABLE_TYPE}))
    return {logical_id: _table_spec(logical_id, table["Properties"]) for logical_id, table in tables.items()}


def create_tables(dynamodb_client: Any, *, prefix: str, path: Path | None = None) -> dict[str, str]:
    """Create every table of the template as ``f"{prefix}-{logical_id}"`` (works on moto).

    Enables TTL where the template declares it and waits until every table is ACTIVE.
    Returns logical id -> physical table name.
    """
    specs = table_specs(path)
    names = {logical_id: f"{prefix}-{logical_id}" for logical_id in specs}
    for logical_id, spec in specs.items():
        dynamodb_client.create_table(**spec.create_table_kwargs(names[logical_id]))
    waiter = dynamodb_client.get_waiter("table_exists")
    for logical_id, spec in specs.items():
        waiter.wait(TableName=names[logical_id], WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        if spec.ttl_attribute is not None:
            dynamodb_client.update_time_to_live(
                TableName=names[logical_id],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
    return names


def function_environment(logical_id: str, *, path: Path | None = None) -> dict[str, Any]:
    """The environment variables of a function, raw: values may be intrinsics (``{"Ref": "VaultsTable"}``).

    For a SAM function, ``Globals.Function.Environment.Variables`` are included; the function's own win.
    """
    template = load_template(path)
    functions = _resources_of_type(template, FUNCTION_TYPES)
    if logical_id not in functions:
        raise KeyError(f"template.yaml has no function {logical_id!r}")
    function = functions[logical_id]
    variables: dict[str, Any] = {}
    if function["Type"] == "AWS::Serverless::Function":
        globals_ = template.get("Globals", {}).get("Function", {})
        variables.update(globals_.get("Environment", {}).get("Variables", {}))
    variables.update(function.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    return variables


def bucket_logical_ids(path: Path | None = None) -> list[str]:
    """Logical ids of every ``AWS::S3::Bucket``, in template order."""
    return list(_resources_of_type(load_template(path), frozenset({BUCKET_TYPE})))


class _OfflineManagedPolicies:
    """Stands in for samtranslator's ``ManagedPolicyLoader`` (which lists policies through IAM).

    The template names managed policies by ARN only, so the name -> ARN map is empty.
    """

    def load(self) -> dict[str, str]:
        return {}


def sam_translate(
    template: Mapping[str, Any] | None = None,
    *,
    region: str = "us-east-1",
    parameter_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The SAM template translated to plain CloudFormation, offline (no credentials, no network).

    Local artifact paths (``CodeUri: functions/encrypt/``) are replaced by fake S3 locations, as
    ``sam package`` would replace them by uploaded ones.
    """
    import boto3  # noqa: PLC0415  (only sam_translate needs it)

    # samtranslator ships no type information: loaded by name so mypy --strict sees plain Any.
    parser_module = importlib.import_module("samtranslator.parser.parser")
    translator_module = importlib.import_module("samtranslator.translator.translator")

    document = copy.deepcopy(dict(template) if template is not None else load_template())
    for resource in document.get("Resources", {}).values():
        artifact_property = _ARTIFACT_PROPERTIES.get(resource.get("Type"))
        properties = resource.get("Properties", {})
        uri = properties.get(artifact_property) if artifact_property else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            properties[artifact_property] = f"s3://{_FAKE_ARTIFACT_BUCKET}/{uri.strip('/')}"

    translator = translator_module.Translator(
        None, parser_module.Parser(), boto_session=boto3.session.Session(region_name=region)
    )
    policies = _OfflineManagedPolicies()
    translated = translator.translate(
        document,
        parameter_values=dict(parameter_values or {}),
        get_managed_policy_map=policies.load,
    )
    return cast("dict[str, Any]", translated)
