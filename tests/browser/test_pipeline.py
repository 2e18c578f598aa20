"""The browser pipeline itself: Debian's Chromium under Playwright registers a passkey with the CDP
virtual authenticator on a loopback page and signs in with it, and py_webauthn accepts both ceremonies.
If this fails, the approval page's test cannot tell its own failures from the pipeline's."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import webauthn
from playwright.sync_api import Page
from webauthn.helpers.exceptions import InvalidAuthenticationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from tests.support.browser import add_virtual_authenticator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The page's part of each ceremony: options JSON in, the browser's response JSON (base64url) out.
CODEC = """
const toBytes = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')
  + '='.repeat((4 - s.length % 4) % 4)), (c) => c.charCodeAt(0));
const toText = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
  .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
"""
CREATE = (
    "async (options) => {"
    + CODEC
    + """
  options.challenge = toBytes(options.challenge);
  options.user.id = toBytes(options.user.id);
  const credential = await navigator.credentials.create({publicKey: options});
  return {id: credential.id, rawId: toText(credential.rawId), type: credential.type,
    response: {clientDataJSON: toText(credential.response.clientDataJSON),
      attestationObject: toText(credential.response.attestationObject),
      transports: credential.response.getTransports()},
    clientExtensionResults: credential.getClientExtensionResults()};
}"""
)
GET = (
    "async (options) => {"
    + CODEC
    + """
  options.challenge = toBytes(options.challenge);
  const credential = await navigator.credentials.get({publicKey: options});
  return {id: credential.id, rawId: toText(credential.rawId), type: credential.type,
    response: {clientDataJSON: toText(credential.response.clientDataJSON),
      authenticatorData: toText(credential.response.authenticatorData),
      signature: toText(credential.response.signature),
      userHandle: toText(credential.response.userHandle)},
    clientExtensionResults: credential.getClientExtensionResults()};
}"""
)


class _Blank(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>pipeline</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002  (quiet: no access log)
        return


@pytest.fixture
def origin() -> Iterator[str]:
    """A page on http://localhost:<port>: a secure context, whose RP id is ``localhost``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Blank)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def test_chromium_registers_and_signs_in_with_a_virtual_passkey(page: Page, origin: str) -> None:
    authenticator = add_virtual_authenticator(page)
    page.goto(f"{origin}/")
    user_id = secrets.token_bytes(16)
    creation = webauthn.generate_registration_options(
        rp_id="localhost",
        rp_name="RELIQUARY pipeline",
        user_name="approver@example.test",
        user_id=user_id,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
    )
    registration = page.evaluate(CREATE, json.loads(webauthn.options_to_json(creation)))
    registered = webauthn.verify_registration_response(
        credential=registration,
        expected_challenge=creation.challenge,
        expected_rp_id="localhost",
        expected_origin=origin,
        require_user_verification=True,
    )
    assert registered.user_verified
    held = authenticator.credentials()
    assert len(held) == 1
    assert base64.b64decode(held[0]["credentialId"]) == registered.credential_id
    assert held[0]["rpId"] == "localhost"
    assert held[0]["isResidentCredential"] is True
    assert base64.b64decode(held[0]["userHandle"]) == user_id

    # Discoverable sign-in: no allowCredentials, the authenticator picks the passkey and names the user.
    request = webauthn.generate_authentication_options(
        rp_id="localhost", user_verification=UserVerificationRequirement.REQUIRED
    )
    assertion = page.evaluate(GET, json.loads(webauthn.options_to_json(request)))
    assert _b64(assertion["response"]["userHandle"]) == user_id
    signed_in = webauthn.verify_authentication_response(
        credential=assertion,
        expected_challenge=request.challenge,
        expected_rp_id="localhost",
        expected_origin=origin,
        credential_public_key=registered.credential_public_key,
        credential_current_sign_count=registered.sign_count,
        require_user_verification=True,
    )
    assert signed_in.credential_id == registered.credential_id
    assert signed_in.new_sign_count > registered.sign_count
    # The assertion is bound to its challenge: the same response under another challenge is refused.
    with pytest.raises(InvalidAuthenticationResponse):
        webauthn.verify_authentication_response(
            credential=assertion,
            expected_challenge=secrets.token_bytes(32),
            expected_rp_id="localhost",
            expected_origin=origin,
            credential_public_key=registered.credential_public_key,
            credential_current_sign_count=registered.sign_count,
            require_user_verification=True,
        )
