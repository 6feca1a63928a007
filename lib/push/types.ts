import * as v from 'valibot';

/**
 * The contract between acknowledged messages (issue 18: acks, timeouts,
 * dismiss) and push fallback (issue 18: Web Push, SNS mobile push). The ack
 * timeout calls a PushSender when no device acked in time; the push code
 * implements it. Neither imports the other's internals.
 */

/** What a push notification shows: a publish's `ack.notify`. */
export const NotifySchema = v.strictObject({
  title: v.pipe(v.string('notify.title must be a string'), v.minLength(1), v.maxLength(256)),
  body: v.optional(v.pipe(v.string('notify.body must be a string'), v.maxLength(2_048))),
  /** App data handed to the service worker / app with the notification (JSON, small). */
  data: v.optional(v.unknown()),
  /** Groups notifications on the device (Web Push Topic, APNs collapse id, FCM tag). */
  tag: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^[A-Za-z0-9_-]{1,32}$/, 'notify.tag must be 1-32 characters of A-Z a-z 0-9 _ -'),
    ),
  ),
  /** How long a push service keeps an undelivered notification (default: the ack timeout's message lifetime). */
  ttlSeconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2_419_200))),
  urgency: v.optional(v.picklist(['very-low', 'low', 'normal', 'high'])),
});
export type Notify = v.InferOutput<typeof NotifySchema>;

/** The message a push stands in for. */
export interface PushedMessage {
  id: string;
  /** Its cursor in the user's stream, when stored. */
  cursor?: string | undefined;
}

/** What one fallback push did, per device kind; recorded in the message's delivery status. */
export interface PushOutcome {
  /** Devices registered for the user when the push was sent. */
  devices: number;
  /** Accepted by the push service (Web Push 201, SNS Publish 200). */
  sent: number;
  /** Failed after the bounded retries (throttled, 5xx, network). */
  failed: number;
  /** Reported gone or disabled by the provider, and removed from the user's devices. */
  removed: number;
}

export interface PushSender {
  send(userId: string, notify: Notify, message: PushedMessage): Promise<PushOutcome>;
}
