import { type ChildProcess, execFile, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import JSZip from 'jszip';

const run = promisify(execFile);

/** A function as the packaged CloudFormation template declares it. */
export interface PackagedFunction {
  /** serverless.yml's key: connect, default, publish, ... */
  key: string;
  functionName: string;
  handler: string;
  runtime: string;
  memorySize: number;
  timeoutSeconds: number;
  /** Environment the template sets (strings only: no intrinsic functions are expected). */
  environment: Record<string, string>;
  zip: string;
}

export interface Packaged {
  dir: string;
  stage: string;
  region: string;
  functions: Map<string, PackagedFunction>;
  /** The packaged CloudFormation template, as written (test/sandbox/iam.ts reads its roles). */
  template: Template;
}

export interface Template {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}

/** What CloudFormation would put for a value with intrinsic functions (test/sandbox/iam.ts). */
export type Resolve = (value: unknown) => unknown;

/** What `osls package` reads from the project (serverless.yml and what it names). */
const SERVICE_SOURCES = [
  'serverless.yml',
  'package.json',
  'tsconfig.json',
  'functions',
  'lib',
  'build',
];

/**
 * `osls package` exactly as a deploy does, into `dir`, from a copy of the
 * project (a developer's own .serverless is left alone), with `env` as the shell that
 * packages would have it; returns the functions the template declares.
 */
export async function packageService(
  dir: string,
  stage: string,
  region: string,
  env: Record<string, string>,
  resolveWith: (template: Template) => Resolve,
): Promise<Packaged> {
  // osls writes and then removes <service>/.serverless even with --package:
  // two packages at once (or a developer's own) would race there. Each runs
  // in its own copy of the source, node_modules linked, as a deploy would.
  const service = mkdtempSync(join(tmpdir(), `pushwire-service-${stage}-${region}-`));
  try {
    for (const entry of SERVICE_SOURCES)
      cpSync(resolve(entry), join(service, entry), { recursive: true });
    symlinkSync(resolve('node_modules'), join(service, 'node_modules'), 'dir');
    await run(
      join(service, 'node_modules/.bin/osls'),
      ['package', '--stage', stage, '--region', region, '--package', dir],
      { cwd: service, env: { ...process.env, ...env }, maxBuffer: 16 << 20 },
    ).catch((error: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(`osls package failed: ${error.message}\n${error.stdout}\n${error.stderr}`);
    });
  } finally {
    rmSync(service, { recursive: true, force: true });
  }
  const template = JSON.parse(
    readFileSync(join(dir, 'cloudformation-template-update-stack.json'), 'utf8'),
  ) as Template;
  const resolved = resolveWith(template);
  const functions = new Map<string, PackagedFunction>();
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const p = resource.Properties as {
      FunctionName: string;
      Handler: string;
      Runtime: string;
      MemorySize: number;
      Timeout: number;
      Environment?: { Variables?: Record<string, unknown> };
      Code: { S3Key: string };
    };
    const environment: Record<string, string> = {};
    for (const [name, raw] of Object.entries(p.Environment?.Variables ?? {})) {
      // As CloudFormation would set it (WS_API_ENDPOINT names the API's id).
      const value = resolved(raw);
      if (typeof value !== 'string')
        throw new Error(`${p.FunctionName}: ${name} does not resolve to a string`);
      environment[name] = value;
    }
    const zip = basename(p.Code.S3Key);
    const key = zip.replace(/\.zip$/, '');
    functions.set(key, {
      key,
      functionName: p.FunctionName,
      handler: p.Handler,
      runtime: p.Runtime,
      memorySize: p.MemorySize,
      timeoutSeconds: p.Timeout,
      environment,
      zip: join(dir, zip),
    });
  }
  return { dir, stage, region, functions, template };
}

/** Folders on the way from `dir` to the root that hold a node_modules. */
export function nodeModulesAbove(dir: string): string[] {
  const found: string[] = [];
  for (let current = resolve(dir); ; current = dirname(current)) {
    if (existsSync(join(current, 'node_modules'))) found.push(join(current, 'node_modules'));
    if (dirname(current) === current) return found;
  }
}

/** Unzips a function's zip into `dir` (as Lambda does into /var/task). */
export async function unzipInto(zipFile: string, dir: string): Promise<string[]> {
  const zip = await JSZip.loadAsync(readFileSync(zipFile));
  const files: string[] = [];
  for (const entry of Object.values(zip.files)) {
    const target = resolve(dir, entry.name);
    if (!target.startsWith(`${resolve(dir)}/`)) throw new Error(`${entry.name} escapes ${dir}`);
    if (entry.dir) {
      mkdirSync(target, { recursive: true });
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, await entry.async('nodebuffer'));
    files.push(entry.name);
  }
  return files;
}

export interface LambdaError {
  errorType: string;
  errorMessage: string;
  stack: string[];
}

export type InvokeOutcome =
  | { ok: true; result: unknown; requested: string[] }
  | { ok: false; error: LambdaError; requested: string[] };

interface Instance {
  child: ChildProcess;
  busy: boolean;
  /** Modules requested during init. */
  initRequested: string[];
  initMs: number;
  pending: Map<string, (outcome: InvokeOutcome) => void>;
}

export interface SandboxOptions {
  /** Empty folder the zips are unzipped into, one folder per function. */
  root: string;
  node: string;
  region: string;
  /** Each function's session of its role, as Lambda puts it in the environment. */
  credentials: (fn: PackagedFunction) => {
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken: string;
  };
  /** Concurrent instances a function may have (each cold-starts, as on Lambda). */
  maxInstances?: number;
}

/** Something the sandbox saw that a test must treat as a failure. */
export interface SandboxProblem {
  functionKey: string;
  what: string;
}

/**
 * Runs packaged functions as Lambda's Node runtime would: each function's
 * zip unzipped into its own folder with no node_modules above it, started
 * with the given Node binary and only the environment Lambda gives a
 * function (the template's variables plus Lambda's own), one invocation at a
 * time per instance; a new instance cold-starts when all are busy.
 */
export class LambdaSandbox {
  readonly #options: SandboxOptions;
  readonly #functions: Map<string, PackagedFunction>;
  readonly #instances = new Map<string, Instance[]>();
  readonly #waiting = new Map<string, (() => void)[]>();
  readonly #starting = new Map<string, number>();
  readonly #bootstrap: string;
  #output = '';
  readonly problems: SandboxProblem[] = [];
  /** Every module any instance requested that is not a Node built-in or the handler's own file. */
  readonly foreignModules: { functionKey: string; request: string }[] = [];
  readonly coldStarts: { functionKey: string; initMs: number; requested: string[] }[] = [];
  /** Modules each cold start and each invocation requested for the first time, in order. */
  readonly loads: { functionKey: string; phase: 'init' | 'invoke'; requested: string[] }[] = [];

  private constructor(options: SandboxOptions, functions: Map<string, PackagedFunction>) {
    this.#options = options;
    this.#functions = functions;
    this.#bootstrap = join(options.root, 'runtime', 'bootstrap.cjs');
  }

  /** Unzips every packaged function under `options.root`. */
  static async create(options: SandboxOptions, packaged: Packaged): Promise<LambdaSandbox> {
    const above = nodeModulesAbove(options.root);
    if (above.length > 0)
      throw new Error(`the sandbox must have no node_modules above it: ${above.join(', ')}`);
    mkdirSync(join(options.root, 'runtime'), { recursive: true });
    copyFileSync(
      join(dirname(new URL(import.meta.url).pathname), 'bootstrap.cjs'),
      join(options.root, 'runtime', 'bootstrap.cjs'),
    );
    for (const fn of packaged.functions.values())
      await unzipInto(fn.zip, join(options.root, 'task', fn.key));
    return new LambdaSandbox(options, packaged.functions);
  }

  functionNamed(functionName: string): PackagedFunction | undefined {
    return [...this.#functions.values()].find((f) => f.functionName === functionName);
  }

  output(): string {
    return this.#output;
  }

  #environment(fn: PackagedFunction): Record<string, string> {
    const { region } = this.#options;
    const credentials = this.#options.credentials(fn);
    const taskRoot = join(this.#options.root, 'task', fn.key);
    // What Lambda sets for a function, besides the template's variables
    // (AWS docs, "Defined runtime environment variables"). NODE_PATH is
    // Lambda's, minus the runtime's own folders: nothing outside the zip.
    return {
      ...fn.environment,
      _HANDLER: fn.handler,
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_EXECUTION_ENV: `AWS_Lambda_${fn.runtime}`,
      AWS_LAMBDA_FUNCTION_NAME: fn.functionName,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize),
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.functionName}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `2026/01/01/[$LATEST]${randomUUID().replaceAll('-', '')}`,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_SESSION_TOKEN: credentials.sessionToken,
      LAMBDA_TASK_ROOT: taskRoot,
      LAMBDA_RUNTIME_DIR: join(this.#options.root, 'runtime'),
      NODE_PATH: taskRoot,
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      PATH: '/usr/local/bin:/usr/bin:/bin',
    };
  }

  async #start(fn: PackagedFunction): Promise<Instance> {
    const child = fork(this.#bootstrap, [], {
      execPath: this.#options.node,
      execArgv: [],
      cwd: join(this.#options.root, 'task', fn.key),
      env: this.#environment(fn),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const log = (chunk: Buffer) => {
      this.#output += `[${fn.key}] ${chunk.toString()}`;
    };
    child.stdout?.on('data', log);
    child.stderr?.on('data', log);
    const instance: Instance = {
      child,
      busy: true,
      initRequested: [],
      initMs: 0,
      pending: new Map(),
    };
    const fail = (what: string) => {
      this.problems.push({ functionKey: fn.key, what });
      for (const [, settle] of instance.pending)
        settle({
          ok: false,
          error: { errorType: 'Sandbox', errorMessage: what, stack: [] },
          requested: [],
        });
      instance.pending.clear();
    };
    await new Promise<void>((resolveInit, rejectInit) => {
      child.on('message', (message: Record<string, unknown>) => {
        this.#note(fn, (message['requested'] as string[] | undefined) ?? []);
        if (message['type'] === 'init') {
          if (message['ok'] !== true) {
            const error = message['error'] as LambdaError;
            fail(`init failed: ${error.errorType}: ${error.errorMessage}`);
            rejectInit(
              new Error(`${fn.key}: init failed: ${error.errorType}: ${error.errorMessage}`),
            );
            return;
          }
          instance.initRequested = message['requested'] as string[];
          instance.initMs = message['initMs'] as number;
          this.coldStarts.push({
            functionKey: fn.key,
            initMs: instance.initMs,
            requested: instance.initRequested,
          });
          this.loads.push({
            functionKey: fn.key,
            phase: 'init',
            requested: instance.initRequested,
          });
          resolveInit();
        } else if (message['type'] === 'result') {
          const settle = instance.pending.get(message['id'] as string);
          instance.pending.delete(message['id'] as string);
          settle?.(message as unknown as InvokeOutcome);
        } else if (message['type'] === 'crash') {
          const error = message['error'] as LambdaError;
          fail(`crashed: ${error.errorType}: ${error.errorMessage}`);
        }
      });
      child.once('exit', (code, signal) => {
        const list = this.#instances.get(fn.key) ?? [];
        this.#instances.set(
          fn.key,
          list.filter((i) => i !== instance),
        );
        if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') {
          fail(`exited with ${code ?? signal}`);
          rejectInit(
            new Error(`${fn.key} exited with ${code ?? signal}:\n${this.#output.slice(-2000)}`),
          );
        }
      });
    });
    return instance;
  }

  #note(fn: PackagedFunction, requested: string[]) {
    const taskRoot = join(this.#options.root, 'task', fn.key);
    for (const request of requested) {
      if (isBuiltin(request)) continue;
      if (request.startsWith(taskRoot)) continue; // the handler file itself
      this.foreignModules.push({ functionKey: fn.key, request });
    }
  }

  /** An idle instance of the function, cold-starting one if all are busy and the cap allows. */
  async #acquire(fn: PackagedFunction): Promise<Instance> {
    for (;;) {
      const instances = this.#instances.get(fn.key) ?? [];
      const idle = instances.find((i) => !i.busy);
      if (idle) {
        idle.busy = true;
        return idle;
      }
      const starting = this.#starting.get(fn.key) ?? 0;
      if (instances.length + starting < (this.#options.maxInstances ?? 4)) {
        this.#starting.set(fn.key, starting + 1);
        try {
          const instance = await this.#start(fn);
          this.#instances.set(fn.key, [...(this.#instances.get(fn.key) ?? []), instance]);
          return instance;
        } finally {
          this.#starting.set(fn.key, (this.#starting.get(fn.key) ?? 1) - 1);
        }
      }
      await new Promise<void>((wake) => {
        this.#waiting.set(fn.key, [...(this.#waiting.get(fn.key) ?? []), wake]);
      });
    }
  }

  #release(fn: PackagedFunction, instance: Instance) {
    instance.busy = false;
    const waiting = this.#waiting.get(fn.key) ?? [];
    const next = waiting.shift();
    next?.();
  }

  /** Invokes a function (by key or name) with an event, as Lambda would. */
  async invoke(functionKeyOrName: string, event: unknown): Promise<InvokeOutcome> {
    const fn = this.#functions.get(functionKeyOrName) ?? this.functionNamed(functionKeyOrName);
    if (!fn) throw new Error(`no function ${functionKeyOrName} in the template`);
    const instance = await this.#acquire(fn);
    try {
      const id = randomUUID();
      const deadlineMs = Date.now() + fn.timeoutSeconds * 1000;
      const outcome = new Promise<InvokeOutcome>((settle) => instance.pending.set(id, settle));
      instance.child.send({
        type: 'invoke',
        id,
        event,
        deadlineMs,
        context: {
          functionName: fn.functionName,
          functionVersion: '$LATEST',
          invokedFunctionArn: `arn:aws:lambda:${this.#options.region}:123456789012:function:${fn.functionName}`,
          memoryLimitInMB: String(fn.memorySize),
          awsRequestId: id,
          logGroupName: `/aws/lambda/${fn.functionName}`,
          logStreamName: '2026/01/01/[$LATEST]sandbox',
        },
      });
      const settled = await outcome;
      this.loads.push({ functionKey: fn.key, phase: 'invoke', requested: settled.requested });
      return settled;
    } finally {
      this.#release(fn, instance);
    }
  }

  /** Invokes and returns the result; a handler error fails with its message. */
  async invokeOk<T = unknown>(functionKeyOrName: string, event: unknown): Promise<T> {
    const outcome = await this.invoke(functionKeyOrName, event);
    if (!outcome.ok)
      throw new Error(
        `${functionKeyOrName} failed: ${outcome.error.errorType}: ${outcome.error.errorMessage}\n${outcome.error.stack.join('\n')}`,
      );
    return outcome.result as T;
  }

  /** Instances of a function running now. */
  instanceCount(functionKey: string): number {
    return this.#instances.get(functionKey)?.length ?? 0;
  }

  async stop(): Promise<void> {
    const all = [...this.#instances.values()].flat();
    await Promise.all(
      all.map(
        (i) =>
          new Promise<void>((done) => {
            if (i.child.exitCode !== null || i.child.signalCode !== null) return done();
            i.child.once('exit', () => done());
            i.child.kill('SIGTERM');
          }),
      ),
    );
    this.#instances.clear();
  }
}
