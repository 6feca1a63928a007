// ioredis's ClusterSubscriberGroup (sharded Pub/Sub), left out of the bundles
// (see esbuild-plugins.cjs).
class ClusterSubscriberGroup {
  constructor() {
    throw new Error('pushwire bundles leave out sharded Pub/Sub (shardedSubscribers)');
  }
}
exports.default = ClusterSubscriberGroup;
