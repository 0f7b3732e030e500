import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { EVENT_CATALOG } from '../../src/modules/events/catalog.ts';
import type { TestServer } from '../helpers/server.ts';

const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

/** Every event in the log, oldest first. */
export async function allEvents(t: TestServer): Promise<any[]> {
  const all: any[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await t.api('GET', `/v1/events?limit=100${cursor ? `&starting_after_id=${cursor}` : ''}`);
    assert.equal(page.status, 200);
    all.push(...page.body.data);
    if (!page.body.has_more) break;
    cursor = page.body.more_starting_after;
  }
  // The log answers newest first.
  return all.reverse();
}

/** Asserts each event validates against its catalog schema. */
export function assertEventsMatchCatalog(events: any[]): void {
  const ajv = new Ajv({ allErrors: true, strict: false });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  const validators = new Map(EVENT_CATALOG.map((e) => [e.type, ajv.compile(e.schema)]));
  for (const e of events) {
    const validate = validators.get(e.type);
    assert.ok(validate, `${e.type} is in the catalog`);
    assert.ok(validate(e.data), `${e.type} ${JSON.stringify(e.data)}: ${JSON.stringify(validate.errors)}`);
  }
}

export async function ok(t: TestServer, method: string, path: string, body?: unknown, status = 200) {
  const res = await t.api(method, path, body);
  assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function customer(t: TestServer, sourceId: string) {
  return ok(t, 'POST', '/v1/customers', { source_id: sourceId, name: sourceId });
}
