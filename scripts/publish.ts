/**
 * `npm run publish -- --user alice '{"hello":"world"}'`: invokes the `publish`
 * function through serverless-offline's Lambda endpoint and prints the result.
 * Targets: --user (repeatable), --topic, --connection (repeatable), --broadcast.
 * On another instance: --lambda-port (what `npm start -- --lambdaPort N` listens on).
 */
import { parseArgs } from 'node:util';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DEV_AWS_ENV } from './local-env.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    user: { type: 'string', multiple: true },
    topic: { type: 'string' },
    connection: { type: 'string', multiple: true },
    broadcast: { type: 'boolean' },
    id: { type: 'string' },
    'lambda-port': { type: 'string', default: '3002' },
    function: { type: 'string', default: 'publish' },
  },
});

const [payload] = positionals;
if (payload === undefined) {
  // Sending `{}` in its place would deliver a message nobody meant to send.
  console.error(
    'give the message as JSON, e.g.: npm run publish -- --user alice \'{"hello":"world"}\'',
  );
  process.exit(2);
}
let data: unknown;
try {
  data = JSON.parse(payload);
} catch {
  console.error(`the message must be JSON, got: ${payload}`);
  process.exit(2);
}
const users = values.user ?? [];
const event = {
  ...(users.length === 1 && { userId: users[0] }),
  ...(users.length > 1 && { userIds: users }),
  ...(values.topic && { topic: values.topic }),
  ...(values.connection && { connectionIds: values.connection }),
  ...(values.broadcast && { broadcast: true }),
  ...(values.id && { id: values.id }),
  data,
};

// Before the client exists: the SDK checks at construction (see local-env.ts).
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??=
  DEV_AWS_ENV.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
const lambda = new LambdaClient({
  region: DEV_AWS_ENV.AWS_REGION,
  endpoint: `http://localhost:${values['lambda-port']}`,
  credentials: {
    accessKeyId: DEV_AWS_ENV.AWS_ACCESS_KEY_ID,
    secretAccessKey: DEV_AWS_ENV.AWS_SECRET_ACCESS_KEY,
  },
});
try {
  const response = await lambda.send(
    new InvokeCommand({
      FunctionName: `pushwire-local-${values.function}`,
      Payload: Buffer.from(JSON.stringify(event)),
    }),
  );
  const text = Buffer.from(response.Payload ?? new Uint8Array()).toString();
  console.log(text);
  process.exit(response.FunctionError || text.includes('"error"') ? 1 : 0);
} catch (error) {
  console.error(
    `could not invoke publish: ${(error as Error).message} (is \`npm start\` running?)`,
  );
  process.exit(1);
}
