"""tests/support/iam.py judges policies the way AWS documents IAM policy evaluation.

Each case cites the rule it checks (IAM User Guide: "Policy evaluation logic", "IAM JSON policy elements:
Action / Resource / Condition operators", "Multivalued context keys"): if the evaluator got a rule wrong,
the permission matrix built on it (test_iam_matrix.py) would prove nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.iam import (
    Decision,
    Request,
    UnsupportedPolicyError,
    action_matches,
    arn_matches,
    conditions_match,
    evaluate,
)

TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/vaults"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any = "dynamodb:GetItem", resource: Any = TABLE, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "dynamodb:GetItem", resource: Any = TABLE, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    normalised = {k.lower(): (v,) if isinstance(v, str) else tuple(v) for k, v in context.items()}
    return conditions_match(condition, normalised)


# --------------------------------------------------------------------------------- the decision


def test_nothing_allowed_is_an_implicit_deny() -> None:
    evaluation = evaluate(Request("dynamodb:GetItem", TABLE), [policy(allow("dynamodb:PutItem"))])
    assert (evaluation.decision, evaluation.allowed) == (Decision.IMPLICIT_DENY, False)


def test_an_allow_allows_and_names_its_statement() -> None:
    evaluation = evaluate(Request("dynamodb:GetItem", TABLE), [policy(allow(Sid="Reads"), allow())])
    assert evaluation.decision is Decision.ALLOWED
    assert evaluation.allowed_by == ("Reads", "#1")


def test_an_explicit_deny_in_any_policy_beats_every_allow() -> None:
    request = Request("dynamodb:GetItem", TABLE)
    evaluation = evaluate(request, [policy(allow()), policy(deny(Sid="No"))])
    assert (evaluation.decision, evaluation.denied_by) == (Decision.EXPLICIT_DENY, ("No",))


def test_a_resource_policy_deny_for_everyone_applies_and_its_account_allow_delegates() -> None:
    key_policy = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "NoContext",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"Null": {"kms:EncryptionContextKeys": "true"}},
        },
    )
    role = [policy(allow("kms:Decrypt", KEY))]
    with_context = Request("kms:Decrypt", KEY, {"kms:EncryptionContextKeys": ("purpose",)})
    # The account's Allow only delegates: without an identity Allow nothing is allowed.
    assert evaluate(with_context, [], [key_policy]).decision is Decision.IMPLICIT_DENY
    assert evaluate(with_context, role, [key_policy]).allowed
    assert evaluate(Request("kms:Decrypt", KEY), role, [key_policy]).denied_by == ("NoContext",)


# --------------------------------------------------------------------------- actions, resources


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("dynamodb:GetItem", "dynamodb:GetItem", True),
        ("DynamoDB:getitem", "dynamodb:GetItem", True),  # action names are case-insensitive
        ("dynamodb:Get*", "dynamodb:GetItem", True),
        ("dynamodb:Get*", "dynamodb:BatchGetItem", False),
        ("dynamodb:?etItem", "dynamodb:GetItem", True),
        ("dynamodb:*", "s3:GetObject", False),
        ("*", "s3:GetObject", True),
        ("kms:Encrypt", "kms:EncryptX", False),  # the whole name, not a prefix
    ],
)
def test_action_patterns(pattern: str, action: str, expected: bool) -> None:
    assert action_matches(pattern, action) is expected


@pytest.mark.parametrize(
    ("pattern", "arn", "expected"),
    [
        (TABLE, TABLE, True),
        (TABLE, TABLE + "/stream/2026", False),
        (f"{TABLE}/stream/*", f"{TABLE}/stream/2026-01-01T00:00:00.000", True),
        ("arn:aws:s3:::bucket/logs/*", "arn:aws:s3:::bucket/logs/t1/tile/0/000", True),
        ("arn:aws:s3:::bucket/logs/*", "arn:aws:s3:::bucket/exports/t1", False),
        ("arn:aws:s3:::bucket/logs/*", "arn:aws:s3:::bucket", False),
        ("arn:aws:s3:::Bucket/*", "arn:aws:s3:::bucket/x", False),  # resources are case-sensitive
        ("arn:aws:dynamodb:*:*:table/vaults", TABLE, True),
        ("arn:aws:dynamodb:*:*:table/*", TABLE, True),
        ("arn:aws:dynamodb:*:*:table/*", "arn:aws:dynamodb:eu-west-1:123456789012:table", False),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:f",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:1",
            False,
        ),
        ("*", TABLE, True),
    ],
)
def test_resource_patterns(pattern: str, arn: str, expected: bool) -> None:
    assert arn_matches(pattern, arn) is expected


def test_not_action_and_not_resource_match_everything_else() -> None:
    statement = {"Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "NotResource": f"{TABLE}/index/*"}
    assert evaluate(Request("dynamodb:GetItem", TABLE), [policy(statement)]).allowed
    assert not evaluate(Request("dynamodb:DeleteItem", TABLE), [policy(statement)]).allowed
    assert not evaluate(Request("dynamodb:GetItem", f"{TABLE}/index/g1"), [policy(statement)]).allowed


# ---------------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        # Values of one key: any may match; keys and operators: all must.
        (
            {"StringEquals": {"kms:EncryptionContext:purpose": ["a", "b"]}},
            {"kms:EncryptionContext:purpose": "b"},
            True,
        ),
        (
            {"StringEquals": {"kms:EncryptionContext:purpose": ["a", "b"]}},
            {"kms:EncryptionContext:purpose": "B"},
            False,
        ),
        ({"StringEquals": {"x:a": "1", "x:b": "2"}}, {"x:a": "1", "x:b": "3"}, False),
        ({"StringEquals": {"x:a": "1"}, "StringLike": {"x:b": "2*"}}, {"x:a": "1", "x:b": "20"}, True),
        # Condition key names are case-insensitive, values are not.
        (
            {"StringEquals": {"KMS:ViaService": "s3.eu-west-1.amazonaws.com"}},
            {"kms:viaservice": "s3.eu-west-1.amazonaws.com"},
            True,
        ),
        ({"StringEqualsIgnoreCase": {"x:a": "AbC"}}, {"x:a": "aBc"}, True),
        # A negated operator: no policy value may match.
        ({"StringNotEquals": {"x:a": ["1", "2"]}}, {"x:a": "2"}, False),
        ({"StringNotEquals": {"x:a": ["1", "2"]}}, {"x:a": "3"}, True),
        ({"StringLike": {"s3:prefix": "tenants/*"}}, {"s3:prefix": "tenants/t1/"}, True),
        ({"StringLike": {"s3:prefix": "tenants/*"}}, {"s3:prefix": "logs/"}, False),
        ({"StringLike": {"x:a": "a?c"}}, {"x:a": "abc"}, True),
        ({"StringNotLike": {"x:a": "a*"}}, {"x:a": "abc"}, False),
        (
            {"ArnLike": {"aws:SourceArn": "arn:aws:states:*:*:stateMachine:m"}},
            {"aws:SourceArn": "arn:aws:states:eu-west-1:1:stateMachine:m"},
            True,
        ),
        (
            {"ArnNotEquals": {"aws:SourceArn": "arn:aws:states:*:*:stateMachine:m"}},
            {"aws:SourceArn": "arn:aws:states:eu-west-1:1:stateMachine:n"},
            True,
        ),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "false"}, True),
        ({"Bool": {"aws:SecureTransport": False}}, {"aws:SecureTransport": "true"}, False),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "TRUE"}, True),
    ],
)
def test_operators_on_a_present_key(
    condition: dict[str, Any], context: dict[str, Any], expected: bool
) -> None:
    assert holds(condition, context) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # "If the key ... is not present in the request context, the values do not match and the
        # condition is false" - unless the operator requires it not to match (StringNotLike, ArnNotLike).
        ({"StringEquals": {"x:a": "1"}}, False),
        ({"StringLike": {"x:a": "*"}}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, False),
        ({"StringNotEquals": {"x:a": "1"}}, True),
        ({"StringNotLike": {"x:a": "1"}}, True),
        ({"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::b"}}, True),
        # ...IfExists: "if the key is not present, evaluate the condition as true".
        ({"StringEqualsIfExists": {"x:a": "1"}}, True),
        # Null: true when the key is absent.
        ({"Null": {"x:a": "true"}}, True),
        ({"Null": {"x:a": "false"}}, False),
        # ForAllValues is true for an absent (empty) key; ForAnyValue is false.
        ({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "TENANT#*"}}, True),
        ({"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": "TENANT#*"}}, False),
    ],
)
def test_operators_on_an_absent_key(condition: dict[str, Any], expected: bool) -> None:
    assert holds(condition, {}) is expected
    assert holds(condition, {"x:a": ()}) is expected  # an empty set is absent too


@pytest.mark.parametrize(
    ("condition", "keys", "expected"),
    [
        # ForAllValues: every value in the request matches some policy value.
        ({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "TENANT#*"}}, ("TENANT#a", "TENANT#b"), True),
        ({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "TENANT#*"}}, ("TENANT#a", "POLICY#a"), False),
        (
            {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["SERVICE", "PSEUDONYM"]}},
            ("PSEUDONYM",),
            True,
        ),
        ({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": "STAGE#a"}}, ("STAGE#ab",), False),
        # ForAnyValue: at least one does.
        ({"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": "TENANT#*"}}, ("TENANT#a", "POLICY#a"), True),
        ({"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": "SERVICE"}}, ("POLICY#a",), False),
        # Negated with a qualifier: each (or some) value matches none of the policy values.
        ({"ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": "TENANT#*"}}, ("POLICY#a", "STAGE#b"), True),
        (
            {"ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": "TENANT#*"}},
            ("POLICY#a", "TENANT#b"),
            False,
        ),
        ({"ForAnyValue:StringNotLike": {"dynamodb:LeadingKeys": "TENANT#*"}}, ("POLICY#a", "TENANT#b"), True),
        # Null on a multivalued key: a non-empty set is not null.
        ({"Null": {"dynamodb:LeadingKeys": "false"}}, ("TENANT#a",), True),
    ],
)
def test_set_qualifiers_on_multivalued_keys(
    condition: dict[str, Any], keys: tuple[str, ...], expected: bool
) -> None:
    assert holds(condition, {"dynamodb:LeadingKeys": keys}) is expected


# ----------------------------------------------------------------------- what it refuses to judge


@pytest.mark.parametrize(
    ("document", "context"),
    [
        (policy(allow(Condition={"NumericLessThan": {"x:n": "3"}})), {}),  # not implemented
        (policy(allow(Condition={"ForAllValues:Null": {"x:n": "true"}})), {}),
        (policy(allow(Condition={"Null": {"x:n": "maybe"}})), {}),
        (policy(allow(resource="arn:aws:s3:::b/${aws:username}/*")), {}),  # a policy variable
        (policy(allow(resource="arn:aws:dynamodb:eu-*:123456789012:table/vaults")), {}),
        (policy(allow(resource="arn:aws:dynamodb:*:table/vaults")), {}),  # not an ARN
        (
            policy(allow(Condition={"StringEquals": {"dynamodb:LeadingKeys": "A"}})),
            {"dynamodb:LeadingKeys": ("A", "B")},
        ),
        (policy({"Effect": "Allow", "Action": "dynamodb:GetItem"}), {}),  # no Resource
        (policy(allow(NotAction="dynamodb:PutItem")), {}),  # Action and NotAction
        (policy(allow(Principal="*")), {}),  # a principal in an identity policy
        (policy({**allow(), "Effect": "Maybe"}), {}),
        ({"Statement": [allow()]}, {}),  # no Version: policy variables would be literal text
    ],
)
def test_what_it_does_not_implement_is_refused_not_guessed(
    document: dict[str, Any], context: dict[str, Any]
) -> None:
    with pytest.raises(UnsupportedPolicyError):
        evaluate(
            Request(
                "dynamodb:GetItem", "arn:aws:s3:::b/alice/x" if "s3" in str(document) else TABLE, context
            ),
            [document],
        )


ROLE = "arn:aws:iam::123456789012:role/api"


def test_a_resource_policy_allow_naming_a_role_grants_that_role_alone() -> None:
    """User Guide, "Policy evaluation logic" (same account): a resource-based policy that names a role
    grants the request on its own, without an identity policy; a KMS key policy may name roles so."""
    key_policy = policy(
        {"Sid": "Api", "Effect": "Allow", "Principal": {"AWS": [ROLE]}, "Action": "kms:Sign", "Resource": "*"}
    )
    granted = evaluate(Request("kms:Sign", KEY, principal=ROLE), [], [key_policy])
    assert (granted.decision, granted.allowed_by) == (Decision.ALLOWED, ("Api",))
    for other in ("arn:aws:iam::123456789012:role/other", None):
        assert evaluate(Request("kms:Sign", KEY, principal=other), [], [key_policy]).decision is (
            Decision.IMPLICIT_DENY
        )
    # Only the actions it names, and an explicit deny still wins.
    assert not evaluate(Request("kms:Decrypt", KEY, principal=ROLE), [], [key_policy]).allowed
    fenced = policy(
        key_policy["Statement"][0],
        {
            "Sid": "NotThisRole",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:Sign",
            "Resource": "*",
            "Condition": {"ArnEquals": {"aws:PrincipalArn": ROLE}},
        },
    )
    request = Request("kms:Sign", KEY, {"aws:PrincipalArn": ROLE}, principal=ROLE)
    assert evaluate(request, [], [fenced]).denied_by == ("NotThisRole",)


@pytest.mark.parametrize(
    "statement",
    [
        # A resource policy's Deny for named principals, and Allows for anything but the account's roles.
        {"Effect": "Deny", "Principal": {"AWS": ROLE}, "Action": "*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "*",
            "Resource": "*",
        },
        {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Principal": {"AWS": [ROLE, "arn:aws:iam::123456789012:root"]},
            "Action": "*",
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:user/u"},
            "Action": "*",
            "Resource": "*",
        },
    ],
)
def test_resource_policies_naming_other_principals_are_refused(statement: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedPolicyError):
        evaluate(
            Request("kms:Decrypt", KEY, principal=ROLE),
            [policy(allow("kms:Decrypt", KEY))],
            [policy(statement)],
        )
