// PostGraphile 5 serving leadgraph's database, configured as its documentation recommends for a
// new schema (the amber preset, the node HTTP adaptor), with WORKERS processes sharing the port
// through node:cluster. Used by bench/peers.sh.
//   DATABASE_URL=postgres://... PORT=5000 WORKERS=2 node postgraphile5.mjs
import cluster from "node:cluster";
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";

const url = process.env.DATABASE_URL;
const port = Number(process.env.PORT);
const workers = Number(process.env.WORKERS || 1);

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", () => process.exit(1));
} else {
  const pgl = postgraphile({
    extends: [PostGraphileAmberPreset],
    pgServices: [makePgService({ connectionString: url, schemas: ["public"] })],
    grafserv: { port, graphqlPath: "/graphql", graphiql: false },
  });
  const server = createServer();
  await pgl.createServ(grafserv).addTo(server);
  server.listen(port, "127.0.0.1");
}
