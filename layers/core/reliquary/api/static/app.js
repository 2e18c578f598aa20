// RELIQUARY's approval page: register a passkey (an enrollment link), sign in with it, list the access
// requests waiting for a person and approve or deny each with a passkey assertion.
//
// What it never does: keep a token anywhere but in this script's memory (no storage, no cookie: a reload
// signs out), put data into the document as markup (every value goes in through textContent), load
// anything from elsewhere (the Content-Security-Policy allows this script and the API only).
'use strict';

(() => {
  // The API's root: the page is served at <root>/approve (behind API Gateway <root> carries the stage).
  const API_ROOT = new URL('.', window.location.href);
  const ENROLL_PREFIX = '#enroll=';

  let enrollmentToken = null;
  let session = null; // {token, expiresAt (ms), person}
  let busy = false;

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------ base64url <-> bytes
  // WebAuthn's JSON (and py_webauthn's) carries binary as base64url without padding.
  const BASE64URL = /^[A-Za-z0-9_-]*$/;

  function bytesFromBase64url(text) {
    if (typeof text !== 'string' || !BASE64URL.test(text) || text.length % 4 === 1) {
      throw new PageError('The server sent a malformed value', 'A binary field is not base64url.');
    }
    const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
    const raw = atob(padded);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function base64urlFromBytes(buffer) {
    const bytes = buffer instanceof ArrayBuffer ? new Uint8Array(buffer)
      : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    let raw = '';
    // In slices: String.fromCharCode(...bytes) overflows the argument limit on large inputs.
    for (let i = 0; i < bytes.length; i += 0x8000) {
      raw += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(raw).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  // --------------------------------------------------------------------------------------- errors
  class PageError extends Error {
    constructor(title, detail, status = 0) {
      super(title);
      this.title = title;
      this.detail = detail;
      this.status = status;
    }
  }

  // What a person should read when their browser or authenticator refused (DOMException names).
  const CEREMONY_ERRORS = {
    NotAllowedError: ['The passkey was not used',
      'The request was cancelled, timed out, or no passkey of this site is on this device.'],
    InvalidStateError: ['This passkey is already registered',
      'This authenticator already holds a passkey of yours: sign in with it.'],
    SecurityError: ['The browser refused the passkey',
      'This page\'s address does not match the service\'s passkey domain.'],
    NotSupportedError: ['This authenticator cannot be used', 'It supports none of the service\'s algorithms.'],
    AbortError: ['The passkey request was cancelled', 'Try again.'],
  };

  function asPageError(error) {
    if (error instanceof PageError) return error;
    if (error && CEREMONY_ERRORS[error.name]) return new PageError(...CEREMONY_ERRORS[error.name]);
    if (error instanceof TypeError) {
      return new PageError('The service could not be reached', 'Check the connection and try again.');
    }
    return new PageError('Something went wrong', 'Reload the page and try again.');
  }

  function showError(error) {
    const problem = asPageError(error);
    if (problem.status === 401 && session) signOut('');
    $('error-title').textContent = problem.title;
    $('error-detail').textContent = problem.detail || '';
    $('error').hidden = false;
  }

  function say(text) {
    $('error').hidden = true;
    $('status').textContent = text;
  }

  // ------------------------------------------------------------------------------------------ HTTP
  async function api(method, path, { body, token } = {}) {
    const headers = { Accept: 'application/json, application/problem+json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(new URL(path, API_ROOT), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
    });
    let data = null;
    try {
      data = await response.json();
    } catch (ignored) {
      data = null;
    }
    if (!response.ok) {
      // An RFC 9457 problem: its title and detail, never the raw body.
      const title = data && typeof data.title === 'string' ? data.title : `The service answered ${response.status}`;
      const detail = data && typeof data.detail === 'string' ? data.detail : '';
      throw new PageError(title, detail, response.status);
    }
    if (data === null || typeof data !== 'object') {
      throw new PageError('The service sent an unreadable answer', `HTTP ${response.status}`);
    }
    return data;
  }

  function bearer() {
    if (!session || Date.now() >= session.expiresAt) {
      signOut('Your session ended: sign in again.');
      throw new PageError('Signed out', 'Your session ended: sign in again.', 401);
    }
    return session.token;
  }

  // ---------------------------------------------------------------------- WebAuthn, JSON <-> the API
  function creationOptions(json) {
    const options = { ...json, challenge: bytesFromBase64url(json.challenge) };
    options.user = { ...json.user, id: bytesFromBase64url(json.user.id) };
    options.excludeCredentials = (json.excludeCredentials || []).map(
      (c) => ({ ...c, id: bytesFromBase64url(c.id) }),
    );
    return options;
  }

  function requestOptions(json) {
    const options = { ...json, challenge: bytesFromBase64url(json.challenge) };
    options.allowCredentials = (json.allowCredentials || []).map(
      (c) => ({ ...c, id: bytesFromBase64url(c.id) }),
    );
    return options;
  }

  function registrationJSON(credential) {
    const { response } = credential;
    return {
      id: credential.id,
      rawId: base64urlFromBytes(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      response: {
        clientDataJSON: base64urlFromBytes(response.clientDataJSON),
        attestationObject: base64urlFromBytes(response.attestationObject),
        transports: typeof response.getTransports === 'function' ? response.getTransports() : [],
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function assertionJSON(credential) {
    const { response } = credential;
    return {
      id: credential.id,
      rawId: base64urlFromBytes(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      response: {
        clientDataJSON: base64urlFromBytes(response.clientDataJSON),
        authenticatorData: base64urlFromBytes(response.authenticatorData),
        signature: base64urlFromBytes(response.signature),
        userHandle: response.userHandle ? base64urlFromBytes(response.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  async function assertWith(options) {
    return assertionJSON(await navigator.credentials.get({ publicKey: requestOptions(options) }));
  }

  // ------------------------------------------------------------------------------------ the screens
  function show(screen) {
    for (const id of ['enroll', 'sign-in', 'approvals']) $(id).hidden = id !== screen;
    $('sign-out').hidden = !session;
    $('who').textContent = session ? `Signed in as ${session.person.name}` : '';
  }

  function signOut(message) {
    session = null;
    $('list').replaceChildren();
    show('sign-in');
    if (message) say(message);
  }

  async function withBusy(button, work) {
    if (busy) return;
    busy = true;
    const buttons = document.querySelectorAll('button');
    for (const b of buttons) b.disabled = true;
    try {
      await work();
    } catch (error) {
      showError(error);
    } finally {
      for (const b of buttons) b.disabled = false;
      busy = false;
      if (button) button.focus();
    }
  }

  async function register() {
    say('Waiting for your authenticator…');
    const { challenge_id: challengeId, options } = await api(
      'POST', 'v1/webauthn/registration/options', { body: {}, token: enrollmentToken },
    );
    const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
    const label = $('passkey-label').value.trim();
    const body = { challenge_id: challengeId, credential: registrationJSON(credential) };
    if (label) body.label = label;
    await api('POST', 'v1/webauthn/registration/verify', { body, token: enrollmentToken });
    enrollmentToken = null; // used: an enrollment registers one passkey
    show('sign-in');
    say('Your passkey is registered. Sign in with it.');
  }

  async function signIn() {
    say('Waiting for your passkey…');
    const { challenge_id: challengeId, options } = await api(
      'POST', 'v1/webauthn/authentication/options', { body: {} },
    );
    const credential = await assertWith(options);
    const answer = await api(
      'POST', 'v1/webauthn/authentication/verify', { body: { challenge_id: challengeId, credential } },
    );
    session = {
      token: answer.access_token,
      // A little early: a request must not leave with a token about to expire in flight.
      expiresAt: Date.now() + Math.max(0, Number(answer.expires_in) - 10) * 1000,
      person: answer.person,
    };
    show('approvals');
    say(`Signed in as ${answer.person.name}.`);
    await refresh();
  }

  async function refresh() {
    const { approvals } = await api('GET', 'v1/approvals', { token: bearer() });
    render(Array.isArray(approvals) ? approvals : []);
  }

  async function decide(approval, decision) {
    const id = encodeURIComponent(approval.request_id);
    say(`Confirm with your passkey to ${decision} ${approval.item_id}…`);
    const challenge = await api(
      'POST', `v1/approvals/${id}/challenge`, { body: { decision }, token: bearer() },
    );
    const credential = await assertWith(challenge.options);
    const result = await api('POST', `v1/approvals/${id}`, {
      body: { decision, nonce: challenge.nonce, issued_at: challenge.issued_at, credential },
      token: bearer(),
    });
    const verb = result.decision === 'approve' ? 'approved' : 'denied';
    const tail = result.complete
      ? (result.decision === 'approve' ? 'enough people approved: the request goes on.' : 'the request is denied.')
      : `${result.approvals} of ${result.required} approvals so far.`;
    say(`You ${verb} ${approval.item_id}: ${tail}`);
    await refresh();
  }

  // ------------------------------------------------------------------------------------- rendering
  const text = (value) => (value === null || value === undefined ? '—' : String(value));
  // The API's times are epoch seconds.
  const when = (value) => {
    const date = typeof value === 'number' ? new Date(value * 1000) : new Date(NaN);
    return Number.isNaN(date.getTime()) ? text(value) : date.toLocaleString();
  };
  const number = (value, digits) => (typeof value === 'number' ? value.toFixed(digits) : text(value));

  function row(cells) {
    const tr = document.createElement('tr');
    for (const cell of cells) {
      const td = document.createElement('td');
      td.textContent = text(cell);
      tr.append(td);
    }
    return tr;
  }

  function card(approval) {
    const node = $('approval-template').content.firstElementChild.cloneNode(true);
    const field = (name) => node.querySelector(`[data-field="${name}"]`);
    node.dataset.requestId = approval.request_id;
    field('title').textContent = `${text(approval.item_id)} in ${text(approval.vault_id)}`;
    field('requester').textContent = text(approval.requester);
    field('sensitivity').textContent = text(approval.sensitivity);
    field('purpose').textContent = text(approval.purpose);
    field('region').textContent = text(approval.region);
    const trust = approval.trust || {};
    field('trust').textContent = `${number(trust.score, 2)} (${text(trust.band)}, ${text(trust.effect)})`;
    const approvals = Array.isArray(approval.approvals) ? approval.approvals : [];
    const agreed = approvals.filter((a) => a.vote === 'approve').length;
    field('progress').textContent = `${agreed} of ${text(approval.required)} needed`;
    field('created').textContent = when(approval.created_at);
    field('expires').textContent = when(approval.expires_at);
    field('factors').replaceChildren(...(trust.factors || []).map(
      (f) => row([f.name, number(f.value, 2), number(-f.contribution, 3)]),
    ));
    field('votes').replaceChildren(...(approval.votes || []).map(
      (v) => row([v.agent, v.vote, number(v.confidence, 2), v.rationale]),
    ));
    field('approvals').replaceChildren(...(approvals.length ? approvals.map((a) => {
      const li = document.createElement('li');
      li.textContent = `${text(a.name || a.person_id)}: ${text(a.vote)} (${when(a.decided_at)})`;
      return li;
    }) : [Object.assign(document.createElement('li'), { textContent: 'nobody yet' })]));
    for (const button of node.querySelectorAll('button[data-decision]')) {
      button.addEventListener('click', () => withBusy(button, () => decide(approval, button.dataset.decision)));
    }
    return node;
  }

  function render(approvals) {
    $('list').replaceChildren(...approvals.map(card));
    $('empty').hidden = approvals.length > 0;
  }

  // ----------------------------------------------------------------------------------------- start
  function start() {
    $('register').addEventListener('click', (e) => withBusy(e.currentTarget, register));
    $('sign-in-button').addEventListener('click', (e) => withBusy(e.currentTarget, signIn));
    $('refresh').addEventListener('click', (e) => withBusy(e.currentTarget, refresh));
    $('sign-out').addEventListener('click', () => signOut('Signed out.'));

    if (!window.PublicKeyCredential || !navigator.credentials) {
      show(null);
      showError(new PageError('Passkeys are not available here',
        'Open this page in a current browser, over HTTPS (or on localhost).'));
      return;
    }
    const { hash } = window.location;
    if (hash.startsWith(ENROLL_PREFIX)) {
      enrollmentToken = decodeURIComponent(hash.slice(ENROLL_PREFIX.length));
      // Out of the address bar and the history at once: the link is a credential until it is used.
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
      show('enroll');
      return;
    }
    show('sign-in');
  }

  start();
})();
