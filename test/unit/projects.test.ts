/**
 * Every vitest project is run by exactly one of `npm test`, `npm run
 * test:faults` and `npm run test:model`: `npm test` names its projects (vitest
 * joins `--project` filters with "or", so two negations would select all), and
 * a project added to vitest.config.ts without a script would run nowhere.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import config from '../../vitest.config.js';

it('each vitest project belongs to exactly one test script', () => {
  const projects = (config.test?.projects ?? []).map(
    (p) => (p as { test?: { name?: string } }).test?.name,
  );
  expect(projects).toContain('model-long');
  const scripts = (
    JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    }
  ).scripts;
  const runs = (script: string) =>
    [...(scripts[script] ?? '').matchAll(/--project[ =](\S+)/g)].map((m) => m[1]);
  const owners = new Map<string, string[]>();
  for (const script of ['test', 'test:faults', 'test:model'])
    for (const project of runs(script)) {
      expect(project, `${script}: a plain project name`).toMatch(/^[\w-]+$/);
      owners.set(project as string, [...(owners.get(project as string) ?? []), script]);
    }
  for (const project of projects)
    expect(owners.get(project as string), `project ${project}`).toHaveLength(1);
  expect([...owners.keys()].sort()).toEqual([...projects].sort());
});
