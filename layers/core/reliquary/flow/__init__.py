"""The access flow: its one state model (``state``), the stage attestations every stage signs and checks
(``attestation``), the stage keys (``keys``) and the checks of a state's chain (``checks``)."""
