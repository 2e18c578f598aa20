#!/usr/bin/env node
// Proves one circuit with the committed wasm and zkey, then verifies the proof with the committed vkey.
//
// usage: node scripts/prove.mjs <circuit> <input.json | -> [--proof FILE] [--public FILE] [--quiet] [--time]
//   prints {"proof": <snarkjs proof>, "publicSignals": [<decimal strings>]} on stdout (one line)
//   --proof/--public  also write the proof and the public signals in snarkjs's file formats
//   --quiet           print nothing on stdout (with --proof/--public)
//   --time            print {"prove_ms": ..., "verify_ms": ...} on stderr
// exit status: 0 proved and verified; 2 the input does not satisfy the circuit (or names unknown
// signals); 3 the proof does not verify; 64 usage; 66 unreadable input or missing artifact.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import * as snarkjs from "snarkjs";

import { CIRCUITS, isCircuit, paths, readJson, releaseCurves, writeStdout } from "./common.mjs";

class Failure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        proof: { type: "string" },
        public: { type: "string" },
        quiet: { type: "boolean", default: false },
        time: { type: "boolean", default: false },
      },
      strict: true,
    });
  } catch (err) {
    throw new Failure(64, err.message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 2) {
    throw new Failure(64, `usage: prove.mjs <circuit> <input.json | -> (circuits: ${CIRCUITS.join(", ")})`);
  }
  const [circuit, inputFile] = positionals;
  if (!isCircuit(circuit)) throw new Failure(64, `unknown circuit ${circuit} (one of ${CIRCUITS.join(", ")})`);
  for (const file of [paths.wasm(circuit), paths.zkey(circuit), paths.vkey(circuit)]) {
    if (!existsSync(file)) throw new Failure(66, `missing artifact ${file}: run npm run build`);
  }

  let input;
  try {
    input = JSON.parse(readFileSync(inputFile === "-" ? 0 : inputFile, "utf8"));
  } catch (err) {
    throw new Failure(66, `cannot read the input ${inputFile}: ${err.message}`);
  }
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new Failure(2, "the input is a JSON object of signal names to values");
  }

  const t0 = performance.now();
  let proof;
  let publicSignals;
  try {
    ({ proof, publicSignals } = await snarkjs.groth16.fullProve(input, paths.wasm(circuit), paths.zkey(circuit)));
  } catch (err) {
    const detail = String(err?.message ?? err).replace(/^(Error: )+/, "").split("\n").filter(Boolean).join("; ");
    throw new Failure(2, `the input does not satisfy the ${circuit} circuit: ${detail}`);
  }
  const t1 = performance.now();
  const vkey = readJson(paths.vkey(circuit));
  const ok = await snarkjs.groth16.verify(vkey, publicSignals, proof);
  const t2 = performance.now();
  if (!ok) throw new Failure(3, `the ${circuit} proof does not verify with keys/${circuit}.vkey.json`);

  if (values.proof) writeFileSync(values.proof, `${JSON.stringify(proof, null, 1)}\n`);
  if (values.public) writeFileSync(values.public, `${JSON.stringify(publicSignals, null, 1)}\n`);
  if (values.time) {
    process.stderr.write(`${JSON.stringify({ circuit, prove_ms: +(t1 - t0).toFixed(1), verify_ms: +(t2 - t1).toFixed(1) })}\n`);
  }
  if (!values.quiet) await writeStdout(`${JSON.stringify({ proof, publicSignals })}\n`);
}

main()
  .then(async () => {
    await releaseCurves();
    process.exit(0);
  })
  .catch(async (err) => {
    process.stderr.write(`prove: ${err instanceof Failure ? err.message : err?.stack ?? err}\n`);
    await releaseCurves().catch(() => {});
    process.exit(err instanceof Failure ? err.status : 1);
  });
