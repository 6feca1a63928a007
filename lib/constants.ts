/** API Gateway WebSocket limits we design for (documented AWS quotas). */
/** Largest message API Gateway delivers to a client: 128 KB. */
export const MAX_MESSAGE_BYTES = 128 * 1024;
/** Largest single frame API Gateway accepts from a client: 32 KB. */
export const MAX_CLIENT_FRAME_BYTES = 32 * 1024;
/** API Gateway closes a connection idle for 10 minutes. */
export const API_GATEWAY_IDLE_SECONDS = 600;

/** Topic names: a safe alphabet for keys, URLs and claims (`*` is reserved for claim prefixes). */
export const TOPIC_PATTERN = /^[A-Za-z0-9_.:@=-]{1,128}$/;
/** User ids end up inside Redis keys and JWT `sub`; keep them printable and bounded. */
export const MAX_USER_ID_LENGTH = 256;
/**
 * One rule for every user id (token `sub`, publish, presence, kick): printable
 * (no control, format or unassigned code points), no whitespace, no `{` `}`
 * (Redis Cluster hash tags) and no `|` (our member separator).
 */
export const USER_ID_PATTERN = /^[^\s{}|\p{C}]{1,256}$/u;
/**
 * A topic grant in a token's `topics` claim: an exact topic name, a prefix
 * grant whose `*` follows a separator (`: . - _ = @`), matching every topic
 * that starts with what precedes the `*` (so `team:42:*` never matches
 * `team:420`, and `team:42*` is no grant at all), or `*` alone for every topic.
 */
export const TOPIC_GRANT_PATTERN =
  /^(?:[A-Za-z0-9_.:@=-]{1,128}|[A-Za-z0-9_.:@=-]{0,126}[_.:@=-]\*|\*)$/;
export const MAX_TARGETS = 10_000;
