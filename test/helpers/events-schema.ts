import { readFileSync } from 'node:fs';
// Ajv comes with osls (a dev dependency) for now; see the report to the lead.
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/** docs/events.schema.json, the contract of lifecycle events' details. */
export const eventsSchema = JSON.parse(
  readFileSync(new URL('../../docs/events.schema.json', import.meta.url), 'utf8'),
) as { $id: string; $defs: Record<string, unknown> };

const ajv = new Ajv2020({ allErrors: true, strict: false });
(addFormats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
ajv.addSchema(eventsSchema);

/** Validates one event's detail by its name (`connected`, ...); answers the errors, or [] when valid. */
export function eventDetailErrors(name: string, detail: unknown): string[] {
  const check = ajv.getSchema(`${eventsSchema.$id}#/$defs/${name}`);
  if (!check) return [`no schema for "${name}"`];
  return check(detail)
    ? []
    : (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
