// The publish hook (issue 16, docs/clients.md "Publish hook"), read at package
// time by serverless.yml: the `publish` role may invoke the deliver worker and,
// when PUBLISH_HOOK_FUNCTION names one, that hook function and nothing else.
// The example hook (functions/publish-hook-example.ts) is part of the `local`
// stage only (`npm start`, tests): no deployed stage carries it.
// CommonJS because osls require()s this file (`${file(build/publish-hook.cjs):…}`).

/** `name` or ARN of the hook as the function ARN IAM sees. */
function hookArn(name) {
  if (name.startsWith('arn:')) return name;
  return {
    'Fn::Sub': `arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${name}`,
  };
}

module.exports = {
  hookArn,
  /** What `publish` may invoke: its deliver worker, and the hook if one is named. */
  invocable: async ({ resolveVariable }) => {
    const service = await resolveVariable('self:service');
    const stage = await resolveVariable('sls:stage');
    const hook = String(await resolveVariable("env:PUBLISH_HOOK_FUNCTION, ''")).trim();
    return [
      {
        'Fn::Sub': `arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${service}-${stage}-deliver`,
      },
      ...(hook ? [hookArn(hook)] : []),
    ];
  },
  /** The example hook: a function on the `local` stage, none (null: left out) on any other. */
  example: async ({ resolveVariable }) =>
    (await resolveVariable('sls:stage')) === 'local'
      ? {
          handler: 'functions/publish-hook-example.handler',
          role: 'PushwireRegistryRole',
          timeout: 10,
        }
      : null,
};
