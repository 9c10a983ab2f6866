// @apollo/gateway in front of the subgraphs, on @apollo/server.
//
//   node supergraph.mjs --supergraph supergraph.graphql [--port 0] [--host 127.0.0.1]
//
// Serves the static supergraph that compose.mjs wrote; each subgraph is reached at the URL composition recorded
// for it. Prints one line, `supergraph gateway ready at <url>`, once it listens (port 0 picks a free port).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { ApolloGateway } from "@apollo/gateway";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";

const { values } = parseArgs({
  options: {
    supergraph: { type: "string" },
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
  },
});
if (!values.supergraph) throw new Error("give --supergraph FILE (written by compose.mjs)");

const gateway = new ApolloGateway({ supergraphSdl: readFileSync(values.supergraph, "utf8") });
// The subgraphs' own error messages and codes reach the client, as they do through Apollo Router by default.
const server = new ApolloServer({ gateway, includeStacktraceInErrorResponses: false });
const { url } = await startStandaloneServer(server, { listen: { port: Number(values.port), host: values.host } });
console.log(`supergraph gateway ready at ${url}`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await server.stop();
    process.exit(0);
  });
}
