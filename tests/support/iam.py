"""A small AWS IAM policy evaluator for tests: would these policies allow this request?

It implements AWS's documented evaluation logic for principals and resources of one account, and only
the parts of the policy language this project's policies use:

- an explicit ``Deny`` in any applicable policy wins; otherwise any ``Allow`` wins; otherwise the request
  is implicitly denied;
- ``Action`` / ``NotAction`` (``service:name`` patterns, case-insensitive, ``*`` and ``?``), ``Resource`` /
  ``NotResource`` (ARN patterns, case-sensitive, wildcards matched within each of the six ARN fields);
- conditions: every operator block and every key in it must match (AND), any policy value of a key may
  match (OR; none may, for the negated operators); the ``String*``, ``Arn*``, ``Bool`` and ``Null``
  operators, the ``IfExists`` suffix and the ``ForAllValues:`` / ``ForAnyValue:`` set qualifiers, with
  AWS's rules for a key that is absent from the request.

Anything else (an unknown operator or element, a policy variable, a multivalued key compared by a
single-valued operator, a resource policy that names principals) raises ``UnsupportedPolicyError``: the
evaluator never guesses, so a policy it cannot judge fails the test that asked.

Resource-based policies (a KMS key policy, a bucket policy) take part through their ``Deny`` statements
for every principal, and through their ``Allow`` statements: one that names the account (its root)
delegates to the identity policies; one that names roles of the account grants the request to those
roles (``Request.principal``) without any identity policy, as a KMS key policy naming a role does.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

POLICY_VERSION = "2012-10-17"
_STATEMENT_ELEMENTS = frozenset(
    {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition", "Principal"}
)
_SET_QUALIFIERS = ("ForAllValues:", "ForAnyValue:")
_IF_EXISTS = "IfExists"

ContextValue = str | tuple[str, ...]


class UnsupportedPolicyError(ValueError):
    """A policy or request uses something this evaluator does not implement (it never guesses)."""


class Decision(enum.Enum):
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True, slots=True)
class Request:
    """One authorisation question: ``action`` on ``resource`` with the request context's keys.

    A multivalued key (``dynamodb:LeadingKeys``, ``kms:EncryptionContextKeys``) is a tuple. ``principal``
    is the ARN of the role that asks (what a resource policy's ``Principal`` names)."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal: str | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Decision
    allowed_by: tuple[str, ...]  # the Sids of the matching Allow statements
    denied_by: tuple[str, ...]  # the Sids of the matching Deny statements

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


def evaluate(
    request: Request,
    identity_policies: Sequence[Mapping[str, Any]],
    resource_policies: Sequence[Mapping[str, Any]] = (),
) -> Evaluation:
    """The decision for ``request`` by a principal with ``identity_policies`` on a resource with
    ``resource_policies`` (same account)."""
    context = _normalised_context(request.context)
    allowed: list[str] = []
    denied: list[str] = []
    for document in identity_policies:
        for sid, statement in _statements(document):
            if "Principal" in statement:
                raise UnsupportedPolicyError(f"an identity policy statement names a principal ({sid})")
            if _applies(statement, request, context):
                (allowed if statement["Effect"] == "Allow" else denied).append(sid)
    for document in resource_policies:
        for sid, statement in _statements(document):
            if _resource_statement_applies(statement, sid, request, context):
                (allowed if statement["Effect"] == "Allow" else denied).append(sid)
    if denied:
        decision = Decision.EXPLICIT_DENY
    elif allowed:
        decision = Decision.ALLOWED
    else:
        decision = Decision.IMPLICIT_DENY
    return Evaluation(decision, tuple(allowed), tuple(denied))


def _resource_statement_applies(
    statement: Mapping[str, Any], sid: str, request: Request, context: Mapping[str, tuple[str, ...]]
) -> bool:
    """An Allow applies to the roles it names (one delegating to the account applies to nobody: the
    identity policies decide); a Deny, which must name every principal, applies to all."""
    if statement["Effect"] == "Allow":
        return request.principal in _named_roles(statement, sid) and _applies(statement, request, context)
    if statement.get("Principal") not in ("*", {"AWS": "*"}):
        raise UnsupportedPolicyError(f"a resource policy Deny names principals ({sid})")
    return _applies(statement, request, context)


# ------------------------------------------------------------------------------------------- statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if document.get("Version") != POLICY_VERSION:
        raise UnsupportedPolicyError(f"policy Version must be {POLICY_VERSION}")
    for index, statement in enumerate(_as_list(document["Statement"])):
        sid = str(statement.get("Sid", f"#{index}"))
        unknown = set(statement) - _STATEMENT_ELEMENTS
        if unknown:
            raise UnsupportedPolicyError(f"statement {sid} has unsupported elements {sorted(unknown)}")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise UnsupportedPolicyError(f"statement {sid} has no Effect Allow or Deny")
        if ("Action" in statement) == ("NotAction" in statement):
            raise UnsupportedPolicyError(f"statement {sid} needs exactly one of Action and NotAction")
        if ("Resource" in statement) == ("NotResource" in statement):
            raise UnsupportedPolicyError(f"statement {sid} needs exactly one of Resource and NotResource")
        yield sid, statement


_ACCOUNT_ROOT = re.compile(r"arn:[^:]+:iam::\d{12}:root")
_ROLE = re.compile(r"arn:[^:]+:iam::\d{12}:role/[\w+=,.@/-]+")


def _named_roles(statement: Mapping[str, Any], sid: str) -> frozenset[str]:
    """The roles a resource policy's Allow grants to directly; none when it delegates to the account."""
    principal = statement.get("Principal")
    arns = _as_list(principal.get("AWS")) if isinstance(principal, dict) and len(principal) == 1 else []
    if arns and all(isinstance(a, str) and _ACCOUNT_ROOT.fullmatch(a) for a in arns):
        return frozenset()
    if arns and all(isinstance(a, str) and _ROLE.fullmatch(a) for a in arns):
        return frozenset(arns)
    raise UnsupportedPolicyError(
        f"a resource policy Allow other than to the account root or to its roles ({sid})"
    )


def _applies(statement: Mapping[str, Any], request: Request, context: Mapping[str, tuple[str, ...]]) -> bool:
    if "Action" in statement:
        action_ok = any(action_matches(p, request.action) for p in _as_list(statement["Action"]))
    else:
        action_ok = not any(action_matches(p, request.action) for p in _as_list(statement["NotAction"]))
    if not action_ok:
        return False
    if "Resource" in statement:
        resource_ok = any(resource_matches(p, request.resource) for p in _as_list(statement["Resource"]))
    else:
        resource_ok = not any(
            resource_matches(p, request.resource) for p in _as_list(statement["NotResource"])
        )
    return resource_ok and conditions_match(statement.get("Condition", {}), context)


# ---------------------------------------------------------------------------------------------- matching


@functools.cache
def _glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """``*`` any run of characters, ``?`` exactly one; everything else literal."""
    if "${" in pattern:
        raise UnsupportedPolicyError("policy variables are not supported")
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _glob_matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case=ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """``dynamodb:Get*`` matches ``dynamodb:GetItem``; action names are case-insensitive."""
    if pattern == "*":
        return True
    if pattern.count(":") != 1 or action.count(":") != 1:
        raise UnsupportedPolicyError("actions are service:name")
    return _glob_matches(pattern, action, ignore_case=True)


def arn_matches(pattern: str, arn: str) -> bool:
    """ARN patterns match field by field (partition, service, region, account, resource); the resource
    field may itself hold ``:`` and ``/``. A field before it is literal or all ``*``: whether a partial
    wildcard there may span fields is not something this evaluator guesses."""
    if pattern == "*":
        return True
    pattern_fields, arn_fields = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_fields) != 6 or pattern_fields[0] != "arn":
        raise UnsupportedPolicyError("a resource pattern is an ARN or *")
    if any(f != "*" and ("*" in f or "?" in f) for f in pattern_fields[1:5]):
        raise UnsupportedPolicyError("a partial wildcard outside an ARN's resource field")
    if len(arn_fields) != 6:
        return False
    return all(_glob_matches(p, a) for p, a in zip(pattern_fields, arn_fields, strict=True))


resource_matches = arn_matches


# -------------------------------------------------------------------------------------------- conditions


def _normalised_context(context: Mapping[str, ContextValue]) -> dict[str, tuple[str, ...]]:
    """Keys are case-insensitive; every value a tuple of strings (a single value is a tuple of one)."""
    normalised: dict[str, tuple[str, ...]] = {}
    for key, value in context.items():
        values = (value,) if isinstance(value, str) else tuple(value)
        if not all(isinstance(v, str) for v in values):
            raise UnsupportedPolicyError(f"context key {key} must hold strings")
        normalised[key.lower()] = values
    return normalised


def _policy_values(value: Any) -> tuple[str, ...]:
    values = []
    for item in _as_list(value):
        if isinstance(item, bool):
            values.append("true" if item else "false")
        elif isinstance(item, str):
            values.append(item)
        else:
            raise UnsupportedPolicyError("condition values must be strings or booleans")
    return tuple(values)


def _bool_equals(policy: str, value: str) -> bool:
    return policy.lower() == value.lower() and value.lower() in ("true", "false")


# Positive operators: does one request value match one policy value? Negations are derived below.
_POSITIVE: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda p, v: p == v,
    "StringEqualsIgnoreCase": lambda p, v: p.casefold() == v.casefold(),
    "StringLike": _glob_matches,
    "ArnEquals": arn_matches,  # AWS documents ArnEquals and ArnLike as the same comparison
    "ArnLike": arn_matches,
    "Bool": _bool_equals,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


@dataclass(frozen=True, slots=True)
class _Operator:
    base: str
    qualifier: str  # "", "ForAllValues:" or "ForAnyValue:"
    if_exists: bool

    @classmethod
    def parse(cls, name: str) -> _Operator:
        qualifier = next((q for q in _SET_QUALIFIERS if name.startswith(q)), "")
        base = name.removeprefix(qualifier)
        if_exists = base.endswith(_IF_EXISTS) and base != _IF_EXISTS
        base = base.removesuffix(_IF_EXISTS) if if_exists else base
        if base not in _POSITIVE and base not in _NEGATED and base != "Null":
            raise UnsupportedPolicyError(f"condition operator {name} is not supported")
        if base == "Null" and (qualifier or if_exists):
            raise UnsupportedPolicyError(f"condition operator {name} is not valid")
        return cls(base, qualifier, if_exists)

    @property
    def negated(self) -> bool:
        return self.base in _NEGATED

    def value_matches(self, policy_values: tuple[str, ...], value: str) -> bool:
        """One request value against the key's policy values: any may match (none, when negated)."""
        positive = _POSITIVE[_NEGATED.get(self.base, self.base)]
        matched = any(positive(p, value) for p in policy_values)
        return not matched if self.negated else matched


def conditions_match(condition: Mapping[str, Any], context: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether a statement's Condition block holds for a (normalised) request context."""
    if not isinstance(condition, Mapping):
        raise UnsupportedPolicyError("Condition must be a mapping of operators")
    for name, keys in condition.items():
        operator = _Operator.parse(name)
        if not isinstance(keys, Mapping) or not keys:
            raise UnsupportedPolicyError(f"condition operator {name} needs keys")
        for key, value in keys.items():
            if not _key_matches(operator, _policy_values(value), context.get(key.lower(), ())):
                return False
    return True


def _absent_key_matches(operator: _Operator) -> bool:
    """A key absent from the request: IfExists and ForAllValues hold, ForAnyValue does not; a plain
    operator holds only when it requires the key not to match (StringNotEquals, ArnNotLike ...)."""
    if operator.if_exists or operator.qualifier == "ForAllValues:":
        return True
    if operator.qualifier == "ForAnyValue:":
        return False
    return operator.negated


def _key_matches(operator: _Operator, policy_values: tuple[str, ...], values: tuple[str, ...]) -> bool:
    if operator.base == "Null":
        if policy_values not in (("true",), ("false",)):
            raise UnsupportedPolicyError("Null takes true or false")
        return (not values) == (policy_values == ("true",))
    if not values:
        return _absent_key_matches(operator)
    if operator.qualifier == "ForAllValues:":
        return all(operator.value_matches(policy_values, v) for v in values)
    if operator.qualifier == "ForAnyValue:":
        return any(operator.value_matches(policy_values, v) for v in values)
    if len(values) != 1:
        raise UnsupportedPolicyError("a multivalued key needs ForAllValues: or ForAnyValue:")
    return operator.value_matches(policy_values, values[0])
