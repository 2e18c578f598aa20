// Shared by the zk scripts: the circuits, where their artifacts live, small helpers.
import { createHash } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

// Build order: the small circuits first, the combined one (the access flow's default) last.
export const CIRCUITS = ["device_proof", "location_chain", "timestamp_verifier", "pattern_match", "context_proof"];

// BN254's scalar field order r (snarkjs "bn128"): every signal is an element of [0, r). The same value as
// reliquary.zk.policy.SCALAR_FIELD (tests/unit/test_zk_context.py compares both with py_ecc).
export const FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617n;

export const paths = {
  circuit: (name) => path.join(ROOT, "circuits", `${name}.circom`),
  wasm: (name) => path.join(ROOT, "wasm", `${name}.wasm`),
  r1cs: (name) => path.join(ROOT, "r1cs", `${name}.r1cs`),
  sym: (name) => path.join(ROOT, "r1cs", `${name}.sym`),
  zkey: (name) => path.join(ROOT, "keys", `${name}.zkey`),
  vkey: (name) => path.join(ROOT, "keys", `${name}.vkey.json`),
  signals: (name) => path.join(ROOT, "keys", `${name}.signals.json`),
  exampleInput: (name) => path.join(ROOT, "examples", "inputs", `${name}.json`),
  exampleProof: (name) => path.join(ROOT, "examples", "proofs", `${name}.proof.json`),
  examplePublic: (name) => path.join(ROOT, "examples", "proofs", `${name}.public.json`),
  transcript: path.join(ROOT, "ceremony", "transcript.json"),
  build: path.join(ROOT, "build"), // temporary, git-ignored
};

export function isCircuit(name) {
  return CIRCUITS.includes(name);
}

export function sha256Hex(data) {
  return createHash("sha256").update(data).digest("hex");
}

export function sha256File(file) {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}

export function readJson(file) {
  return JSON.parse(readFileSync(file, "utf8"));
}

// JSON with sorted object keys: for comparing two documents regardless of key order.
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

// snarkjs keeps worker threads and a WASM curve alive; release them so the process can exit.
export async function releaseCurves() {
  for (const key of ["curve_bn128", "curve_bls12381"]) {
    if (globalThis[key] && typeof globalThis[key].terminate === "function") {
      await globalThis[key].terminate();
      globalThis[key] = null;
    }
  }
}

// Write to stdout and wait until it is flushed (a pipe to a parent process included).
export function writeStdout(text) {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}
