"""The demo tenant of the local runtime (also the end-to-end tests' and the benchmarks' fixture): vaults
with their context, trust and quorum policies, sealed items and enrolled devices, all made through the
functions' own actions. Every key is generated at run time.

The policies are chosen so that outcomes do not depend on the hour of the day (the default rules step up
night-time access to restricted items; the watchdog agent flags the quiet hours).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from infra.local.access import LocalAccess
from infra.local.requester import Requester

TENANT = "acme"
# A support desk's vault: two of the panel approve (the watchdog may veto), the rules' quorum for
# restricted items still applies, and the desk works around the clock.
SUPPORT_VAULT = "agent-memory"
ARCHIVE_PREFIX = "archive-"  # archive-ipfs, archive-arweave: vaults whose bodies are on permanent storage
# The same rules under the strict trust template, without the desk's overrides: a principal's first
# access scores in the low band.
STRICT_VAULT = "board-minutes"
# Three of three must approve (the strict agent approves only high trust): one approval short.
UNANIMOUS_VAULT = "payroll"

SUPPORT_TRUST = {
    "template": "standard",
    "overrides": {
        "roles": {"values": {"support": 0.9}},
        "sensitivity": {"public": 1.0, "internal": 0.9, "confidential": 0.5, "restricted": 0.5},
    },
}
SUPPORT_QUORUM = {
    "panel": ["strict", "permissive", "neutral", "watchdog"],
    "approvals": 2,
    "veto_holders": ["watchdog"],
    "min_confidence": 0.5,
    "abstentions": "deny",
}
UNANIMOUS_QUORUM = {
    "panel": ["strict", "permissive", "neutral"],
    "approvals": 3,
    "veto_holders": [],
    "min_confidence": 0.5,
    "abstentions": "deny",
}
DENIED_PURPOSE = "bulk-export"
STEP_UP_PURPOSE = "incident-response"
NOTES = {
    "customer-42-notes": b"Customer 42 prefers email, works in the Lisbon office, renewal quote due Tuesday.",
    "run-1138-transcript": b"Agent run 1138: summarised the outage ticket and proposed a rollback plan.",
}


def support_rules() -> str:
    """The default rule set without the night-time step-up, plus a deny for bulk exports and a step-up for
    incident response (YAML text)."""
    text = (resources.files("reliquary.trust.rules") / "default_rules.yaml").read_text(encoding="utf-8")
    rules: dict[str, Any] = yaml.safe_load(text)
    rules["name"] = "support-desk"
    rules["description"] = "The default rules for a desk that works around the clock; no bulk exports."
    kept = [rule for rule in rules["rules"] if rule["id"] != "step-up-night-sensitive"]
    kept.insert(
        0,
        {
            "id": "deny-bulk-export",
            "description": "Memory is read one item at a time, never exported in bulk.",
            "when": {"all": [{"fact": "purpose", "eq": DENIED_PURPOSE}]},
            "effect": "deny",
            "reason": "bulk export of agent memory is not allowed",
        },
    )
    kept.insert(
        1,
        {
            "id": "step-up-incident-response",
            "description": "Incident responders prove possession of an enrolled device again, on its own.",
            "when": {"all": [{"fact": "purpose", "eq": STEP_UP_PURPOSE}]},
            "effect": {"step_up": {"circuit": "device_proof"}},
            "reason": "incident response needs a fresh device proof",
        },
    )
    rules["rules"] = kept
    return yaml.safe_dump(rules, sort_keys=False)


@dataclass
class DemoTenant:
    """What ``seed`` made: the tenant, its vaults, their items' plaintexts and the enrolled requesters."""

    tenant: str
    vaults: tuple[str, ...]
    items: dict[str, bytes]
    requesters: list[Requester] = field(default_factory=list)

    def requester(self, index: int = 0) -> Requester:
        return self.requesters[index]


def seed(
    access: LocalAccess, *, requesters: int = 2, tenant: str = TENANT, permanent: Sequence[str] = ()
) -> DemoTenant:
    """Create the demo tenant's vaults, policies, items and ``requesters`` enrolled devices; for each
    backend in ``permanent`` ("ipfs", "arweave"), also a vault ``archive-<backend>`` whose bodies go there,
    with the support vault's policies and items."""
    people = [
        Requester(subject=f"support-agent-{n}", seed=f"device-{uuid.uuid4().hex[:12]}")
        for n in range(requesters)
    ]
    rules = support_rules()
    archives = {f"{ARCHIVE_PREFIX}{backend}": backend for backend in permanent}
    for vault in (SUPPORT_VAULT, STRICT_VAULT, UNANIMOUS_VAULT, *archives):
        access.create_vault(tenant, vault, permanent_storage=archives.get(vault))
        access.set_context_policy(tenant, vault, people)
        trust = {"template": "strict"} if vault == STRICT_VAULT else SUPPORT_TRUST
        access.set_trust_policy(tenant, vault, {**trust, "rules": rules})
        quorum = UNANIMOUS_QUORUM if vault == UNANIMOUS_VAULT else SUPPORT_QUORUM
        access.set_quorum_policy(tenant, vault, quorum)
        for item, plaintext in NOTES.items():
            access.seal(tenant, vault, item, plaintext, scope=("user", "customer-42"))
    return DemoTenant(tenant, (SUPPORT_VAULT, STRICT_VAULT, UNANIMOUS_VAULT, *archives), dict(NOTES), people)
