// Composes subgraphs into a supergraph with @apollo/composition's composeServices.
//
//   node compose.mjs --subgraph NAME=URL [--sdl NAME=FILE] ... [--out supergraph.graphql] [--allow-hint CODE]...
//
// Each subgraph's SDL is fetched from its running service (`{ _service { sdl } }` at URL) unless --sdl gives a
// file (`asset-gateway schema > gateway.graphql`); URL is also where the supergraph routes that subgraph.
// Composition errors fail (exit 1), and so does every hint whose code is not allowed with --allow-hint:
// a hint means the subgraphs disagree about something (a field's type, a description, a value) and the
// supergraph quietly chose one side. The supergraph SDL goes to --out, or to stdout.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

function pairs(values, option) {
  const result = new Map();
  for (const value of values ?? []) {
    const at = value.indexOf("=");
    if (at < 1) throw new Error(`--${option} takes NAME=VALUE, got ${JSON.stringify(value)}`);
    result.set(value.slice(0, at), value.slice(at + 1));
  }
  return result;
}

async function fetchSdl(name, url) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ query: "{ _service { sdl } }" }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`subgraph ${name}: ${url} answered ${response.status}: ${text}`);
  const body = JSON.parse(text);
  const sdl = body?.data?._service?.sdl;
  if (body.errors || typeof sdl !== "string") {
    throw new Error(`subgraph ${name}: ${url} gave no _service.sdl: ${text}`);
  }
  return sdl;
}

const { values } = parseArgs({
  options: {
    subgraph: { type: "string", multiple: true },
    sdl: { type: "string", multiple: true },
    out: { type: "string" },
    "allow-hint": { type: "string", multiple: true },
  },
});
const urls = pairs(values.subgraph, "subgraph");
const files = pairs(values.sdl, "sdl");
if (urls.size < 1) throw new Error("give at least one --subgraph NAME=URL");
for (const name of files.keys()) {
  if (!urls.has(name)) throw new Error(`--sdl ${name}=... names no --subgraph`);
}

const services = [];
for (const [name, url] of urls) {
  const sdl = files.has(name) ? readFileSync(files.get(name), "utf8") : await fetchSdl(name, url);
  services.push({ name, url, typeDefs: parse(sdl) });
}

const result = composeServices(services);
if (result.errors) {
  for (const error of result.errors) {
    console.error(`composition error ${error.extensions?.code ?? ""}: ${error.message}`);
  }
  process.exit(1);
}
const allowed = new Set(values["allow-hint"] ?? []);
const refused = result.hints.filter((hint) => !allowed.has(hint.definition.code));
for (const hint of result.hints) {
  const verdict = allowed.has(hint.definition.code) ? "allowed" : "refused";
  console.error(`composition hint ${hint.definition.code} (${verdict}): ${hint.message}`);
}
if (refused.length > 0) process.exit(1);

if (values.out) {
  writeFileSync(values.out, result.supergraphSdl);
  console.error(`composed ${services.map((service) => service.name).join(", ")} into ${values.out}`);
} else {
  process.stdout.write(result.supergraphSdl);
}
