// ioredis's ClusterSubscriber (a cluster's Pub/Sub connection), left out of
// the bundles (see esbuild-plugins.cjs). Every Cluster makes one and starts it
// when ready; until a SUBSCRIBE it only holds a lazy, unconnected client. We
// use no Pub/Sub, so this one holds none: a SUBSCRIBE on a cluster fails
// with ioredis's own "No subscriber for the cluster".
class ClusterSubscriber {
  started = false;
  getInstance() {
    return null;
  }
  associateSlotRange() {
    return [];
  }
  start() {
    this.started = true;
  }
  stop() {
    this.started = false;
  }
  isStarted() {
    return this.started;
  }
}
exports.default = ClusterSubscriber;
