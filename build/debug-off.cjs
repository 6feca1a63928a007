// The `debug` package's interface, always disabled (see esbuild-plugins.cjs).
function createDebug() {
  const log = () => undefined;
  log.enabled = false;
  log.extend = createDebug;
  return log;
}
createDebug.enabled = () => false;
createDebug.default = createDebug;
module.exports = createDebug;
