/**
 * A message frame as text. Built by concatenation so a large `data` is
 * serialised once per publish (and once per `deliver` chunk), not once per
 * recipient or per user; the result is exactly
 * JSON.stringify({ type, id, topic?, cursor?, data }).
 */
export function messageFrame(
  id: string,
  dataJson: string,
  cursor?: string,
  topic?: string,
): string {
  return (
    `{"type":"message","id":${JSON.stringify(id)}` +
    (topic === undefined ? '' : `,"topic":${JSON.stringify(topic)}`) +
    (cursor ? `,"cursor":${JSON.stringify(cursor)}` : '') +
    `,"data":${dataJson}}`
  );
}
