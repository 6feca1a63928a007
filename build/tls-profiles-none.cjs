// ioredis's TLS profile table, empty (see esbuild-plugins.cjs): an unknown
// profile name then fails in ioredis as it would for a misspelt one.
exports.default = {};
