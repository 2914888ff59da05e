// A typed leadgraph client over fetch: each call's variables and result are the types
// generated from schema.graphql (src/generated, made by `npm run codegen`).
import type { TypedDocumentString } from './generated/graphql';

/** Where the server is and how to authenticate. */
export interface ClientOptions {
  url: string;
  apiKey: string;
}

/** A GraphQL error as leadgraph sends it. */
export interface GraphQLErrorBody {
  message: string;
  extensions?: { code?: string; fields?: { field: string; message: string }[] };
}

/** Raised when the response carries errors. */
export class LeadgraphError extends Error {
  constructor(
    readonly status: number,
    readonly errors: GraphQLErrorBody[],
  ) {
    super(errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('; '));
  }
}

/** Runs one operation and returns its typed data. */
export async function execute<TResult, TVariables>(
  options: ClientOptions,
  document: TypedDocumentString<TResult, TVariables>,
  ...[variables]: TVariables extends Record<string, never> ? [] : [TVariables]
): Promise<TResult> {
  const response = await fetch(options.url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json',
      'X-API-Key': options.apiKey,
    },
    body: JSON.stringify({ query: document.toString(), variables }),
  });
  const body = (await response.json()) as { data?: TResult | null; errors?: GraphQLErrorBody[] };
  if (body.errors?.length || body.data == null) {
    throw new LeadgraphError(response.status, body.errors ?? []);
  }
  return body.data;
}

/**
 * Runs one operation whose variables hold a file, as a GraphQL multipart request
 * (github.com/jaydenseric/graphql-multipart-request-spec): `fileVariable` names the variable
 * the file fills, `name` the file's name (`.csv` or `.ndjson`).
 */
export async function upload<TResult, TVariables extends Record<string, unknown>>(
  options: ClientOptions,
  document: TypedDocumentString<TResult, TVariables>,
  variables: TVariables,
  fileVariable: keyof TVariables & string,
  name: string,
): Promise<TResult> {
  const form = new FormData();
  form.append(
    'operations',
    JSON.stringify({ query: document.toString(), variables: { ...variables, [fileVariable]: null } }),
  );
  form.append('map', JSON.stringify({ 0: [`variables.${fileVariable}`] }));
  form.append('0', variables[fileVariable] as Blob, name);
  const response = await fetch(options.url, {
    method: 'POST',
    headers: { Accept: 'application/graphql-response+json', 'X-API-Key': options.apiKey },
    body: form,
  });
  const body = (await response.json()) as { data?: TResult | null; errors?: GraphQLErrorBody[] };
  if (body.errors?.length || body.data == null) {
    throw new LeadgraphError(response.status, body.errors ?? []);
  }
  return body.data;
}
