// PostGraphile 4 serving leadgraph's database with its recommended production options, with
// WORKERS processes sharing the port through node:cluster. Used by bench/peers.sh.
//   DATABASE_URL=postgres://... PORT=5000 WORKERS=2 node v4/server.js
const cluster = require("node:cluster");
const http = require("node:http");
const { postgraphile } = require("postgraphile");

const workers = Number(process.env.WORKERS || 1);
if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", () => process.exit(1));
} else {
  const handler = postgraphile(process.env.DATABASE_URL, "public", {
    retryOnInitFail: false,
    disableQueryLog: true,
    ignoreRBAC: false,
    setofFunctionsContainNulls: false,
    enableQueryBatching: false,
    graphiql: false,
  });
  http.createServer(handler).listen(Number(process.env.PORT), "127.0.0.1");
}
