// leadgraph from TypeScript with the types generated from schema.graphql
// (clients/typescript: `npm ci && npm run codegen && npm run build-examples`), then
//   LEADGRAPH_URL=http://127.0.0.1:8000 LEADGRAPH_API_KEY=lg_live_sk_… node target/ts-examples/examples/typescript/list-leads.js
import { execute, type ClientOptions } from '../../clients/typescript/src/client';
import { hotLeads, statusCounts } from '../../clients/typescript/src/dashboard';
import { MeDocument } from '../../clients/typescript/src/generated/graphql';

async function main(): Promise<void> {
  const apiKey = process.env.LEADGRAPH_API_KEY;
  if (!apiKey) throw new Error('set LEADGRAPH_API_KEY to an API key');
  const client: ClientOptions = {
    url: `${process.env.LEADGRAPH_URL ?? 'http://127.0.0.1:8000'}/graphql`,
    apiKey,
  };

  const { me } = await execute(client, MeDocument);
  console.log(`signed in to ${me.tenant.name} (${me.tenant.plan}) as ${me.role} with ${me.authMethod}`);

  const page = await hotLeads(client);
  for (const row of page.rows.slice(0, 5)) {
    console.log(`${String(row.score).padStart(3)}  ${row.status.padEnd(11)} ${row.email ?? '-'}`);
  }
  console.log(`hot leads: ${page.total}, next page: ${page.next ? 'yes' : 'no'}`);

  const counts = await statusCounts(client);
  console.log(`by status: ${Object.entries(counts).map(([s, n]) => `${s}=${n}`).join(' ')}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
