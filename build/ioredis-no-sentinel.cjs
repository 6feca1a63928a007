// ioredis's SentinelConnector, left out of the bundles (see esbuild-plugins.cjs).
class SentinelConnector {
  constructor() {
    throw new Error(
      'pushwire bundles leave out Redis Sentinel: use a standalone or cluster endpoint',
    );
  }
}
exports.default = SentinelConnector;
exports.SentinelIterator = undefined;
