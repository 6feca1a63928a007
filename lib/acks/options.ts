import * as v from 'valibot';
import { NotifySchema } from '../push/types.js';

/**
 * A publish's `ack` option (issue 18, docs/acks.md): the message is
 * acknowledged by the user's devices; if none acks within `timeoutSeconds`,
 * a push with `notify` goes to the user's registered devices (no `notify`:
 * the timeout is only recorded). `dismissOthers`: the first ack sends the
 * user's other connections `dismiss`.
 */
export const AckOptionSchema = v.strictObject(
  {
    timeoutSeconds: v.pipe(
      v.number('ack.timeoutSeconds must be a number'),
      v.integer('ack.timeoutSeconds must be a whole number of seconds'),
      v.minValue(1, 'ack.timeoutSeconds is at least 1'),
      v.maxValue(86_400, 'ack.timeoutSeconds is at most 86400 (and at most HISTORY_TTL_SECONDS)'),
    ),
    notify: v.optional(NotifySchema),
    dismissOthers: v.optional(v.boolean('ack.dismissOthers must be true or false')),
  },
  (issue) =>
    issue.expected === 'never'
      ? `unknown field ack.${String(issue.path?.[issue.path.length - 1]?.key)}`
      : 'ack must be an object like {"timeoutSeconds":30,"notify":{"title":"…"}}',
);
export type AckOption = v.InferOutput<typeof AckOptionSchema>;

/** Most ids one `ack` frame may carry (PW-K2). */
export const MAX_ACK_IDS = 100;
