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
export const MAX_TARGETS = 10_000;
