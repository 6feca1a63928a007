// Push fallback (issue 18, docs/push.md), read at package time by
// serverless.yml: the SSM parameter holding the VAPID private key, from the
// configuration, so the push-sending roles read only that one parameter.
// (SNS's platform endpoint actions take no resource-level permissions: their
// grants are on `*`, see serverless.yml.)
// CommonJS because osls require()s this file (`${file(build/push.cjs):…}`).

/** The parameter's ARN as IAM sees it (a plain name is in this region and account). */
function parameterArn(name) {
  if (name.startsWith('arn:')) return name;
  const path = name.startsWith('/') ? name : `/${name}`;
  return {
    'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter${path}`,
  };
}

module.exports = {
  parameterArn,
  /** The VAPID private key's parameter (ssm:GetParameter), or nothing. */
  vapidParameter: async ({ resolveVariable }) => {
    const stage = await resolveVariable('sls:stage');
    const name = String(await resolveVariable(`env:VAPID_PRIVATE_KEY_PARAMETER, ''`)).trim();
    return [name ? parameterArn(name) : parameterArn(`/pushwire/${stage}/push-not-configured`)];
  },
};
