import { describe, expect, it } from 'vitest';
import { PushwireError, UnavailableError } from '../../lib/errors.js';
import { pushDevices } from '../../lib/session/push-devices.js';

/** `$default`'s push_register / push_unregister: what it hands `devices`, and how it answers. */
describe('push device frames', () => {
  it("hands the devices function the connection's user, never one from the frame", async () => {
    const seen: unknown[] = [];
    const reply = await pushDevices(
      'alice',
      { action: 'push_register', webpush: { endpoint: 'e' } },
      async (request) => {
        seen.push(request);
        return { registered: { id: 'w_x', expiresAt: 5 }, evicted: [{ id: 'w_old' }] };
      },
    );
    expect(seen).toEqual([{ action: 'register', userId: 'alice', webpush: { endpoint: 'e' } }]);
    expect(reply).toEqual({ type: 'push_registered', id: 'w_x', expiresAt: 5, evicted: ['w_old'] });
  });

  it('answers an unregister, passes a refusal on with its code, and a failed relay as unavailable', async () => {
    expect(
      await pushDevices('bob', { action: 'push_unregister', id: 'w_x' }, async () => ({
        removed: false,
        id: 'w_x',
      })),
    ).toEqual({ type: 'push_unregistered', id: 'w_x', removed: false });
    const refused = pushDevices('bob', { action: 'push_register' }, async () => ({
      error: { code: 'push_unsupported', message: 'no VAPID keys' },
    }));
    await expect(refused).rejects.toBeInstanceOf(PushwireError);
    await expect(refused).rejects.toMatchObject({
      code: 'push_unsupported',
      message: 'no VAPID keys',
    });
    await expect(
      pushDevices('bob', { action: 'push_register' }, async () => {
        throw new Error('invoke failed');
      }),
    ).rejects.toBeInstanceOf(UnavailableError);
    await expect(
      pushDevices('bob', { action: 'push_register' }, async () => null),
    ).rejects.toBeInstanceOf(UnavailableError);
  });
});
