#!/usr/bin/env node
// Rebuilds everything in zk/: compiles every circuit, runs a local (development) powers-of-tau ceremony,
// a Groth16 setup per circuit with one contribution and a random beacon, verifies each key against its
// r1cs and the ptau, exports the verification keys, derives the public-signal names, makes the example
// inputs and proofs and verifies them. Writes ceremony/transcript.json and ceremony/README.md.
//
// usage: node scripts/build.mjs [--reuse-ptau] [--power N] [--examples-only]      (npm run build)
//   --reuse-ptau     keep the committed ceremony/pot<N>_final.ptau (verify it, skip phase 1)
//   --power N        force the powers-of-tau size (default: 13 if the largest circuit fits, else 14, ...)
//   --examples-only  keep every committed key; remake only the example inputs and proofs (e.g. after a
//                    change of an input encoding) and replace their steps in ceremony/transcript.json
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import { CIRCUITS, ROOT, paths, readJson, sha256File } from "./common.mjs";
import {
  DEFAULT_ITEM_ID,
  DEFAULT_REQUEST_ID,
  DEFAULT_REQUESTER_KEY_SHA256,
  DEFAULT_TENANT_ID,
  DEFAULT_VAULT_ID,
} from "./inputs.mjs";

const BIN = path.join(ROOT, "node_modules", ".bin");
const CIRCOM = path.join(BIN, "circom2");
const SNARKJS = path.join(BIN, "snarkjs");
const BUILD = paths.build;
const CEREMONY = path.join(ROOT, "ceremony");
const BEACON_ITERATIONS_EXP = 10;
const ANSI = /\x1b\[[0-9;]*m/g;

const { values: options } = parseArgs({
  options: {
    "reuse-ptau": { type: "boolean", default: false },
    power: { type: "string" },
    "examples-only": { type: "boolean", default: false },
  },
  strict: true,
});

const started = Date.now();
const transcript = {
  format: "reliquary-zk-ceremony/1",
  kind: "development ceremony: one local contribution per phase and a local random beacon; not for production",
  started_at: new Date(started).toISOString(),
  finished_at: null,
  tools: {},
  curve: "bn128 (BN254)",
  power: null,
  circuits: {},
  steps: [],
};

const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s`;
const say = (text) => process.stdout.write(`[${elapsed()}] ${text}\n`);
const rel = (file) => path.relative(ROOT, file);

async function describe(files) {
  const out = [];
  for (const file of files) {
    out.push({ path: rel(file), bytes: statSync(file).size, sha256: await sha256File(file) });
  }
  return out;
}

// Hashes snarkjs prints: a line ending in "<label>:" followed by tab-indented groups of hex.
function parseHashes(lines) {
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    const label = lines[i].match(/snarkJS: (.*?):\s*$/) ?? lines[i].match(/^\s*(.*[A-Za-z].*?):\s*$/);
    if (!label) continue;
    const groups = [];
    let j = i + 1;
    while (j < lines.length && /^\s+([0-9a-f]{8}\s*)+$/.test(lines[j])) groups.push(lines[j++].trim());
    if (groups.length > 0) found.push({ label: label[1].replace(/^snarkJS: /, "").trim(), hash: groups.join(" ").replace(/\s+/g, "") });
  }
  return found;
}

// Runs one step, shows its progress, records it in the transcript. `redact` hides a secret argument.
async function step({ name, circuit, argv, inputs = [], outputs = [], redact, expect }) {
  const at = Date.now();
  say(`${name}${circuit ? ` [${circuit}]` : ""}`);
  const lines = [];
  let lastProgress = 0;
  const code = await new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let pending = "";
    const onData = (chunk) => {
      pending += chunk.toString();
      const parts = pending.split(/\r?\n/);
      pending = parts.pop();
      for (const raw of parts) {
        const line = raw.replace(ANSI, "");
        if (line.includes("[DEBUG]")) {
          // progress lines: show at most one every 2 seconds
          if (Date.now() - lastProgress > 2000) {
            lastProgress = Date.now();
            say(`    ${line.replace(/^\[DEBUG\]\s*snarkJS:\s*/, "")}`);
          }
          continue;
        }
        lines.push(line);
        if (line.trim()) process.stdout.write(`           ${line}\n`);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", (status) => {
      if (pending) onData("\n");
      resolve(status);
    });
  });
  const seconds = (Date.now() - at) / 1000;
  if (code !== 0) throw new Error(`${name} failed (exit ${code})`);
  if (expect && !lines.some((line) => expect.test(line))) throw new Error(`${name}: expected ${expect} in its output`);
  const command = argv.map((a) => (redact && a.startsWith(redact) ? `${redact}<random, not recorded>` : a));
  const record = {
    step: name,
    ...(circuit ? { circuit } : {}),
    command: [path.relative(ROOT, command[0]), ...command.slice(1)].join(" "),
    started_at: new Date(at).toISOString(),
    seconds: Number(seconds.toFixed(2)),
    inputs: await describe(inputs),
    outputs: await describe(outputs),
  };
  const hashes = parseHashes(lines);
  if (hashes.length) record.printed_hashes = hashes;
  if (expect) record.result = lines.find((line) => expect.test(line)).replace(/^\[INFO\]\s*snarkJS:\s*/, "").trim();
  transcript.steps.push(record);
  say(`  done in ${seconds.toFixed(1)}s`);
  return { lines, seconds, record };
}

const entropy = () => randomBytes(64).toString("hex");

async function toolVersions() {
  const version = (pkg) => readJson(path.join(ROOT, "node_modules", pkg, "package.json")).version;
  const circom = await new Promise((resolve) => {
    const child = spawn(CIRCOM, ["--version"], { cwd: ROOT });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("close", () => resolve(out.trim()));
  });
  return {
    node: process.version,
    circom2: version("circom2"),
    circom: circom.match(/circom compiler (\S+)/)?.[1] ?? circom,
    circomlib: version("circomlib"),
    snarkjs: version("snarkjs"),
    circomlibjs: version("circomlibjs"),
  };
}

function parseCompile(lines) {
  const number = (label) => {
    const line = lines.find((l) => l.startsWith(`${label}:`));
    return line === undefined ? null : Number(line.split(":")[1]);
  };
  return {
    template_instances: number("template instances"),
    non_linear_constraints: number("non-linear constraints"),
    linear_constraints: number("linear constraints"),
    public_inputs: number("public inputs"),
    private_inputs: number("private inputs"),
    public_outputs: number("public outputs"),
    wires: number("wires"),
    labels: number("labels"),
  };
}

// The public signals in snarkjs order (outputs, then public inputs in declaration order) are witness
// wires 1..nPublic; the .sym file names each wire: "labelId,wireId,componentId,name".
function publicSignalNames(symFile, nPublic) {
  const names = new Array(nPublic).fill(null);
  for (const line of readFileSync(symFile, "utf8").split("\n")) {
    const [, wire, , name] = line.split(",");
    const id = Number(wire);
    if (id >= 1 && id <= nPublic && name?.startsWith("main.") && !name.slice(5).includes(".")) {
      names[id - 1] = name.slice(5);
    }
  }
  if (names.some((n) => n === null)) throw new Error(`${symFile}: cannot name every public signal: ${names}`);
  return names;
}

async function main() {
  for (const dir of ["wasm", "r1cs", "keys", "ceremony", "examples/inputs", "examples/proofs"]) {
    mkdirSync(path.join(ROOT, dir), { recursive: true });
  }
  rmSync(BUILD, { recursive: true, force: true });
  mkdirSync(BUILD, { recursive: true });
  transcript.tools = await toolVersions();
  say(`tools: ${JSON.stringify(transcript.tools)}`);

  // 1. compile
  say("== compile ==");
  for (const name of CIRCUITS) {
    const out = path.join(BUILD, name);
    mkdirSync(out, { recursive: true });
    const sources = [paths.circuit(name), ...readdirSync(path.join(ROOT, "circuits", "lib")).map((f) => path.join(ROOT, "circuits", "lib", f))];
    const { lines, seconds, record } = await step({
      name: "compile",
      circuit: name,
      argv: [CIRCOM, rel(paths.circuit(name)), "--r1cs", "--wasm", "--sym", "--O2", "-l", "node_modules", "-o", rel(out)],
      inputs: sources,
    });
    copyFileSync(path.join(out, `${name}_js`, `${name}.wasm`), paths.wasm(name));
    copyFileSync(path.join(out, `${name}.r1cs`), paths.r1cs(name));
    copyFileSync(path.join(out, `${name}.sym`), paths.sym(name));
    record.outputs = await describe([paths.r1cs(name), paths.sym(name), paths.wasm(name)]);
    const stats = parseCompile(lines);
    const nPublic = stats.public_inputs + stats.public_outputs;
    const signals = publicSignalNames(paths.sym(name), nPublic);
    writeFileSync(paths.signals(name), `${JSON.stringify(signals, null, 2)}\n`);
    transcript.circuits[name] = { ...stats, constraints: stats.non_linear_constraints + stats.linear_constraints, public_signals: signals, compile_seconds: seconds };
  }

  // 2. phase 1: powers of tau
  const needed = Math.max(...Object.values(transcript.circuits).map((c) => c.constraints + c.public_inputs + c.public_outputs + 1));
  let power = 13;
  while (2 ** power < needed) power++;
  if (options.power !== undefined) {
    const forced = Number(options.power);
    if (2 ** forced < needed) throw new Error(`--power ${forced} is too small for ${needed} rows`);
    power = forced;
  }
  transcript.power = power;
  const ptauFinal = path.join(CEREMONY, `pot${power}_final.ptau`);
  for (const file of readdirSync(CEREMONY)) {
    if (/^pot\d+_final\.ptau$/.test(file) && file !== path.basename(ptauFinal)) rmSync(path.join(CEREMONY, file));
  }
  say(`== powers of tau: bn128, power ${power} (2^${power} = ${2 ** power} >= ${needed} rows) ==`);
  if (options["reuse-ptau"] && existsSync(ptauFinal)) {
    say(`reusing ${rel(ptauFinal)}`);
    const previous = existsSync(paths.transcript) ? readJson(paths.transcript) : null;
    if (previous) {
      transcript.steps.push(...previous.steps.filter((s) => s.step.startsWith("powersoftau") && s.step !== "powersoftau verify"));
    }
  } else {
    const p0 = path.join(BUILD, `pot${power}_0000.ptau`);
    const p1 = path.join(BUILD, `pot${power}_0001.ptau`);
    await step({ name: "powersoftau new", argv: [SNARKJS, "powersoftau", "new", "bn128", String(power), rel(p0), "-v"], outputs: [p0] });
    await step({
      name: "powersoftau contribute",
      argv: [SNARKJS, "powersoftau", "contribute", rel(p0), rel(p1), "--name=RELIQUARY dev contribution 1", `-e=${entropy()}`, "-v"],
      inputs: [p0],
      outputs: [p1],
      redact: "-e=",
    });
    await step({
      name: "powersoftau prepare phase2",
      argv: [SNARKJS, "powersoftau", "prepare", "phase2", rel(p1), rel(ptauFinal), "-v"],
      inputs: [p1],
      outputs: [ptauFinal],
    });
  }
  await step({
    name: "powersoftau verify",
    argv: [SNARKJS, "powersoftau", "verify", rel(ptauFinal)],
    inputs: [ptauFinal],
    expect: /Powers of Tau Ok!/,
  });

  // 3. phase 2 per circuit
  for (const name of CIRCUITS) {
    say(`== groth16 keys: ${name} ==`);
    const z0 = path.join(BUILD, `${name}_0000.zkey`);
    const z1 = path.join(BUILD, `${name}_0001.zkey`);
    await step({ name: "groth16 setup", circuit: name, argv: [SNARKJS, "groth16", "setup", rel(paths.r1cs(name)), rel(ptauFinal), rel(z0), "-v"], inputs: [paths.r1cs(name), ptauFinal], outputs: [z0] });
    await step({
      name: "zkey contribute",
      circuit: name,
      argv: [SNARKJS, "zkey", "contribute", rel(z0), rel(z1), "--name=RELIQUARY dev contribution 1", `-e=${entropy()}`, "-v"],
      inputs: [z0],
      outputs: [z1],
      redact: "-e=",
    });
    const beacon = randomBytes(32).toString("hex");
    await step({
      name: "zkey beacon",
      circuit: name,
      argv: [SNARKJS, "zkey", "beacon", rel(z1), rel(paths.zkey(name)), beacon, String(BEACON_ITERATIONS_EXP), "--name=RELIQUARY dev beacon (local randomness)", "-v"],
      inputs: [z1],
      outputs: [paths.zkey(name)],
    });
    transcript.steps.at(-1).beacon = { hash: beacon, iterations_exp: BEACON_ITERATIONS_EXP, source: "local CSPRNG (development)" };
    await step({
      name: "zkey verify",
      circuit: name,
      argv: [SNARKJS, "zkey", "verify", rel(paths.r1cs(name)), rel(ptauFinal), rel(paths.zkey(name))],
      inputs: [paths.r1cs(name), ptauFinal, paths.zkey(name)],
      expect: /ZKey Ok!/,
    });
    await step({
      name: "zkey export verificationkey",
      circuit: name,
      argv: [SNARKJS, "zkey", "export", "verificationkey", rel(paths.zkey(name)), rel(paths.vkey(name))],
      inputs: [paths.zkey(name)],
      outputs: [paths.vkey(name)],
    });
    const vkey = readJson(paths.vkey(name));
    const signals = readJson(paths.signals(name));
    if (vkey.nPublic !== signals.length) throw new Error(`${name}: nPublic ${vkey.nPublic} != ${signals.length} signal names`);
  }

  // 4. example inputs and proofs
  await examples();

  transcript.finished_at = new Date().toISOString();
  transcript.total_seconds = Number(((Date.now() - started) / 1000).toFixed(1));
  transcript.artifacts = {};
  for (const name of CIRCUITS) {
    transcript.artifacts[name] = await describe([paths.wasm(name), paths.r1cs(name), paths.zkey(name), paths.vkey(name), paths.signals(name)]);
  }
  transcript.artifacts.ptau = await describe([ptauFinal]);
  writeFileSync(paths.transcript, `${JSON.stringify(transcript, null, 2)}\n`);
  writeFileSync(path.join(CEREMONY, "README.md"), summary(transcript, ptauFinal));
  rmSync(BUILD, { recursive: true, force: true });
  say(`built everything; transcript in ${rel(paths.transcript)}`);
}

// The example inputs and proofs (a fixed request, requester key and nonce), verified with the snarkjs CLI.
async function examples() {
  say("== examples ==");
  const exampleArgs = [
    "--seed", "reliquary-example",
    "--tenant-id", DEFAULT_TENANT_ID,
    "--vault-id", DEFAULT_VAULT_ID,
    "--item-id", DEFAULT_ITEM_ID,
    "--request-id", DEFAULT_REQUEST_ID,
    "--requester-key-sha256", DEFAULT_REQUESTER_KEY_SHA256,
    "--nonce", EXAMPLE_NONCE_HEX,
  ];
  await step({
    name: "example inputs",
    argv: [process.execPath, "scripts/inputs.mjs", ...exampleArgs, "--out", "examples/inputs"],
    outputs: CIRCUITS.map(paths.exampleInput),
  });
  const { stdout } = await capture([process.execPath, "scripts/inputs.mjs", ...exampleArgs, "--public"]);
  writeFileSync(path.join(ROOT, "examples", "example.json"), stdout);
  for (const name of CIRCUITS) {
    await step({
      name: "example proof",
      circuit: name,
      argv: [process.execPath, "scripts/prove.mjs", name, rel(paths.exampleInput(name)), "--proof", rel(paths.exampleProof(name)), "--public", rel(paths.examplePublic(name)), "--quiet"],
      inputs: [paths.exampleInput(name), paths.wasm(name), paths.zkey(name)],
      outputs: [paths.exampleProof(name), paths.examplePublic(name)],
    });
    await step({
      name: "groth16 verify",
      circuit: name,
      argv: [SNARKJS, "groth16", "verify", rel(paths.vkey(name)), rel(paths.examplePublic(name)), rel(paths.exampleProof(name))],
      inputs: [paths.vkey(name), paths.examplePublic(name), paths.exampleProof(name)],
      expect: /OK!/,
    });
  }
}

// --examples-only: the committed keys stay; the transcript keeps every ceremony step and gets the new
// example steps in place of the old ones.
const EXAMPLE_STEPS = new Set(["example inputs", "example proof", "groth16 verify"]);

async function examplesOnly() {
  const previous = readJson(paths.transcript);
  transcript.steps = [];
  await examples();
  previous.steps = [...previous.steps.filter((s) => !EXAMPLE_STEPS.has(s.step)), ...transcript.steps];
  previous.examples_made_at = new Date(started).toISOString();
  writeFileSync(paths.transcript, `${JSON.stringify(previous, null, 2)}\n`);
  say(`remade the examples; their steps in ${rel(paths.transcript)}`);
}

const EXAMPLE_NONCE_HEX = Array.from({ length: 31 }, (_, i) => (i + 1).toString(16).padStart(2, "0")).join("");

function capture(argv) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.on("error", reject);
    child.on("close", (status) => (status === 0 ? resolve({ stdout }) : reject(new Error(`${argv.join(" ")} failed (exit ${status})`))));
  });
}

function summary(t, ptauFinal) {
  const seconds = (s) => `${s.toFixed(1)} s`;
  const find = (stepName, circuit) => t.steps.find((s) => s.step === stepName && (circuit === undefined || s.circuit === circuit));
  const hashOf = (s, pattern) => s?.printed_hashes?.find((h) => pattern.test(h.label))?.hash ?? "(not printed)";
  const mib = (bytes) => `${(bytes / 1048576).toFixed(2)} MiB`;
  const ptau = t.artifacts.ptau[0];
  const rows = CIRCUITS.map((name) => {
    const c = t.circuits[name];
    const zkey = t.artifacts[name].find((a) => a.path.endsWith(".zkey"));
    return `| ${name} | ${c.constraints} | ${c.public_signals.length} | ${mib(zkey.bytes)} | \`${zkey.sha256.slice(0, 16)}…\` |`;
  });
  const contributions = CIRCUITS.map((name) => {
    const contribute = find("zkey contribute", name);
    const beacon = find("zkey beacon", name);
    return [
      `### ${name}`,
      "",
      `- circuit hash: \`${hashOf(contribute, /^Circuit Hash/)}\``,
      `- contribution 1 (local, random entropy): \`${hashOf(contribute, /^Contribution Hash/)}\``,
      `- beacon (hash \`${beacon.beacon.hash}\`, 2^${beacon.beacon.iterations_exp} iterations): \`${hashOf(beacon, /^Contribution Hash/)}\``,
      `- \`zkey verify\` against the r1cs and the ptau: ${find("zkey verify", name).result}`,
      "",
    ].join("\n");
  });
  const phase1 = find("powersoftau contribute");
  const lines = [
    "# Development ceremony",
    "",
    "Generated by `npm run build` (`scripts/build.mjs`); every command, every input and output file with its",
    "SHA-256, the hashes snarkjs printed and the timings are in [`transcript.json`](transcript.json).",
    "",
    "**This is a development ceremony**: one local contribution to the powers of tau, one local contribution",
    "per circuit and a beacon drawn from the local CSPRNG, all on one machine. Whoever ran it could keep the",
    "toxic waste and forge proofs. A production deployment runs the multi-party ceremony described in",
    "[`../README.md`](../README.md#ceremony) and ships its keys instead.",
    "",
    `- started ${t.started_at}, finished ${t.finished_at} (${seconds(t.total_seconds)})`,
    `- tools: node ${t.tools.node}, circom ${t.tools.circom} (circom2 ${t.tools.circom2}), circomlib ${t.tools.circomlib}, snarkjs ${t.tools.snarkjs}`,
    `- phase 1: \`${path.basename(ptauFinal)}\`, bn128, power ${t.power}, ${mib(ptau.bytes)}, sha256 \`${ptau.sha256}\``,
    phase1 ? `  - contribution 1 (local, random entropy), response hash: \`${hashOf(phase1, /Contribution Response Hash/)}\`` : "  - (reused from a previous build)",
    `  - \`powersoftau verify\`: ${find("powersoftau verify").result}`,
    "",
    "| circuit | constraints | public signals | zkey | zkey sha256 |",
    "|---|---:|---:|---:|---|",
    ...rows,
    "",
    "## Phase 2 contributions",
    "",
    ...contributions,
    "## Check it yourself",
    "",
    "```sh",
    "cd zk && npm ci",
    `npx snarkjs powersoftau verify ceremony/${path.basename(ptauFinal)}`,
    `npx snarkjs zkey verify r1cs/context_proof.r1cs ceremony/${path.basename(ptauFinal)} keys/context_proof.zkey`,
    "npm run check-keys   # the committed vkeys are the ones in the committed zkeys",
    "```",
    "",
  ];
  return lines.join("\n");
}

(options["examples-only"] ? examplesOnly() : main()).catch((err) => {
  process.stderr.write(`build: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
