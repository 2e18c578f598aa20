#!/usr/bin/env node
// Valid example inputs for every circuit, deterministic from a seed (a fresh seed gives fresh-but-valid
// inputs). The public values a verifier needs (device_commitment, region_root, timestamp_commitment,
// pattern_commitment, ...) are public inputs, so they are part of each circuit's input; --public prints
// them per circuit together with the nullifier the proof will output, and a matching vault policy.
//
// usage: node scripts/inputs.mjs [options]
//   --seed S            seed of every private value (default "reliquary-example")
//   --tenant-id ID, --vault-id ID, --item-id ID, --request-id ID, --requester-key-sha256 HEX
//                       the request the proofs are bound to: request_hash = requestHash(...) below
//                       (defaults: the example's acme, agent-memory, customer-42-notes, access-0002 and
//                       the SHA-256 of events/access/request.json's requester_public_key)
//   --nonce HEX         the service's nonce, 62 hex characters = 31 bytes, big-endian
//                       (default: SHA-256("reliquary-zk-inputs/<seed>/nonce"), first 31 bytes)
//   --now UNIX|now      the requester's timestamp in seconds (default 1767225600 = 2026-01-01T00:00:00Z);
//                       the window is [now - 900, now + 900]
//   --regions A,B,...   the allowed regions, leaves 0..n-1 of the region tree
//                       (default eu-west-1,eu-central-1,eu-north-1,us-east-1,ap-southeast-2)
//   --region NAME       the requester's region (default: one of the allowed ones, chosen by the seed)
//   --threshold N       minimum number of matching access events (default 6; the example matches 7 of 8)
//   --circuit NAME      print only this circuit's input object (e.g. to pipe into prove.mjs -)
//   --public            print the derived public values per circuit (and a policy) instead of inputs
//   --out DIR           write DIR/<circuit>.json for every circuit instead of printing
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import { buildPoseidon } from "circomlibjs";

import { CIRCUITS, FIELD_MODULUS, isCircuit, writeStdout } from "./common.mjs";

export const DEPTH = 16;
export const EVENTS = 8;
export const DEFAULT_SEED = "reliquary-example";
export const DEFAULT_TENANT_ID = "acme";
export const DEFAULT_VAULT_ID = "agent-memory";
export const DEFAULT_ITEM_ID = "customer-42-notes";
export const DEFAULT_REQUEST_ID = "access-0002";
// SHA-256 of the example requester's hybrid public key (events/access/request.json, requester_public_key).
export const DEFAULT_REQUESTER_KEY_SHA256 = "31ae98ce7ae5bcaa022279ef7fbd53b3fbd088197bca6f29ebe9b59a53281e35";
export const REQUEST_BINDING_DOMAIN = "reliquary/zk/request-binding/v1";
export const DEFAULT_NOW = 1767225600;
export const WINDOW_HALF_SECONDS = 900;
export const DEFAULT_REGIONS = ["eu-west-1", "eu-central-1", "eu-north-1", "us-east-1", "ap-southeast-2"];
export const EVENT_CODES = [
  "vault.open", "item.read", "item.list", "item.write", "key.rotate", "audit.read", "item.grant", "session.refresh",
];

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest();
const toBig = (bytes) => BigInt(`0x${Buffer.from(bytes).toString("hex") || "0"}`);

// int(SHA-256(text)) >> 8: 248 bits, always below r. Used for event codes.
export function hash248(text) {
  return toBig(sha256(text)) >> 8n;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

// The public signal binding a proof to one whole request, as reliquary.zk.policy.request_hash computes
// it: SHA-256 over the domain tag, tenant, vault, item, request id and the requester key's SHA-256 (hex),
// each as a 4-byte big-endian length and its UTF-8 bytes; the top 248 bits (always below r).
export function requestHash({ tenantId, vaultId, itemId, requestId, requesterKeySha256 }) {
  for (const [name, value] of [["tenant_id", tenantId], ["vault_id", vaultId], ["item_id", itemId], ["request_id", requestId]]) {
    if (typeof value !== "string" || !ID.test(value)) throw new Error(`${name}: 1-128 of [A-Za-z0-9._:@-], starting with a letter or digit`);
  }
  if (typeof requesterKeySha256 !== "string" || !/^[0-9a-f]{64}$/.test(requesterKeySha256)) {
    throw new Error("requester_key_sha256: 64 lower-case hex characters");
  }
  const hash = createHash("sha256");
  for (const value of [REQUEST_BINDING_DOMAIN, tenantId, vaultId, itemId, requestId, requesterKeySha256]) {
    const bytes = Buffer.from(value, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    hash.update(length).update(bytes);
  }
  return toBig(hash.digest()) >> 8n;
}

// A region code as a field element: the big-endian integer of its UTF-8 bytes (at most 31 bytes).
export function regionCode(region) {
  const bytes = Buffer.from(region, "utf8");
  if (bytes.length === 0 || bytes.length > 31) throw new Error(`a region name is 1 to 31 UTF-8 bytes: ${region}`);
  return toBig(bytes);
}

export function nonceValue(hex) {
  if (!/^[0-9a-f]{62}$/.test(hex)) throw new Error("the nonce is 62 lower-case hex characters (31 bytes)");
  return BigInt(`0x${hex}`);
}

// Building Poseidon's constants takes most of a second: once per process.
let poseidonReady;

export async function makeInputs({
  seed = DEFAULT_SEED,
  tenantId = DEFAULT_TENANT_ID,
  vaultId = DEFAULT_VAULT_ID,
  itemId = DEFAULT_ITEM_ID,
  requestId = DEFAULT_REQUEST_ID,
  requesterKeySha256 = DEFAULT_REQUESTER_KEY_SHA256,
  nonceHex,
  now = DEFAULT_NOW,
  regions = DEFAULT_REGIONS,
  region,
  threshold = 6,
} = {}) {
  poseidonReady ??= buildPoseidon();
  const poseidon = await poseidonReady;
  const H = (...xs) => poseidon.F.toObject(poseidon(xs));
  const derive = (label) => hash248(`reliquary-zk-inputs/${seed}/${label}`);

  nonceHex ??= sha256(`reliquary-zk-inputs/${seed}/nonce`).subarray(0, 31).toString("hex");
  const nonce = nonceValue(nonceHex);
  const request_hash = requestHash({ tenantId, vaultId, itemId, requestId, requesterKeySha256 });

  // device
  const device_secret = derive("device_secret");
  const device_salt = derive("device_salt");
  const device_commitment = H(device_secret, device_salt);
  const nullifier = H(device_secret, nonce);

  // region tree: leaves Poseidon(region_code) at indices 0..n-1, empty leaves 0
  if (regions.length === 0 || regions.length > 2 ** DEPTH) throw new Error("1 to 65536 regions");
  const leaves = regions.map((r) => H(regionCode(r)));
  region ??= regions[Number(derive("region") % BigInt(regions.length))];
  const index = regions.indexOf(region);
  if (index < 0) throw new Error(`the region ${region} is not one of the allowed regions`);
  const zeros = [0n];
  for (let i = 0; i < DEPTH; i++) zeros.push(H(zeros[i], zeros[i]));
  let level = leaves;
  const siblings = [];
  const path_bits = [];
  let position = index;
  for (let i = 0; i < DEPTH; i++) {
    const sibling = position ^ 1;
    siblings.push(sibling < level.length ? level[sibling] : zeros[i]);
    path_bits.push(position & 1);
    const next = [];
    for (let j = 0; j < level.length; j += 2) next.push(H(level[j], j + 1 < level.length ? level[j + 1] : zeros[i]));
    level = next;
    position >>= 1;
  }
  const region_root = level[0];

  // time window
  if (!Number.isSafeInteger(now) || now < WINDOW_HALF_SECONDS) throw new Error("--now is a Unix time in seconds");
  const timestamp = BigInt(now);
  const timestamp_salt = derive("timestamp_salt");
  const timestamp_commitment = H(timestamp, timestamp_salt);
  const window_start = timestamp - BigInt(WINDOW_HALF_SECONDS);
  const window_end = timestamp + BigInt(WINDOW_HALF_SECONDS);

  // access pattern: the expected last 8 events, and the actual ones with one position different
  const codeAt = (label) => EVENT_CODES[Number(derive(label) % BigInt(EVENT_CODES.length))];
  const patternCodes = Array.from({ length: EVENTS }, (_, i) => codeAt(`pattern/${i}`));
  const eventCodes = [...patternCodes];
  const miss = Number(derive("mismatch") % BigInt(EVENTS));
  eventCodes[miss] = EVENT_CODES[(EVENT_CODES.indexOf(patternCodes[miss]) + 1) % EVENT_CODES.length];
  const pattern = patternCodes.map(hash248);
  const events = eventCodes.map(hash248);
  const pattern_salt = derive("pattern_salt");
  const pattern_commitment = H(...pattern, pattern_salt);
  if (!Number.isInteger(threshold) || threshold < 0 || threshold > 31) throw new Error("--threshold is 0..31");

  const dec = (x) => x.toString();
  const decs = (xs) => xs.map(dec);
  const binding = { nonce: dec(nonce), request_hash: dec(request_hash) };
  const device = { device_secret: dec(device_secret), device_salt: dec(device_salt) };
  const location = { region_code: dec(regionCode(region)), siblings: decs(siblings), path_bits: decs(path_bits.map(BigInt)) };
  const time = { timestamp: dec(timestamp), timestamp_salt: dec(timestamp_salt) };
  const access = { events: decs(events), pattern: decs(pattern), pattern_salt: dec(pattern_salt) };
  const pub = {
    device_commitment: dec(device_commitment),
    region_root: dec(region_root),
    timestamp_commitment: dec(timestamp_commitment),
    window_start: dec(window_start),
    window_end: dec(window_end),
    pattern_commitment: dec(pattern_commitment),
    threshold: String(threshold),
  };
  for (const value of [nonce, request_hash, ...Object.values(pub).map(BigInt)]) {
    if (value >= FIELD_MODULUS) throw new Error("a public value is not below r");
  }

  const inputs = {
    device_proof: { ...device, device_commitment: pub.device_commitment, ...binding },
    location_chain: { ...location, region_root: pub.region_root, ...binding },
    timestamp_verifier: {
      ...time,
      timestamp_commitment: pub.timestamp_commitment,
      window_start: pub.window_start,
      window_end: pub.window_end,
      ...binding,
    },
    pattern_match: { ...access, pattern_commitment: pub.pattern_commitment, threshold: pub.threshold, ...binding },
    context_proof: { ...device, ...location, ...time, ...access, ...pub, ...binding },
  };
  // The public signals each proof will carry, by name (nullifier: the output of the two device circuits).
  const publicValues = {
    device_proof: { nullifier: dec(nullifier), device_commitment: pub.device_commitment, ...binding },
    location_chain: { region_root: pub.region_root, ...binding },
    timestamp_verifier: {
      timestamp_commitment: pub.timestamp_commitment,
      window_start: pub.window_start,
      window_end: pub.window_end,
      ...binding,
    },
    pattern_match: { pattern_commitment: pub.pattern_commitment, threshold: pub.threshold, ...binding },
    context_proof: { nullifier: dec(nullifier), ...pub, ...binding },
  };
  const meta = {
    seed,
    tenant_id: tenantId,
    vault_id: vaultId,
    item_id: itemId,
    request_id: requestId,
    requester_key_sha256: requesterKeySha256,
    nonce_hex: nonceHex,
    now,
    regions,
    region,
    region_index: index,
    pattern_codes: patternCodes,
    event_codes: eventCodes,
    matches: EVENTS - 1,
    // What a vault's context policy would hold for these proofs (reliquary.zk.policy.ContextPolicy).
    policy: {
      device_commitments: [pub.device_commitment],
      region_root: pub.region_root,
      pattern_commitments: [pub.pattern_commitment],
      min_pattern_matches: threshold,
    },
  };
  return { inputs, publicValues, meta };
}

async function main() {
  const { values } = parseArgs({
    options: {
      seed: { type: "string" },
      "tenant-id": { type: "string" },
      "vault-id": { type: "string" },
      "item-id": { type: "string" },
      "request-id": { type: "string" },
      "requester-key-sha256": { type: "string" },
      nonce: { type: "string" },
      now: { type: "string" },
      regions: { type: "string" },
      region: { type: "string" },
      threshold: { type: "string" },
      circuit: { type: "string" },
      public: { type: "boolean", default: false },
      out: { type: "string" },
    },
    strict: true,
  });
  const now = values.now === undefined ? undefined : values.now === "now" ? Math.floor(Date.now() / 1000) : Number(values.now);
  const { inputs, publicValues, meta } = await makeInputs({
    seed: values.seed,
    tenantId: values["tenant-id"],
    vaultId: values["vault-id"],
    itemId: values["item-id"],
    requestId: values["request-id"],
    requesterKeySha256: values["requester-key-sha256"],
    nonceHex: values.nonce,
    now,
    regions: values.regions?.split(",").map((r) => r.trim()).filter(Boolean),
    region: values.region,
    threshold: values.threshold === undefined ? undefined : Number(values.threshold),
  });
  if (values.circuit !== undefined && !isCircuit(values.circuit)) {
    throw new Error(`unknown circuit ${values.circuit} (one of ${CIRCUITS.join(", ")})`);
  }
  if (values.out !== undefined) {
    mkdirSync(values.out, { recursive: true });
    for (const name of values.circuit ? [values.circuit] : CIRCUITS) {
      writeFileSync(path.join(values.out, `${name}.json`), `${JSON.stringify(inputs[name], null, 2)}\n`);
    }
    return;
  }
  let document;
  if (values.public) {
    document = values.circuit ? publicValues[values.circuit] : { ...meta, public: publicValues };
  } else {
    document = values.circuit ? inputs[values.circuit] : inputs;
  }
  await writeStdout(`${JSON.stringify(document, null, 2)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("inputs.mjs")) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`inputs: ${err.message}\n`);
      process.exit(64);
    },
  );
}
