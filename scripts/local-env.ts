/**
 * Shared by the local tools (start, listen, publish, tests): the dev settings
 * serverless-offline needs. Never used in a deployed function.
 */
export const DEV_JWT_SECRET = 'pushwire-dev-secret-change-me-before-deploying';
export const DEV_AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  // Local runs are on Node 20 while Lambda runs nodejs24.x: the SDK's notice
  // that it will require Node 22 is known and only noise here.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};
