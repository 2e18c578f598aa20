"""A grant needs the attestation chain its logged approval names (``reliquary.vaults.decisions.
require_attested``): stored unaltered, signed by the stage keys the ledger publishes, approving, about
exactly this request, for the item version the record names, and fresh. Every refusal is typed, names
its check, grants nothing and does not even look the item up. In memory; the moto path is in
tests/integration/test_vault_service_moto.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from reliquary.crypto import grants
from reliquary.crypto.grants import open_grant
from reliquary.crypto.kem import HybridPrivateKey, requester_key_sha256
from reliquary.errors import AttestationError, DecisionRequiredError
from reliquary.flow.attestation import Attestation, Signer, StageSigner, Subject
from reliquary.flow.memory import MemoryStageKeys
from reliquary.vaults.memory import approval_record
from reliquary.vaults.models import ItemRecord
from reliquary.vaults.service import IssuedGrant
from tests.support.vaults import (
    T0,
    USER_SCOPE,
    MemoryStack,
    memory_stack,
    request_subject,
    signed_chain,
    store_chain,
)

TENANT, OTHER_TENANT, VAULT, ITEM, REQUEST = "tenant-a", "tenant-b", "vault-1", "note", "access-1"
REQUESTER = HybridPrivateKey.generate()
KEY_SHA256 = requester_key_sha256(REQUESTER.public_key().to_bytes())
STRANGER_SHA256 = requester_key_sha256(HybridPrivateKey.generate().public_key().to_bytes())
SUBJECT = request_subject(
    tenant_id=TENANT, vault_id=VAULT, item_id=ITEM, request_id=REQUEST, requester_key_sha256=KEY_SHA256
)
OUTSIDER = MemoryStageKeys()  # stage keys of the right shape that the ledger does not publish


@dataclass
class Granting:
    """The stack, and what its grant path did: the grants issued and the item versions looked up."""

    stack: MemoryStack
    issued: list[str]
    looked_up: list[tuple[str, str, str, int | None]]

    @property
    def signers(self) -> dict[Signer, StageSigner]:
        """The stage keys the ledger publishes (the ones an honest flow signs with)."""
        return self.stack.ledger.stage.signers

    def log(self, chain: Sequence[Attestation] | None, *, stored_under: str = TENANT, **changes: Any) -> None:
        """Store ``chain`` (under ``stored_under``'s chains) and log the approval of this request naming
        it: version 1, now (``changes`` alter the record)."""
        named = None if chain is None else store_chain(self.stack.ledger.chains, stored_under, chain)
        fields: dict[str, Any] = {
            "tenant_id": TENANT,
            "vault_id": VAULT,
            "item_id": ITEM,
            "request_id": REQUEST,
            "requester_key_sha256": KEY_SHA256,
            "time": self.stack.clock(),
            "chain_sha256": named,
            "item_version": 1,
            **changes,
        }
        self.stack.ledger.log(approval_record(**fields))

    def grant(self, request_id: str = REQUEST) -> IssuedGrant:
        return self.stack.service.grant_approved(
            request_id=request_id,
            tenant_id=TENANT,
            vault_id=VAULT,
            item_id=ITEM,
            requester_public_key=REQUESTER.public_key(),
        )

    def open(self, issued: IssuedGrant) -> bytes:
        _, envelope = self.stack.service.load_envelope(TENANT, VAULT, ITEM, issued.record.version)
        return open_grant(
            issued.grant,
            envelope,
            requester_private_key=REQUESTER,
            service_keys=self.stack.service.service_keys.keyring,
            now=self.stack.clock(),
        )


def _granting(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Granting:
    stack = memory_stack(**options)
    stack.service.create_vault(TENANT, VAULT)
    stack.service.seal_item(TENANT, VAULT, ITEM, b"first draft", memory_scope=USER_SCOPE)
    issued: list[str] = []
    looked_up: list[tuple[str, str, str, int | None]] = []
    real_issue, real_get = grants.issue, stack.items.get

    def counted_issue(**kwargs: Any) -> Any:
        issued.append(kwargs["request_id"])
        return real_issue(**kwargs)

    def counted_get(tenant_id: str, vault_id: str, item_id: str, version: int | None = None) -> ItemRecord:
        looked_up.append((tenant_id, vault_id, item_id, version))
        return real_get(tenant_id, vault_id, item_id, version)

    monkeypatch.setattr(grants, "issue", counted_issue)
    monkeypatch.setattr(stack.items, "get", counted_get)
    return Granting(stack, issued, looked_up)


@pytest.fixture
def granting(monkeypatch: pytest.MonkeyPatch) -> Granting:
    return _granting(monkeypatch)


def _about(**changes: str) -> Subject:
    fields = {
        "tenant_id": TENANT,
        "vault_id": VAULT,
        "item_id": ITEM,
        "request_id": REQUEST,
        "requester_key_sha256": KEY_SHA256,
        **changes,
    }
    return request_subject(**fields)


def _edited(
    chain: Sequence[Attestation], change: Callable[[list[dict[str, Any]]], None]
) -> list[Attestation]:
    """``chain`` with ``change`` made to its JSON form, the signatures left as they were."""
    body = [a.to_json() for a in chain]
    change(body)
    return [Attestation.from_json(a) for a in body]


def test_an_honest_chain_gets_its_grant(granting: Granting) -> None:
    """The control for every refusal below: the same record and chain, nothing changed."""
    granting.log(signed_chain(granting.signers, SUBJECT, issued_at=T0))
    issued = granting.grant()
    assert granting.open(issued) == b"first draft"
    assert granting.issued == [REQUEST]


def test_a_record_without_a_chain_grants_nothing(granting: Granting) -> None:
    granting.log(None)
    with pytest.raises(DecisionRequiredError) as caught:
        granting.grant()
    assert caught.value.to_dict() == {
        "code": "decision_required",
        "type": "DecisionRequiredError",
        "message": "the access decision logged for this request carries no attestation chain",
        "details": {"request_id": REQUEST},
        "retryable": False,
    }
    assert (granting.issued, granting.looked_up) == ([], [])


def _missing(granting: Granting) -> None:
    """The record names an honest chain that was never stored."""
    chain = signed_chain(granting.signers, SUBJECT, issued_at=T0)
    granting.log(chain)
    granting.stack.ledger.chain_store.objects.clear()


def _altered_in_store(granting: Granting) -> None:
    """The stored bytes changed (the tally's decision, in place): no longer the chain the log names."""
    chain = signed_chain(granting.signers, SUBJECT, issued_at=T0, decision="deny")
    granting.log(chain)
    ((key, data),) = granting.stack.ledger.chain_store.objects.items()
    body = json.loads(data)
    body[-1]["statement"]["claim"]["decision"] = "approve"
    granting.stack.ledger.chain_store.objects[key] = json.dumps(body).encode()


def _stored_for_another_tenant(granting: Granting) -> None:
    """The chain exists, but only among another tenant's chains."""
    granting.log(signed_chain(granting.signers, SUBJECT, issued_at=T0), stored_under=OTHER_TENANT)


def _altered_and_renamed(granting: Granting) -> None:
    """A denying chain turned into an approval, stored under its new digest and named by the record."""
    chain = signed_chain(granting.signers, SUBJECT, issued_at=T0, decision="deny")

    def approve(body: list[dict[str, Any]]) -> None:
        body[-1]["statement"]["claim"]["decision"] = "approve"

    granting.log(_edited(chain, approve))


def _chain(**options: Any) -> Callable[[Granting], None]:
    """The record of this request naming a chain signed by the published keys, with ``options``."""
    subject = options.pop("subject", SUBJECT)
    signers = options.pop("signers", None)
    record = options.pop("record", {})

    def log(granting: Granting) -> None:
        chain = signed_chain(signers or granting.signers, subject, **{"issued_at": T0, **options})
        granting.log(chain, **record)

    return log


def _stops_early(granting: Granting) -> None:
    """The chain of a flow that stopped after the trust stage: no votes, no tally."""
    granting.log(signed_chain(granting.signers, SUBJECT, issued_at=T0)[:2])


REFUSED_CHAINS: dict[str, tuple[Callable[[Granting], None], str, str]] = {
    "the chain is missing from the store": (_missing, "chain", "chain is missing"),
    "the stored chain was altered": (_altered_in_store, "chain", "not the one the log names"),
    "the chain is stored for another tenant": (_stored_for_another_tenant, "chain", "chain is missing"),
    "an altered chain stored and named by its new digest": (
        _altered_and_renamed,
        "signature",
        "signature does not verify",
    ),
    "signed by keys the ledger does not publish": (
        _chain(signers=OUTSIDER.signers),
        "key",
        "signed by an unknown key",
    ),
    "the tally denied": (_chain(decision="deny"), "approval", "does not approve"),
    "the rules denied": (_chain(effect="deny"), "approval", "does not approve"),
    "the context did not verify": (_chain(verified=False), "approval", "does not approve"),
    "the flow stopped before the tally": (_stops_early, "approval", "does not approve"),
    "dated in the future": (_chain(issued_at=T0 + 301), "time", "dated in the future"),
    "for another requester key": (
        _chain(subject=_about(requester_key_sha256=STRANGER_SHA256)),
        "subject",
        "approves another requester key",
    ),
    "for another item": (_chain(subject=_about(item_id="other-note")), "subject", "about another request"),
    "for another vault": (_chain(subject=_about(vault_id="vault-2")), "subject", "about another request"),
    "for another request id": (
        _chain(subject=_about(request_id="access-2")),
        "subject",
        "about another request",
    ),
    "for another tenant (stored among this tenant's chains)": (
        _chain(subject=_about(tenant_id=OTHER_TENANT)),
        "subject",
        "about another request",
    ),
    "the record names another item version than the chain": (
        _chain(item_version=1, record={"item_version": 2}),
        "result",
        "approves another item version",
    ),
    "the record names no item version": (
        _chain(record={"item_version": None}),
        "result",
        "approves another item version",
    ),
}


@pytest.mark.parametrize("case", REFUSED_CHAINS.values(), ids=list(REFUSED_CHAINS))
def test_without_an_attested_approval_of_this_request_nothing_is_granted(
    granting: Granting, case: tuple[Callable[[Granting], None], str, str]
) -> None:
    log, check, message = case
    log(granting)
    with pytest.raises(AttestationError, match=message) as caught:
        granting.grant()
    assert caught.value.code == "attestation_invalid"
    assert caught.value.details == {"check": check}
    assert not caught.value.retryable
    assert (granting.issued, granting.looked_up) == ([], [])


def test_the_grant_opens_exactly_the_version_the_chain_approved(granting: Granting) -> None:
    """Approved while version 1 was current, granted after version 2 was sealed: version 1 it is."""
    granting.log(signed_chain(granting.signers, SUBJECT, issued_at=T0, item_version=1))
    granting.stack.service.seal_item(TENANT, VAULT, ITEM, b"second draft", memory_scope=USER_SCOPE)

    issued = granting.grant()

    assert issued.record.version == 1
    assert granting.looked_up == [(TENANT, VAULT, ITEM, 1)]
    assert granting.open(issued) == b"first draft"
    later = _about(request_id="access-2")
    granting.stack.ledger.approve(**_named(later), item_version=2, time=T0)
    issued = granting.grant("access-2")
    assert (issued.record.version, granting.open(issued)) == (2, b"second draft")
    assert granting.issued == [REQUEST, "access-2"]


def _named(subject: Subject) -> dict[str, str]:
    return {
        "tenant_id": subject.tenant_id,
        "vault_id": subject.vault_id,
        "item_id": subject.item_id,
        "request_id": subject.request_id,
        "requester_key_sha256": subject.requester_key_sha256,
    }


def test_a_stale_approval_grants_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The approval's age is the service's approval_max_age_seconds, whatever its chain says."""
    granting = _granting(monkeypatch, approval_max_age_seconds=60)
    granting.log(signed_chain(granting.signers, SUBJECT, issued_at=T0))
    granting.stack.clock.advance(60)
    granting.grant()
    granting.stack.clock.advance(1)
    with pytest.raises(DecisionRequiredError) as caught:
        granting.grant()
    assert caught.value.message == "the access decision logged for this request is too old to grant"
    assert caught.value.details == {"request_id": REQUEST}
    assert granting.issued == [REQUEST]  # the one granted while fresh
    assert granting.looked_up == [(TENANT, VAULT, ITEM, 1)]


def test_a_refused_chain_is_not_a_standing_refusal_of_the_item(granting: Granting) -> None:
    """A refusal is about the request's chain: the next request, honestly approved, gets its grant."""
    _altered_in_store(granting)
    with pytest.raises(AttestationError):
        granting.grant()
    granting.stack.ledger.approve(**_named(_about(request_id="access-2")), item_version=1, time=T0)
    assert granting.open(granting.grant("access-2")) == b"first draft"
    assert granting.issued == ["access-2"]


@pytest.mark.parametrize(
    ("chain_age", "record_age"), [(3600, 0), (0, 3600)], ids=["old chain, re-dated record", "old record"]
)
def test_an_approval_is_as_old_as_its_older_date(granting: Granting, chain_age: int, record_age: int) -> None:
    """Freshness is checked on the record's time and on the tally's own signed time: an approval
    decided an hour ago whose record was re-dated to now in the log's storage opens nothing, and
    neither does an old record naming a fresh chain."""
    now = granting.stack.clock.advance(3600)
    granting.log(signed_chain(granting.signers, SUBJECT, issued_at=now - chain_age), time=now - record_age)
    with pytest.raises(DecisionRequiredError) as caught:
        granting.grant()
    assert caught.value.message == "the access decision logged for this request is too old to grant"
    assert caught.value.details == {"request_id": REQUEST}
    assert (granting.issued, granting.looked_up) == ([], [])


@pytest.mark.parametrize(("approval_age", "granted"), [(10, True), (900, True), (901, False)])
def test_after_a_step_up_wait_freshness_counts_from_the_last_approval(
    granting: Granting, approval_age: int, granted: bool
) -> None:
    """A step-up waits up to 15 minutes for people: the grant's window opens with the last approval
    (signed by agent-vote), so a tally signed 20 minutes before still grants while the approvals are
    fresh, and an approval older than the window grants nothing."""
    now = granting.stack.clock.advance(3600)
    people = (("ps-" + "1" * 24, "approve"), ("ps-" + "2" * 24, "approve"))
    options: dict[str, Any] = {"effect": "step_up", "approvers_required": 2, "approvals": people}
    chain = signed_chain(
        granting.signers, SUBJECT, issued_at=now - 1200, approved_at=now - approval_age, **options
    )
    granting.log(chain, time=now - 5)
    if granted:
        assert granting.open(granting.grant()) == b"first draft"
        return
    with pytest.raises(DecisionRequiredError) as caught:
        granting.grant()
    assert caught.value.message == "the access decision logged for this request is too old to grant"
    assert granting.issued == []
