/** What a message frame may carry besides id, topic, cursor and data (issue 16). */
export interface MessageMeta {
  /** The publishing user's id (client publishes only; from the token, never the frame). */
  from?: string | undefined;
  /** Not stored: delivered live only, never replayed, and without a cursor. */
  ephemeral?: true | undefined;
  /** Acknowledged (issue 18): the client library acks it once handed to the app. */
  ack?: true | undefined;
}

/**
 * A message frame as text. Built by concatenation so a large `data` is
 * serialised once per publish (and once per `deliver` chunk), not once per
 * recipient or per user; the result is exactly
 * JSON.stringify({ type, id, topic?, cursor?, from?, ephemeral?, data }).
 */
export function messageFrame(
  id: string,
  dataJson: string,
  cursor?: string,
  topic?: string,
  meta?: MessageMeta,
): string {
  return `${messageHead(id, cursor, topic, meta)},"data":${dataJson}}`;
}

/** A message frame's text up to its data (all that differs between a message's frames). */
export function messageHead(
  id: string,
  cursor?: string,
  topic?: string,
  meta?: MessageMeta,
): string {
  return (
    `{"type":"message","id":${JSON.stringify(id)}` +
    (topic === undefined ? '' : `,"topic":${JSON.stringify(topic)}`) +
    (cursor ? `,"cursor":${JSON.stringify(cursor)}` : '') +
    metaFields(meta)
  );
}

/** `,"from":…,"ephemeral":true` as present (the same text in frames, chunks and history). */
export function metaFields(meta?: MessageMeta): string {
  return (
    (meta?.from === undefined ? '' : `,"from":${JSON.stringify(meta.from)}`) +
    (meta?.ephemeral ? ',"ephemeral":true' : '') +
    (meta?.ack ? ',"ack":true' : '')
  );
}
