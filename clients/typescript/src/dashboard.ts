// Code a dashboard would write against the generated types; `tsc --noEmit` in CI fails when a
// schema change breaks it (a renamed field, a removed enum value, a changed nullability).
import { execute, type ClientOptions } from './client';
import {
  CreateLeadDocument,
  DashboardDocument,
  LeadDocument,
  LeadsDocument,
  UpdateLeadDocument,
  type LeadStatus,
  type LeadsQuery,
} from './generated/graphql';
import type { Channel } from './generated/schema';

/** One row of the leads table. */
export interface LeadRow {
  id: string;
  name: string;
  email: string | null;
  status: LeadStatus;
  score: number;
  source: string | null;
  stage: string | null;
  owner: string | null;
}

type LeadNode = LeadsQuery['leads']['edges'][number]['node'];

/** Flattens a lead for display. */
export function toRow(node: LeadNode): LeadRow {
  return {
    id: node.id,
    name: [node.firstName, node.lastName].filter(Boolean).join(' '),
    email: node.email ?? null,
    status: node.status,
    score: node.score,
    source: node.source?.name ?? null,
    stage: node.stage?.name ?? null,
    owner: node.assignedTo?.email ?? null,
  };
}

/** The hottest open leads, one page at a time. */
export async function hotLeads(client: ClientOptions, after?: string) {
  const data = await execute(client, LeadsDocument, {
    first: 25,
    after,
    filter: { status: ['NEW', 'CONTACTED'], scoreMin: 50 },
    orderBy: { field: 'SCORE', direction: 'DESC' },
  });
  return {
    total: data.leads.totalCount,
    rows: data.leads.edges.map((e) => toRow(e.node)),
    next: data.leads.pageInfo.hasNextPage ? data.leads.pageInfo.endCursor : null,
  };
}

/** What a contact form posts. */
export interface ContactForm {
  firstName: string;
  lastName: string;
  email: string;
  channel: Channel;
}

/** Creates a lead from a form and marks it contacted. */
export async function captureAndContact(client: ClientOptions, form: ContactForm) {
  const created = await execute(client, CreateLeadDocument, {
    input: {
      firstName: form.firstName,
      lastName: form.lastName,
      email: form.email,
      source: form.channel,
      tags: ['inbound'],
      customFields: { form: 'contact' },
    },
  });
  const updated = await execute(client, UpdateLeadDocument, {
    leadId: created.createLead.id,
    input: { status: 'CONTACTED', score: 60 },
  });
  return updated.updateLead.status satisfies LeadStatus;
}

/** Stage names of a lead's pipeline, in order. */
export async function stagesOf(client: ClientOptions, leadId: string): Promise<string[]> {
  const { lead } = await execute(client, LeadDocument, { leadId });
  return lead?.pipeline?.stages.map((s) => s.name) ?? [];
}

/** Counts per status for the dashboard's first chart. */
export async function statusCounts(client: ClientOptions): Promise<Record<string, number>> {
  const { stats } = await execute(client, DashboardDocument);
  return Object.fromEntries(stats.byStatus.map((s) => [s.status, s.count]));
}
