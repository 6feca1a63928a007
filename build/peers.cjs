// The peer APIs of a stack (WS_PEERS), read at package time by serverless.yml:
// every role that posts to or closes other connections gets
// execute-api:ManageConnections on this stack's API and on each peer, and
// nothing else. lib/config.ts parses the same setting at cold start for the
// `deliver` allow-list and each peer's signing region;
// test/unit/peers.test.ts checks that the two read every example alike.
// CommonJS because osls require()s this file (`${file(build/peers.cjs):…}`).

/** A region's name as AWS spells it (lib/gateway/region.ts). */
const REGION = '[a-z]{2}(?:-[a-z]+)+-\\d+';
/** `https://{api}.execute-api.{region}.amazonaws.com/{stage}`: region, API and stage in the URL. */
const EXECUTE_API = new RegExp(
  `^https://([a-z0-9]+)\\.execute-api\\.(${REGION})\\.amazonaws\\.com(?:\\.cn)?/([\\w-]+)$`,
);
/** `{url}={region}:{api}/{stage}`: a custom domain (or any URL) and the API behind it. */
const EXPLICIT = new RegExp(`^(https?://[^=\\s]+)=(${REGION}):([a-z0-9]+)/([\\w-]+)$`);

/**
 * `WS_PEERS`: comma-separated entries, each
 *   - `https://{api}.execute-api.{region}.amazonaws.com/{stage}`, or
 *   - `{url}={region}:{api}/{stage}` (a custom domain: its URL as that stack's
 *     WS_CALLBACK_URL says it, and the API and stage behind it), or
 *   - `account`: any WebSocket API of this account, in any region.
 */
function parsePeers(text) {
  const peers = [];
  let account = false;
  for (const raw of (text ?? '').split(',')) {
    const entry = raw.trim().replace(/\/+$/, '');
    if (entry === '') continue;
    if (entry === 'account') {
      account = true;
      continue;
    }
    const api = EXECUTE_API.exec(entry);
    const explicit = EXPLICIT.exec(entry);
    if (api) peers.push({ endpoint: entry, region: api[2], apiId: api[1], stage: api[3] });
    else if (explicit)
      peers.push({
        endpoint: explicit[1].replace(/\/+$/, ''),
        region: explicit[2],
        apiId: explicit[3],
        stage: explicit[4],
      });
    else
      throw new Error(
        `WS_PEERS: "${entry}" is not https://{api}.execute-api.{region}.amazonaws.com/{stage}, {url}={region}:{api}/{stage} or account`,
      );
  }
  return { account, peers };
}

/** ManageConnections resources for one method: this stack's API, each peer's, or the account's. */
function resources(method, stage, text) {
  const { account, peers } = parsePeers(text);
  const arn = (region, api, apiStage) => ({
    'Fn::Sub': `arn:\${AWS::Partition}:execute-api:${region}:\${AWS::AccountId}:${api}/${apiStage}/${method}/@connections/*`,
  });
  // Every API, stage and method: IAM takes no wildcard for an API id followed
  // by a path (`*/*/POST/...`; iam-simulate refuses it as AWS documents), so
  // `account` cannot keep a post-only role from closing (docs/deploying.md).
  if (account)
    // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub placeholders
    return [{ 'Fn::Sub': 'arn:${AWS::Partition}:execute-api:*:${AWS::AccountId}:*' }];
  return [
    // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub placeholders
    arn('${AWS::Region}', '${WebsocketsApi}', stage),
    ...peers.map((p) => arn(p.region, p.apiId, p.stage)),
  ];
}

const setting = async ({ resolveVariable }) => ({
  stage: await resolveVariable('sls:stage'),
  text: await resolveVariable("env:WS_PEERS, ''"),
});

module.exports = {
  parsePeers,
  resources,
  /** POST /@connections/*: this API and the peers. */
  post: async (sls) => {
    const { stage, text } = await setting(sls);
    return resources('POST', stage, text);
  },
  /** DELETE /@connections/*: this API and the peers. */
  close: async (sls) => {
    const { stage, text } = await setting(sls);
    return resources('DELETE', stage, text);
  },
};
