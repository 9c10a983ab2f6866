// The "costs" subgraph: @apollo/subgraph + @apollo/server, extending the gateway's `Asset @key(fields: "key")`
// with `monthlyCost`. Costs are derived from the key, so that a test can compute them too:
// monthlyCost = (first 4 bytes of sha256(key), big-endian) % 100000 / 100.
//
//   node costs.mjs [--port 0] [--host 127.0.0.1]
//
// Prints one line, `costs subgraph ready at <url>`, once it listens (port 0 picks a free port).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginInlineTraceDisabled } from "@apollo/server/plugin/disabled";
import { startStandaloneServer } from "@apollo/server/standalone";
import { buildSubgraphSchema } from "@apollo/subgraph";
import { parse } from "graphql";

export const typeDefs = parse(readFileSync(new URL("costs.graphql", import.meta.url), "utf8"));

export function monthlyCost(key) {
  return createHash("sha256").update(key, "utf8").digest().readUInt32BE(0) % 100000 / 100;
}

const resolvers = {
  Query: {
    costliest: (_parent, { keys, first }) =>
      [...new Set(keys)]
        .map((key) => ({ key, monthlyCost: monthlyCost(key) }))
        .sort((a, b) => b.monthlyCost - a.monthlyCost || a.key.localeCompare(b.key))
        .slice(0, Math.max(first, 0)),
  },
  Asset: {
    __resolveReference: ({ key }) => ({ key, monthlyCost: monthlyCost(key) }),
  },
};

const { values } = parseArgs({
  options: { port: { type: "string", default: "0" }, host: { type: "string", default: "127.0.0.1" } },
});
const server = new ApolloServer({
  schema: buildSubgraphSchema([{ typeDefs, resolvers }]),
  plugins: [ApolloServerPluginInlineTraceDisabled()],
});
const { url } = await startStandaloneServer(server, { listen: { port: Number(values.port), host: values.host } });
console.log(`costs subgraph ready at ${url}`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await server.stop();
    process.exit(0);
  });
}
