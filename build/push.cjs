// Push fallback (issue 18, docs/push.md), read at package time by
// serverless.yml: the SNS resources the roles that register devices and send
// pushes may use, and the SSM parameter holding the VAPID private key; each
// from the configuration, so a role can touch only this stack's platform
// applications and their endpoints, and read only that one parameter.
// CommonJS because osls require()s this file (`${file(build/push.cjs):…}`).

const PLATFORMS = [
  'SNS_APNS_APPLICATION_ARN',
  'SNS_APNS_SANDBOX_APPLICATION_ARN',
  'SNS_FCM_APPLICATION_ARN',
];

/** No such ARN exists: a grant on it allows nothing (IAM needs a resource). */
const NOTHING = {
  'Fn::Sub':
    'arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:app/NONE/pushwire-push-not-configured',
};

async function applications(resolveVariable) {
  const arns = [];
  for (const name of PLATFORMS) {
    const arn = String(await resolveVariable(`env:${name}, ''`)).trim();
    if (arn) arns.push(arn);
  }
  return arns;
}

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
  /** The platform applications (CreatePlatformEndpoint). */
  snsApplications: async ({ resolveVariable }) => {
    const arns = await applications(resolveVariable);
    return arns.length ? arns : [NOTHING];
  },
  /** Their endpoints (SetEndpointAttributes, Publish, DeleteEndpoint): arn:…:endpoint/<PLATFORM>/<app>/<id>. */
  snsEndpoints: async ({ resolveVariable }) => {
    const arns = await applications(resolveVariable);
    return arns.length ? arns.map((arn) => `${arn.replace(':app/', ':endpoint/')}/*`) : [NOTHING];
  },
  /** The VAPID private key's parameter (ssm:GetParameter), or nothing. */
  vapidParameter: async ({ resolveVariable }) => {
    const stage = await resolveVariable('sls:stage');
    const name = String(await resolveVariable(`env:VAPID_PRIVATE_KEY_PARAMETER, ''`)).trim();
    return [name ? parameterArn(name) : parameterArn(`/pushwire/${stage}/push-not-configured`)];
  },
};
