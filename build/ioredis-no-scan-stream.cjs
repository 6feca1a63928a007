// ioredis's ScanStream, left out of the bundles (see esbuild-plugins.cjs).
class ScanStream {
  constructor() {
    throw new Error('pushwire bundles leave out ioredis scan streams: use SCAN with a cursor');
  }
}
exports.default = ScanStream;
