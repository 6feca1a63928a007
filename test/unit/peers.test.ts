import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { loadConfig, parsePeers } from '../../lib/config.js';
import { ConfigError } from '../../lib/errors.js';

/**
 * WS_PEERS is read twice: by build/peers.cjs at package time (the roles'
 * ManageConnections resources) and by lib/config.ts at cold start (the
 * `deliver` allow-list and each peer's signing region). The two must read
 * every setting alike, or a role and its function disagree about a peer.
 */

interface Peer {
  endpoint: string;
  region: string;
  apiId: string;
  stage: string;
}
const build = createRequire(import.meta.url)('../../build/peers.cjs') as {
  parsePeers: (text: string) => { account: boolean; peers: Peer[] };
  resources: (method: string, stage: string, text: string) => { 'Fn::Sub': string }[];
};

const DEPLOYED = {
  REDIS_URL_PARAMETER: '/pushwire/prod/redis-url',
  JWT_SECRET_PARAMETER: '/pushwire/prod/jwt-secret',
  STAGE: 'prod',
  WS_API_ENDPOINT: 'https://own111.execute-api.eu-west-1.amazonaws.com/prod',
};

const SETTINGS = [
  '',
  'https://abc123def4.execute-api.us-east-1.amazonaws.com/prod',
  'https://abc123def4.execute-api.us-east-1.amazonaws.com/prod/ , https://zz9.execute-api.ap-southeast-2.amazonaws.com/canary',
  'https://ws-us.example.com=us-east-1:abc123def4/prod',
  'http://127.0.0.1:4001/canary=us-west-2:bbb222/canary,account',
  'account',
  'https://cn1.execute-api.cn-north-1.amazonaws.com.cn/prod',
];

describe('WS_PEERS', () => {
  it.each(SETTINGS)('build/peers.cjs and lib/config.ts read %j alike', (text) => {
    // Act
    const atPackage = build.parsePeers(text);
    const atColdStart = parsePeers(text);

    // Assess: the same peers, each with the same signing region
    expect(atColdStart.account).toBe(atPackage.account);
    expect(atColdStart.regions).toEqual(
      Object.fromEntries(atPackage.peers.map((p) => [p.endpoint, p.region])),
    );
  });

  it.each([
    'https://abc.example.com/prod',
    'https://ws.example.com=useast1:abc/prod',
    'not a url=us-east-1:abc/prod',
    '*',
  ])('both refuse %j and name the setting', (text) => {
    expect(() => build.parsePeers(text)).toThrow(/WS_PEERS/);
    expect(() => parsePeers(text)).toThrow(ConfigError);
    expect(() => loadConfig({ ...DEPLOYED, WS_PEERS: text })).toThrow(/WS_PEERS: ".*" is not/);
  });

  it.each([
    'https://abc.execute-api.us-east-1.amazonaws.com',
    'https://ws.example.com=us-east-1:abc',
    'ftp://x=us-east-1:abc/prod',
  ])('packaging refuses %j (no stage or API to grant): no template carries it', (text) => {
    expect(() => build.parsePeers(text)).toThrow(/WS_PEERS: ".*" is not/);
  });

  it('grants ManageConnections on this API and on each peer, for one method', () => {
    // Act
    const post = build.resources(
      'POST',
      'prod',
      'https://abc.execute-api.us-east-1.amazonaws.com/canary, https://ws.example.com=ap-south-1:def/live',
    );

    // Assess
    expect(post.map((r) => r['Fn::Sub'])).toEqual([
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub placeholders
      'arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebsocketsApi}/prod/POST/@connections/*',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub placeholders
      'arn:${AWS::Partition}:execute-api:us-east-1:${AWS::AccountId}:abc/canary/POST/@connections/*',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub placeholders
      'arn:${AWS::Partition}:execute-api:ap-south-1:${AWS::AccountId}:def/live/POST/@connections/*',
    ]);
    // `account`: every API of the account, in every region (one resource, any method).
    expect(build.resources('DELETE', 'prod', 'account').map((r) => r['Fn::Sub'])).toEqual([
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub placeholders
      'arn:${AWS::Partition}:execute-api:*:${AWS::AccountId}:*',
    ]);
  });

  it("deployed, deliver's allow-list is this API, the callback URL and the peers: nothing recorded besides", () => {
    // Act
    const config = loadConfig({
      ...DEPLOYED,
      WS_PEERS: 'https://ws-us.example.com/=us-east-1:abc/prod',
    });

    // Assess
    expect(config.allowedEndpoints).toEqual([
      'https://own111.execute-api.eu-west-1.amazonaws.com/prod',
      'https://ws-us.example.com',
    ]);
    expect(config.acceptRecordedEndpoints).toBe(false);
    expect(config.peerRegions).toEqual({ 'https://ws-us.example.com': 'us-east-1' });
    // `account` and `npm start` (no IAM there) also accept what the registry recorded.
    expect(loadConfig({ ...DEPLOYED, WS_PEERS: 'account' }).acceptRecordedEndpoints).toBe(true);
    expect(
      loadConfig({ REDIS_URL: 'redis://localhost:6379', JWT_SECRET: 'x'.repeat(32) })
        .acceptRecordedEndpoints,
    ).toBe(true);
  });
});
