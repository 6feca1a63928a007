import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The deploy template as `npm run package` writes it (osls package, stage
 * prod), built with known secret values in the shell: neither may appear in
 * anything written (template, serverless-state.json, bundles), and the
 * template must pass cfn-lint with no errors (.ci/run installs cfn-lint).
 */

const JWT_SECRET = 'known-jwt-secret-3b9f0c6e1a2d4f5e6a7b8c9d';
const REDIS_PASSWORD = 'knownRedisPassword7c1e9a';
const REDIS_URL = `rediss://:${REDIS_PASSWORD}@cache.example:6379`;

const PEERS =
  'https://abc123def4.execute-api.us-east-1.amazonaws.com/prod, https://ws-eu.example.com=eu-central-1:xyz789/live';

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pushwire-package-'));
  await promisify(execFile)(
    'node_modules/.bin/osls',
    ['package', '--stage', 'prod', '--package', join(dir, 'out')],
    {
      env: {
        ...process.env,
        JWT_SECRET,
        REDIS_URL,
        REDIS_PASSWORD,
        // Two peers (docs/deploying.md): cfn-lint sees their grants too.
        WS_PEERS: PEERS,
        PUSHWIRE_BUILD_DIR: join(dir, 'build'),
      },
      maxBuffer: 16 * 1024 * 1024,
    },
  );
}, 180_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Every file written, as text; zipped bundles unpacked. */
function everything(): { name: string; text: string }[] {
  const out = join(dir, 'out');
  return readdirSync(out).flatMap((name) => {
    const path = join(out, name);
    if (!name.endsWith('.zip')) return [{ name, text: readFileSync(path, 'utf8') }];
    const unzipped = spawnSync('unzip', ['-p', path], { maxBuffer: 64 * 1024 * 1024 });
    return [{ name, text: unzipped.stdout.toString('utf8') }];
  });
}

describe('osls package (stage prod)', () => {
  it('writes no secret value anywhere, serverless-state.json and bundles included', () => {
    // Act
    const files = everything();

    // Assess
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        'cloudformation-template-update-stack.json',
        'serverless-state.json',
      ]),
    );
    const leaking = files
      .filter((f) => [JWT_SECRET, REDIS_PASSWORD, REDIS_URL].some((s) => f.text.includes(s)))
      .map((f) => f.name);
    expect(leaking).toEqual([]);
  });

  it('names the secrets by parameter instead', () => {
    // Prepare
    const template = JSON.parse(
      readFileSync(join(dir, 'out', 'cloudformation-template-update-stack.json'), 'utf8'),
    );

    // Act
    const env = template.Resources.ConnectLambdaFunction.Properties.Environment.Variables;

    // Assess
    expect(env.REDIS_URL_PARAMETER).toBe('/pushwire/prod/redis-url');
    expect(env.STAGE).toBe('prod');
    expect(env).not.toHaveProperty('JWT_SECRET');
    expect(env).not.toHaveProperty('REDIS_URL');
  });

  it('gives each function group only the permissions it uses', () => {
    // Prepare
    const template = JSON.parse(
      readFileSync(join(dir, 'out', 'cloudformation-template-update-stack.json'), 'utf8'),
    );
    const r = template.Resources;
    const roleOf = (fn: string) => r[`${fn}LambdaFunction`].Properties.Role['Fn::GetAtt'][0];
    const actions = (role: string) =>
      JSON.stringify(r[role].Properties.Policies ?? []).match(/"Action":"[^"]+"/g) ?? [];
    const methods = (role: string) =>
      JSON.stringify(r[role].Properties.Policies ?? []).match(/(POST|DELETE)\/@connections/g) ?? [];

    // Act + Assess
    // The registry role (connect, disconnect, presence) may only hand a leave
    // recorded by $disconnect to presenceEvents, nothing else.
    expect(actions(roleOf('Connect'))).toEqual(['"Action":"lambda:InvokeFunction"']);
    expect(JSON.stringify(r[roleOf('Connect')].Properties.Policies)).toContain(
      ':function:pushwire-prod-presenceEvents"',
    );
    expect(methods(roleOf('Connect'))).toEqual([]);
    expect(roleOf('Disconnect')).toBe(roleOf('Connect'));
    expect(roleOf('Presence')).toBe(roleOf('Connect'));
    // $default answers only its caller: this API; the others this API and both peers.
    expect(methods(roleOf('Default'))).toEqual(['POST/@connections', 'DELETE/@connections']);
    expect(methods(roleOf('Publish'))).toEqual(Array(3).fill('POST/@connections'));
    expect(actions(roleOf('Publish'))).toContain('"Action":"lambda:InvokeFunction"');
    expect(methods(roleOf('Deliver'))).toEqual(Array(3).fill('POST/@connections'));
    expect(actions(roleOf('Deliver'))).not.toContain('"Action":"lambda:InvokeFunction"');
    // kick tells each connection why (its last frame, docs/protocol.md PW-X2), then closes it.
    expect(methods(roleOf('Kick'))).toEqual([
      ...Array(3).fill('POST/@connections'),
      ...Array(3).fill('DELETE/@connections'),
    ]);
    expect(actions(roleOf('Kick'))).not.toContain('"Action":"lambda:InvokeFunction"');
    expect(JSON.stringify(r[roleOf('Kick')].Properties.Policies)).toContain(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub placeholders
      ':execute-api:eu-central-1:${AWS::AccountId}:xyz789/live/DELETE/@connections/*',
    );
    expect(r.DeliverLambdaFunction.Properties.Environment.Variables.WS_PEERS).toBe(PEERS);
    expect(JSON.stringify(template)).not.toContain('AWSLambdaVPCAccessExecutionRole');
    for (const fn of ['Connect', 'Disconnect', 'Default']) {
      expect(r[`${fn}LambdaPermissionWebsockets`].Properties.SourceArn).toBeDefined();
    }
    expect(r.WebsocketsDeploymentStage.Properties.DefaultRouteSettings).toMatchObject({
      ThrottlingRateLimit: expect.any(Number),
      ThrottlingBurstLimit: expect.any(Number),
    });
    expect(r.DefaultLambdaFunction.Properties.ReservedConcurrentExecutions).toBeGreaterThan(0);
    expect(r.ConnectLambdaFunction.Properties.ReservedConcurrentExecutions).toBeGreaterThan(0);
  });

  it('lets only the events relay put events, on the one configured bus', () => {
    // Prepare
    const template = JSON.parse(
      readFileSync(join(dir, 'out', 'cloudformation-template-update-stack.json'), 'utf8'),
    );
    const r = template.Resources;
    const role = r.EventsLambdaFunction.Properties.Role['Fn::GetAtt'][0];

    // Act
    const statements = r[role].Properties.Policies.flatMap(
      (p: { PolicyDocument: { Statement: unknown[] } }) => p.PolicyDocument.Statement,
    );
    const putters = Object.entries(r as Record<string, { Type: string }>)
      .filter(([, resource]) => JSON.stringify(resource).includes('events:PutEvents'))
      .map(([name]) => name);

    // Assess
    expect(statements).toEqual([
      {
        Sid: 'PutLifecycleEvents',
        Effect: 'Allow',
        Action: 'events:PutEvents',
        Resource: {
          // CloudFormation's own ${...} placeholders, not JavaScript's.
          'Fn::Sub': [
            'arn:$',
            '{AWS::Partition}:events:$',
            '{AWS::Region}:$',
            '{AWS::AccountId}:event-bus/default',
          ].join(''),
        },
      },
    ]);
    expect(putters).toEqual([role]);
    expect(r.EventsLambdaFunction.Properties.Environment.Variables.EVENTS_BUS).toBe('default');
  });

  it('passes cfn-lint with no errors', () => {
    // Act
    const lint = spawnSync(
      'cfn-lint',
      [join(dir, 'out', 'cloudformation-template-update-stack.json')],
      { encoding: 'utf8' },
    );

    // Assess
    if (lint.error) {
      throw new Error(`cfn-lint is not installed (pip install cfn-lint): ${lint.error.message}`);
    }
    // cfn-lint's exit code is a bit mask: 2 = errors (4 warnings, 8 informational).
    expect({ errors: (lint.status ?? 2) & 2, output: lint.stdout }).toMatchObject({ errors: 0 });
  });
});
