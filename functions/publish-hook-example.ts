/**
 * An example publish hook (docs/clients.md, "Publish hook"), part of the
 * `local` stage only (`npm start`; build/publish-hook.cjs): run it with
 * `PUBLISH_HOOK_FUNCTION=pushwire-local-publishHookExample npm start`.
 * It moderates chat text and lets the end-to-end tests steer it by
 * `data.hook`. A real hook is any Lambda function answering the same shapes.
 */
interface HookRequest {
  topic: string;
  data: unknown;
  id: string;
  userId: string;
  connectionId: string;
  ephemeral: boolean;
}

const BANNED = /\bbadword\b/i;

export const handler = async (request: HookRequest): Promise<unknown> => {
  const data = request.data as { hook?: string; text?: unknown } | null;
  switch (typeof data === 'object' && data !== null ? data.hook : undefined) {
    case 'deny':
      return { allow: false, reason: 'the example hook refuses hook:"deny"' };
    case 'replace':
      return { allow: true, data: { replaced: true, by: 'example hook', userId: request.userId } };
    case 'slow':
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      return { allow: true };
    case 'fail':
      throw new Error('the example hook fails on hook:"fail"');
    case 'nonsense':
      return 42;
  }
  // Moderation: refuse a banned word; enrichment: trim long text.
  const text = typeof data === 'object' && data !== null ? data.text : undefined;
  if (typeof text === 'string' && BANNED.test(text))
    return { allow: false, reason: 'that word is not allowed here' };
  if (typeof text === 'string' && text.length > 500)
    return { allow: true, data: { ...data, text: `${text.slice(0, 500)}…` } };
  return { allow: true };
};
