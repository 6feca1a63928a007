import { describe, expectTypeOf, it } from 'vitest';
import type { KickResult as ServerKick } from '../../lib/admin/kick.js';
import type { PresenceResult as ServerPresence } from '../../lib/admin/presence.js';
import type {
  BatchResult as ServerBatch,
  BatchMessageResult as ServerBatchMessage,
} from '../../lib/delivery/batch.js';
import type { PublishResult as ServerPublish } from '../../lib/delivery/publish.js';
import type {
  PublishBatchResult as SdkBatch,
  PublishBatchMessageResult as SdkBatchMessage,
  KickResult as SdkKick,
  PresenceResult as SdkPresence,
  PublishResult as SdkPublish,
} from '../../server/types.js';

/**
 * The server SDK (server/types.ts) states the service API's results on its
 * own, so it builds without lib/; these checks fail the typecheck when the
 * two drift apart.
 */
describe('server SDK types', () => {
  it('state the results the functions return', () => {
    expectTypeOf<SdkPublish>().toEqualTypeOf<ServerPublish>();
    expectTypeOf<SdkBatch>().toEqualTypeOf<ServerBatch>();
    expectTypeOf<SdkBatchMessage>().toEqualTypeOf<ServerBatchMessage>();
    expectTypeOf<SdkPresence>().toEqualTypeOf<ServerPresence>();
    expectTypeOf<SdkKick>().toEqualTypeOf<ServerKick>();
  });
});
