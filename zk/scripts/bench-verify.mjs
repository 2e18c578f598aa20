#!/usr/bin/env node
// Warm snarkjs verification time, for comparison with the Python verifier: loads the verification key,
// the example proof and its public signals once, verifies once (cold: builds the curve), then N times.
// Prints one JSON line per circuit: {"circuit", "n", "first_ms", "ms_per_verify", "median_ms", "min_ms"}.
//
// usage: node scripts/bench-verify.mjs [circuit | all] [N]      (default: context_proof 50)
import * as snarkjs from "snarkjs";

import { CIRCUITS, isCircuit, paths, readJson, releaseCurves, writeStdout } from "./common.mjs";

async function bench(circuit, n) {
  const vkey = readJson(paths.vkey(circuit));
  const proof = readJson(paths.exampleProof(circuit));
  const publicSignals = readJson(paths.examplePublic(circuit));
  let t = performance.now();
  if (!(await snarkjs.groth16.verify(vkey, publicSignals, proof))) throw new Error(`${circuit}: the example proof does not verify`);
  const first = performance.now() - t;
  const times = [];
  for (let i = 0; i < n; i++) {
    t = performance.now();
    const ok = await snarkjs.groth16.verify(vkey, publicSignals, proof);
    times.push(performance.now() - t);
    if (!ok) throw new Error(`${circuit}: verification failed on run ${i}`);
  }
  times.sort((a, b) => a - b);
  const round = (x) => Number(x.toFixed(3));
  return {
    circuit,
    n,
    first_ms: round(first),
    ms_per_verify: round(times.reduce((a, b) => a + b, 0) / n),
    median_ms: round(times[Math.floor(n / 2)]),
    min_ms: round(times[0]),
  };
}

async function main() {
  const [which = "context_proof", count = "50"] = process.argv.slice(2);
  const n = Number(count);
  if (!Number.isInteger(n) || n < 1) throw new Error("N is a positive integer");
  if (which !== "all" && !isCircuit(which)) throw new Error(`unknown circuit ${which} (one of ${CIRCUITS.join(", ")}, all)`);
  for (const circuit of which === "all" ? CIRCUITS : [which]) {
    await writeStdout(`${JSON.stringify(await bench(circuit, n))}\n`);
  }
}

main()
  .then(async () => {
    await releaseCurves();
    process.exit(0);
  })
  .catch(async (err) => {
    process.stderr.write(`bench-verify: ${err.message}\n`);
    await releaseCurves().catch(() => {});
    process.exit(1);
  });
