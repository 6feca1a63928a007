// @cloud-copilot/iam-simulate is AGPL-3.0: a devDependency used by this test
// only, never bundled into a function or shipped (docs/deploying.md).
import { runSimulation } from '@cloud-copilot/iam-simulate';
import type { Packaged, Resolve, Template } from './lambda-sandbox.js';
import { ACCOUNT_ID, type AwsRequest } from './stand-ins.js';

/**
 * The packaged template's IAM, evaluated as AWS would: each function's role
 * with every policy attached to it (inline, the template's managed and
 * standalone policies, and AWS's own AWSLambdaBasicExecutionRole), resolved
 * for one stack (its API id, region, account), and every request a function
 * made checked against its own role by iam-simulate.
 */

/** What CloudFormation knows when it resolves the template of one stack. */
export interface StackFacts {
  /** A name for the stack in messages and keys (the stand-ins' keyring). */
  name: string;
  stage: string;
  region: string;
  /** The id CloudFormation would give the WebSocket API. */
  apiId: string;
}

/** AWS's managed policy, as it reads today (logs only): the template references it by ARN. */
const BASIC_EXECUTION = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: '*',
    },
  ],
};

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
  Condition?: unknown;
}
interface PolicyDocument {
  Version: string;
  Statement: Statement[];
}
export interface RolePolicy {
  /** Where it comes from: `PushwireClientRole/post-and-close`, `PushwireSecretsPolicy`. */
  name: string;
  document: PolicyDocument;
}

/** One (statement, action, resource) a role grants: what "used" is counted against. */
export interface Grant {
  role: string;
  policy: string;
  statement: string;
  action: string;
  resource: string;
}

const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

/** Resolves Ref, Fn::Sub, Fn::GetAtt and Fn::Join as CloudFormation would for this stack. */
export function resolver(facts: StackFacts): (template: Template) => Resolve {
  return (template) => {
    const resources = template.Resources;
    const ref = (name: string): string => {
      const pseudo: Record<string, string> = {
        'AWS::Partition': 'aws',
        'AWS::Region': facts.region,
        'AWS::AccountId': ACCOUNT_ID,
        'AWS::URLSuffix': 'amazonaws.com',
      };
      if (pseudo[name] !== undefined) return pseudo[name];
      const resource = resources[name];
      if (!resource) throw new Error(`Ref to ${name}: no such resource`);
      if (name === 'WebsocketsApi') return facts.apiId;
      if (resource.Type === 'AWS::IAM::ManagedPolicy')
        return `arn:aws:iam::${ACCOUNT_ID}:policy/${facts.name}-${name}`;
      if (resource.Type === 'AWS::IAM::Role') return `${facts.name}-${name}`;
      if (resource.Type === 'AWS::SQS::Queue')
        return `https://sqs.${facts.region}.amazonaws.com/${ACCOUNT_ID}/${resource.Properties['QueueName']}`;
      throw new Error(`Ref to ${name} (${resource.Type}): not resolved by the sandbox`);
    };
    const getAtt = (name: string, attribute: string): string => {
      const resource = resources[name];
      if (resource?.Type === 'AWS::IAM::Role' && attribute === 'Arn')
        return `arn:aws:iam::${ACCOUNT_ID}:role/${facts.name}-${name}`;
      if (resource?.Type === 'AWS::SQS::Queue' && attribute === 'Arn')
        return `arn:aws:sqs:${facts.region}:${ACCOUNT_ID}:${resource.Properties['QueueName']}`;
      if (resource?.Type === 'AWS::Lambda::Function' && attribute === 'Arn')
        return `arn:aws:lambda:${facts.region}:${ACCOUNT_ID}:function:${resource.Properties['FunctionName']}`;
      throw new Error(`Fn::GetAtt ${name}.${attribute}: not resolved by the sandbox`);
    };
    const resolve: Resolve = (value) => {
      if (Array.isArray(value)) return value.map(resolve);
      if (value === null || typeof value !== 'object') return value;
      const o = value as Record<string, unknown>;
      if ('Ref' in o) return ref(o['Ref'] as string);
      if ('Fn::GetAtt' in o) {
        const [name, attribute] = o['Fn::GetAtt'] as [string, string];
        return getAtt(name, attribute);
      }
      if ('Fn::Join' in o) {
        const [separator, parts] = o['Fn::Join'] as [string, unknown[]];
        return parts.map((p) => String(resolve(p))).join(separator);
      }
      if ('Fn::Sub' in o) {
        const [text, variables = {}] = list(o['Fn::Sub']) as [string, Record<string, unknown>?];
        return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
          if (variables[name] !== undefined) return String(resolve(variables[name]));
          const [resource, attribute] = name.split('.');
          return attribute ? getAtt(resource as string, attribute) : ref(name);
        });
      }
      return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v)]));
    };
    return resolve;
  };
}

export interface Decision {
  allowed: boolean;
  /** The grants that allowed it (policy, statement, action, resource pattern). */
  grants: Grant[];
}

/** One stack's roles, resolved, and the evaluator over them. */
export class StackIam {
  /** Role logical id of each function (by serverless.yml key). */
  readonly roleOf = new Map<string, string>();
  /** Every policy attached to each role. */
  readonly policies = new Map<string, RolePolicy[]>();
  /** Functions with X-Ray active tracing (Lambda writes their segments with the role). */
  readonly traced = new Set<string>();
  /** Queues Lambda polls for a function with its role (SQS event source mappings). */
  readonly polledQueues = new Map<string, string[]>();

  constructor(
    readonly facts: StackFacts,
    packaged: Packaged,
  ) {
    const resources = packaged.template.Resources;
    const resolve = resolver(facts)(packaged.template);
    const keyOf = new Map(
      [...packaged.functions.values()].map((f) => [f.functionName, f.key] as const),
    );
    for (const [id, r] of Object.entries(resources)) {
      if (r.Type !== 'AWS::IAM::Role') continue;
      const p = resolve(r.Properties) as {
        ManagedPolicyArns?: string[];
        Policies?: { PolicyName: string; PolicyDocument: PolicyDocument }[];
      };
      const attached: RolePolicy[] = [];
      for (const arn of p.ManagedPolicyArns ?? []) {
        if (arn.endsWith(':policy/service-role/AWSLambdaBasicExecutionRole')) {
          attached.push({ name: 'AWSLambdaBasicExecutionRole', document: BASIC_EXECUTION });
          continue;
        }
        const managed = Object.entries(resources).find(
          ([other, m]) => m.Type === 'AWS::IAM::ManagedPolicy' && resolve({ Ref: other }) === arn,
        );
        if (!managed) throw new Error(`${id}: managed policy ${arn} is not in the template`);
        attached.push({
          name: managed[0],
          document: resolve(managed[1].Properties['PolicyDocument']) as PolicyDocument,
        });
      }
      for (const inline of p.Policies ?? [])
        attached.push({ name: `${id}/${inline.PolicyName}`, document: inline.PolicyDocument });
      this.policies.set(id, attached);
    }
    for (const [id, r] of Object.entries(resources)) {
      if (r.Type === 'AWS::IAM::Policy') {
        for (const role of r.Properties['Roles'] as { Ref: string }[])
          this.policies.get(role.Ref)?.push({
            name: id,
            document: resolve(r.Properties['PolicyDocument']) as PolicyDocument,
          });
      }
      if (r.Type === 'AWS::Lambda::Function') {
        const key = keyOf.get(r.Properties['FunctionName'] as string) as string;
        const [role] = (r.Properties['Role'] as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'];
        this.roleOf.set(key, role);
        if ((r.Properties['TracingConfig'] as { Mode?: string } | undefined)?.Mode === 'Active')
          this.traced.add(key);
      }
    }
    for (const r of Object.values(resources)) {
      if (r.Type !== 'AWS::Lambda::EventSourceMapping') continue;
      const fn = resolve(r.Properties['FunctionName']) as string;
      const key = keyOf.get(fn.split(':').pop() as string) ?? '';
      const queue = resolve(r.Properties['EventSourceArn']) as string;
      this.polledQueues.set(key, [...(this.polledQueues.get(key) ?? []), queue]);
    }
  }

  roleArn(role: string): string {
    return `arn:aws:iam::${ACCOUNT_ID}:role/${this.facts.name}-${role}`;
  }

  /** Every (statement, action, resource) each role grants. */
  grants(role: string): Grant[] {
    return (this.policies.get(role) ?? []).flatMap((policy) =>
      policy.document.Statement.flatMap((s, i) =>
        (s.Effect === 'Allow' ? list(s.Action) : []).flatMap((action) =>
          list(s.Resource).map((resource) => ({
            role,
            policy: policy.name,
            statement: s.Sid ?? `#${i + 1}`,
            action,
            resource,
          })),
        ),
      ),
    );
  }

  /** Would `role` be allowed this request? And by which grants. */
  async decide(
    role: string,
    request: Pick<AwsRequest, 'action' | 'resource' | 'context'>,
    /** Leave out one statement (to show a role without it would be refused). */
    without?: { policy: string; statement: string },
  ): Promise<Decision> {
    const policies = this.policies.get(role)?.map((p) =>
      p.name === without?.policy
        ? {
            ...p,
            document: {
              ...p.document,
              Statement: p.document.Statement.filter(
                (s, i) => (s.Sid ?? `#${i + 1}`) !== without.statement,
              ),
            },
          }
        : p,
    );
    if (!policies) throw new Error(`no role ${role} in the template`);
    const response = await runSimulation(
      {
        identityPolicies: policies.map((p) => ({ name: p.name, policy: p.document })),
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        request: {
          action: request.action,
          principal: this.roleArn(role),
          resource: { accountId: ACCOUNT_ID, resource: request.resource },
          contextVariables: request.context,
        },
      },
      {},
    );
    // sns:Publish to a platform endpoint: SNS's only resource type for
    // Publish is `topic`, so IAM can match such a request only by a `*`
    // grant, which the simulator evaluates as a wildcard request (one result).
    const single =
      response.resultType === 'wildcard' &&
      request.resource === '*' &&
      response.results.length === 1
        ? { ...response, resultType: 'single' as const, result: response.results[0] }
        : response;
    if (single.resultType !== 'single')
      throw new Error(
        `iam-simulate could not evaluate ${request.action} on ${request.resource}: ${JSON.stringify(
          response.resultType === 'error' ? response.errors : response.resultType,
        )}`,
      );
    const allowStatements = single.result?.analysis?.identityAnalysis?.allowStatements ?? [];
    const grants: Grant[] = [];
    for (const allow of allowStatements) {
      const explain = allow.explain as {
        identifier: string;
        resources?:
          | { resource: string; matches: boolean }
          | { resource: string; matches: boolean }[];
      };
      for (const r of list(explain.resources ?? []))
        if (r.matches)
          grants.push({
            role,
            policy: allow.policyId ?? '',
            statement: /^\d+$/.test(explain.identifier)
              ? `#${explain.identifier}`
              : explain.identifier,
            action: request.action,
            resource: r.resource,
          });
    }
    return { allowed: single.overallResult === 'Allowed', grants };
  }
}
