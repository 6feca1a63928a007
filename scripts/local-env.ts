/**
 * Shared by the local tools (start, listen, publish, tests): the dev settings
 * serverless-offline needs. Never used in a deployed function.
 */
export const DEV_JWT_SECRET = 'pushwire-dev-secret-change-me-before-deploying';
/**
 * The dev VAPID key pair (Web Push, docs/push.md): fixed, like the dev JWT
 * secret, so a browser subscribed under `npm start` stays subscribed across
 * restarts. Public by design; a deployed stage reads its own private key from
 * SSM (VAPID_PRIVATE_KEY_PARAMETER) and refuses one given by value.
 */
export const DEV_VAPID = {
  VAPID_PUBLIC_KEY:
    'BOucSBtlTGlWTam_qp7OiXdSD-avemv68zSVtFNDU9pVJ_jTKTJcrHUWQTl6CTcMeTZlWAm-aWpL52YvL_HwRtY',
  VAPID_PRIVATE_KEY: 'EJzLoCoX24GPbk8RydrpUySsLzOyguGsANKe2mWmnD0',
  VAPID_SUBJECT: 'mailto:dev@pushwire.invalid',
};
export const DEV_AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  // On Node 20 the SDK warns in every function's output; npm start says it
  // once instead (nodeSupportNotice).
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

/**
 * The Node versions pushwire supports, locally and on Lambda (package.json
 * `engines`): 22 and 24, the runtimes the sandbox test runs the zips on and
 * the docs test runs `npm start` on. Node 20 left maintenance on 30 April
 * 2026 and the AWS SDK warns on it; npm start and the tests still run there.
 */
export const MIN_NODE_MAJOR = 22;

/** What npm start says about a Node it does not support, or undefined. */
export function nodeSupportNotice(version: string): string | undefined {
  const major = Number(/^v?(\d+)/.exec(version)?.[1]);
  if (major >= MIN_NODE_MAJOR) return undefined;
  return (
    `pushwire: Node ${version} is not supported (Node 20 reached end of life in April 2026; ` +
    `use Node 22 or 24). npm start still runs on it; the AWS SDK's warning about it is silenced.`
  );
}
