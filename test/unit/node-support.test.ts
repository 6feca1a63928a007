/**
 * The Node versions pushwire states it supports (issue 22): package.json's
 * `engines`, what npm start says on another, and the versions the sandbox and
 * the docs test run on agree.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MIN_NODE_MAJOR, nodeSupportNotice } from '../../scripts/local-env.js';
import { NODE_VERSIONS } from '../sandbox/node-runtimes.js';

describe('supported Node versions', () => {
  it('npm start names an unsupported Node once, and says nothing on 22 or 24', () => {
    expect(nodeSupportNotice('v20.20.2')).toBe(
      'pushwire: Node v20.20.2 is not supported (Node 20 reached end of life in April 2026; ' +
        "use Node 22 or 24). npm start still runs on it; the AWS SDK's warning about it is silenced.",
    );
    expect(nodeSupportNotice('v22.12.0')).toBeUndefined();
    expect(nodeSupportNotice('v24.21.0')).toBeUndefined();
  });

  it('engines, the notice and the tested runtimes name the same minimum', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe(`>=${MIN_NODE_MAJOR}`);
    // The sandbox runs the zips on each supported major, the lowest included.
    expect(Object.keys(NODE_VERSIONS).map(Number).sort()).toEqual([MIN_NODE_MAJOR, 24]);
    // serverless.yml deploys on a supported runtime.
    expect(readFileSync('serverless.yml', 'utf8')).toMatch(/^ {2}runtime: nodejs(22|24)\.x$/m);
  });
});
