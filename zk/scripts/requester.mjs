#!/usr/bin/env node
// A requester's device, long-lived: proves many access requests in one process (the circuits, the
// proving keys and Poseidon load once), for the local runtime's demo, the end-to-end tests and the
// benchmarks. Each device is a seed (its private values derive from it, as in inputs.mjs).
//
// usage: node scripts/requester.mjs      then one JSON request per line on stdin, one answer per line:
//   {"op": "policy", "seed": S}
//       -> {"ok": true, "policy": {device_commitments, region_root, pattern_commitments, min_pattern_matches}}
//   {"op": "prove", "seed": S, "tenant_id": T, "vault_id": V, "item_id": I, "request_id": ID,
//    "requester_key_sha256": HEX, "nonce": HEX, "now": UNIX, "circuit": "context_proof"}
//       -> {"ok": true, "proof": <snarkjs proof>, "public_signals": [<decimal strings>]}
//       the proof is bound to that whole request (request_hash: inputs.mjs requestHash) and the nonce;
//       every binding field is required (no example defaults here)
//   any failure -> {"ok": false, "error": "..."}; the process keeps serving. EOF on stdin ends it.
import { createInterface } from "node:readline";

import * as snarkjs from "snarkjs";

import { isCircuit, paths, releaseCurves, writeStdout } from "./common.mjs";
import { makeInputs } from "./inputs.mjs";

async function answer(request) {
  if (request === null || typeof request !== "object") throw new Error("a request is a JSON object");
  const { op, seed } = request;
  if (typeof seed !== "string" || seed.length === 0) throw new Error("seed: a non-empty string");
  if (op === "policy") {
    const { meta } = await makeInputs({ seed });
    return { policy: meta.policy };
  }
  if (op === "prove") {
    const circuit = request.circuit ?? "context_proof";
    if (!isCircuit(circuit)) throw new Error(`unknown circuit ${circuit}`);
    for (const name of ["tenant_id", "vault_id", "item_id", "request_id", "requester_key_sha256", "nonce"]) {
      if (typeof request[name] !== "string") throw new Error(`${name}: required`);
    }
    const { inputs } = await makeInputs({
      seed,
      tenantId: request.tenant_id,
      vaultId: request.vault_id,
      itemId: request.item_id,
      requestId: request.request_id,
      requesterKeySha256: request.requester_key_sha256,
      nonceHex: request.nonce,
      now: request.now ?? Math.floor(Date.now() / 1000),
    });
    const { proof, publicSignals } = await snarkjs.groth16.fullProve(
      inputs[circuit],
      paths.wasm(circuit),
      paths.zkey(circuit),
    );
    return { proof, public_signals: publicSignals };
  }
  throw new Error(`op: "policy" or "prove", not ${JSON.stringify(op)}`);
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply;
  try {
    reply = { ok: true, ...(await answer(JSON.parse(line))) };
  } catch (err) {
    reply = { ok: false, error: String(err?.message ?? err).split("\n")[0] };
  }
  await writeStdout(`${JSON.stringify(reply)}\n`);
}
await releaseCurves();
