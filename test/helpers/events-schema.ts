// Ajv comes with osls (a dev dependency) for now; see the report to the lead.
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { asyncapi, channelMessages } from './contract.js';

/**
 * The contract of lifecycle events' details: the `events` channel of
 * docs/asyncapi.yaml (issue 22: each event's schema is in the AsyncAPI
 * document). Event type (`connected`, ...) → its message there.
 */
export const eventMessages = Object.fromEntries(channelMessages('events'));

const ajv = new Ajv2020({ allErrors: true, strict: false });
(addFormats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
ajv.addSchema({ $id: 'urn:pushwire:asyncapi', components: asyncapi.components });

/** Validates one event's detail by its type (`connected`, ...); answers the errors, or [] when valid. */
export function eventDetailErrors(type: string, detail: unknown): string[] {
  const message = eventMessages[type];
  if (!message) return [`no message for "${type}" in docs/asyncapi.yaml's events channel`];
  const check = ajv.getSchema(`urn:pushwire:asyncapi${message.payload.$ref}`);
  if (!check) return [`no schema ${message.payload.$ref} in docs/asyncapi.yaml`];
  return check(detail)
    ? []
    : (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
