#!/usr/bin/env node
// CI check of the committed keys (no ceremony is redone): for every circuit,
//   - the verification key exported from the committed zkey equals the committed vkey JSON;
//   - the signal-name list has one name per public signal of the key;
//   - the example proof verifies with the committed vkey;
//   - the committed artifacts are the ones ceremony/transcript.json records (SHA-256);
//   - the copies shipped with the Python core (layers/core/reliquary/zk/keys), if present, are identical.
// Exits non-zero with one line per problem.
//
// usage: node scripts/check-keys.mjs      (npm run check-keys)
import { existsSync } from "node:fs";
import path from "node:path";

import * as snarkjs from "snarkjs";

import { CIRCUITS, ROOT, canonicalJson, paths, readJson, releaseCurves, sha256File } from "./common.mjs";

const CORE_KEYS = path.join(ROOT, "..", "layers", "core", "reliquary", "zk", "keys");

async function check() {
  const problems = [];
  const transcript = existsSync(paths.transcript) ? readJson(paths.transcript) : null;
  if (!transcript) problems.push(`missing ${path.relative(ROOT, paths.transcript)}`);

  for (const name of CIRCUITS) {
    const missing = [paths.zkey(name), paths.vkey(name), paths.signals(name), paths.wasm(name)].filter((f) => !existsSync(f));
    if (missing.length) {
      problems.push(`${name}: missing ${missing.map((f) => path.relative(ROOT, f)).join(", ")}`);
      continue;
    }
    const committed = readJson(paths.vkey(name));
    const exported = await snarkjs.zKey.exportVerificationKey(paths.zkey(name));
    if (canonicalJson(exported) !== canonicalJson(committed)) {
      problems.push(`${name}: keys/${name}.vkey.json is not the verification key of keys/${name}.zkey (re-export it, or rebuild)`);
    }
    const signals = readJson(paths.signals(name));
    if (!Array.isArray(signals) || signals.length !== committed.nPublic || signals.some((s) => typeof s !== "string")) {
      problems.push(`${name}: keys/${name}.signals.json must list ${committed.nPublic} signal names`);
    }
    if (existsSync(paths.exampleProof(name)) && existsSync(paths.examplePublic(name))) {
      const ok = await snarkjs.groth16.verify(committed, readJson(paths.examplePublic(name)), readJson(paths.exampleProof(name)));
      if (!ok) problems.push(`${name}: the example proof does not verify with keys/${name}.vkey.json`);
    } else {
      problems.push(`${name}: missing the example proof in examples/proofs`);
    }
    if (transcript) {
      const recorded = new Map((transcript.artifacts?.[name] ?? []).map((a) => [a.path, a.sha256]));
      for (const file of [paths.zkey(name), paths.vkey(name), paths.signals(name), paths.wasm(name)]) {
        const key = path.relative(ROOT, file);
        const want = recorded.get(key);
        if (want === undefined) problems.push(`${name}: ${key} is not in the transcript`);
        else if (want !== (await sha256File(file))) problems.push(`${name}: ${key} differs from the transcript (sha256)`);
      }
    }
    if (existsSync(CORE_KEYS)) {
      for (const [file, label] of [[paths.vkey(name), "vkey"], [paths.signals(name), "signals"]]) {
        const copy = path.join(CORE_KEYS, path.basename(file));
        if (!existsSync(copy)) problems.push(`${name}: no copy of the ${label} in layers/core/reliquary/zk/keys`);
        else if (canonicalJson(readJson(copy)) !== canonicalJson(readJson(file))) {
          problems.push(`${name}: layers/core/reliquary/zk/keys/${path.basename(file)} differs from zk/keys (copy it again)`);
        }
      }
    }
  }
  if (transcript) {
    for (const artifact of transcript.artifacts?.ptau ?? []) {
      const file = path.join(ROOT, artifact.path);
      if (!existsSync(file)) problems.push(`missing ${artifact.path}`);
      else if ((await sha256File(file)) !== artifact.sha256) problems.push(`${artifact.path} differs from the transcript (sha256)`);
    }
  }
  return problems;
}

check()
  .then(async (problems) => {
    await releaseCurves();
    if (problems.length) {
      for (const p of problems) process.stderr.write(`check-keys: ${p}\n`);
      process.exit(1);
    }
    process.stdout.write(`check-keys: ${CIRCUITS.length} circuits OK (vkeys match the zkeys, example proofs verify, artifacts match the transcript)\n`);
    process.exit(0);
  })
  .catch(async (err) => {
    process.stderr.write(`check-keys: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
