// Uploads a CSV file of leads to importLeads (a GraphQL multipart request) and follows the
// job until it is done. Built like list-leads.ts, then
//   LEADGRAPH_URL=… LEADGRAPH_API_KEY=… node target/ts-examples/examples/typescript/import-leads.js leads.csv
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { execute, upload, type ClientOptions } from '../../clients/typescript/src/client';
import { ImportJobDocument, ImportLeadsDocument } from '../../clients/typescript/src/generated/graphql';

async function main(): Promise<void> {
  const apiKey = process.env.LEADGRAPH_API_KEY;
  const path = process.argv[2];
  if (!apiKey || !path) throw new Error('usage: LEADGRAPH_API_KEY=… node import-leads.js FILE.csv');
  const client: ClientOptions = {
    url: `${process.env.LEADGRAPH_URL ?? 'http://127.0.0.1:8000'}/graphql`,
    apiKey,
  };
  const file = new Blob([await readFile(path)], { type: 'text/csv' });
  const { importLeads } = await upload(
    client,
    ImportLeadsDocument,
    { file, onDuplicate: 'UPDATE' },
    'file',
    basename(path),
  );
  console.log(`queued import ${importLeads.id} of ${importLeads.total} rows`);
  for (;;) {
    const { importJob: job } = await execute(client, ImportJobDocument, { id: importLeads.id });
    if (job.status !== 'QUEUED' && job.status !== 'RUNNING') {
      console.log(`${job.status.toLowerCase()}: ${job.created} created, ${job.updated} updated, ${job.skipped} skipped, ${job.failed} failed`);
      for (const e of job.errors) console.log(`  row ${e.row} ${e.field}: ${e.message}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
