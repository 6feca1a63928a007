/**
 * The price list the cost model (bench/cost-model.ts) uses: quoted, never
 * measured. Each price carries where it was read, the line quoted, and the
 * date it was read. us-east-1 list prices, first tier, no free tier, no
 * discounts. A price whose page could not be found is `null` with a note
 * saying so, and the model leaves it out (and says so) rather than guess.
 */

export interface Price {
  /** Dollars per `unit`; null: not found, left out of every total. */
  usd: number | null;
  unit: string;
  source: string;
  /** The line the price was read from (translated where the page was not in English). */
  quote: string;
  /** When it was read (YYYY-MM-DD). */
  read: string;
  /** First-hand (the vendor's own page or price list) or second-hand (someone quoting it). */
  hand: 'vendor' | 'secondary';
  note?: string;
}

const READ = '2026-12-07';

export const PRICES = {
  apigwMessage: {
    usd: 1.0 / 1e6,
    unit: 'WebSocket message (per 32 KB unit, sent or received)',
    source: 'https://awsforengineers.com/blog/aws-api-gateway-pricing-explained',
    quote: 'WebSocket APIs: $1.00 per million messages (first 1B), for real-time communication.',
    read: READ,
    hand: 'secondary',
    note: "AWS's own page (aws.amazon.com/api-gateway/pricing) renders its rate table from price tokens; the $1.00 is the page's US-region rate as quoted by this guide and by issue 17",
  },
  apigwMessageUnitBytes: {
    usd: null,
    unit: 'bytes per billed message',
    source: 'https://aws.amazon.com/cn/api-gateway/pricing/?p=ps',
    quote:
      '"消息按 32 KB 的增量进行计量。因此,一条 33 KB 的消息计为两条消息。" (Messages are metered in 32 KB increments, so a 33 KB message counts as two messages.)',
    read: READ,
    hand: 'vendor',
    note: 'not a price: the unit, 32 KB = 32,768 bytes (the model counts ceil(bytes / 32,768) units per frame)',
  },
  apigwConnectionMinute: {
    usd: 0.25 / 1e6,
    unit: 'WebSocket connection minute',
    source:
      'https://www.repost.aws/pt/questions/QU7IqgooGeQmqudOsmzTw5YQ/how-to-interpret-websocket-api-connection-minutes-pricing',
    quote:
      'https://aws.amazon.com/api-gateway/pricing/ It is said: $0.25 per million connection minutes',
    read: READ,
    hand: 'secondary',
  },
  dataTransferOutGb: {
    usd: 0.09,
    unit: 'GB of data transfer out to the internet (first 10 TB a month)',
    source: 'https://awsforengineers.com/blog/aws-api-gateway-pricing-explained',
    quote: 'Data Transfer Fees: $0.09 per GB for data sent to the internet.',
    read: READ,
    hand: 'secondary',
    note: 'API Gateway (aws.amazon.com/cn/api-gateway/pricing): "如果您将 API Gateway 与其他 AWS 服务一起使用或将数据传输到 AWS 之外,则可能会产生额外费用" (additional charges may apply when data is transferred out of AWS); AppSync (aws.amazon.com/ar/appsync/pricing): data transfer is charged at EC2 data transfer rates',
  },
  lambdaRequest: {
    usd: 0.2 / 1e6,
    unit: 'Lambda request',
    source:
      'https://git.mcrn.ar/mariano/lambda_local_runner/src/commit/957e45b8adae23ce50b966346229585b5df18b4d/docs/lambdas-md/lambda-13-cost.md',
    quote: '| Requests | $0.20 / 1M | $0.20 / 1M | 1M / month |',
    read: READ,
    hand: 'secondary',
  },
  lambdaGbSecondArm: {
    usd: 0.0000133334,
    unit: 'Lambda GB-second, arm64 (first 7.5 billion GB-s a month)',
    source: 'https://cloudchipr.com/blog/aws-lambda-pricing',
    quote: 'ARM Pricing - First 7.5 Billion GB-seconds per month: $0.0000133334 per GB-second',
    read: READ,
    hand: 'secondary',
  },
  lambdaGbSecondX86: {
    usd: 0.0000166667,
    unit: 'Lambda GB-second, x86_64 (first 6 billion GB-s a month)',
    source: 'https://cloudchipr.com/blog/aws-lambda-pricing',
    quote: 'x86 Pricing - First 6 Billion GB-seconds per month: $0.0000166667 per GB-second',
    read: READ,
    hand: 'secondary',
  },
  redisEcpu: {
    usd: 0.0034 / 1e6,
    unit: 'ElastiCache Serverless (Redis OSS) ECPU',
    source: 'https://www.gomomento.com/blog/a-look-into-elasticache-serverless-pricing/',
    quote:
      'ECPUs are calculated in 1KB increments and are billed in groupings of 1 million. The exact pricing is $0.0034 per million ECPUs.',
    read: READ,
    hand: 'secondary',
    note: "AWS Database Blog ('Unlock on-demand, cost-optimized performance with Amazon ElastiCache Serverless') gives the same figures in its worked example; Valkey is $0.0023 per million (usage.ai)",
  },
  redisStorageGbHour: {
    usd: 0.125,
    unit: 'ElastiCache Serverless (Redis OSS) GB-hour stored, 1 GB minimum',
    source:
      'https://thinkwithwp.com/blogs/database/unlock-on-demand-cost-optimized-performance-with-amazon-elasticache-serverless',
    quote:
      'ElastiCache Serverless always meters for a minimum of 1 GB storage on every cache. (price: "That average amount is then priced at $0.125 / GB-Hr", gomomento.com)',
    read: READ,
    hand: 'secondary',
  },
  redisNodeHour: {
    usd: null,
    unit: 'ElastiCache node-hour',
    source: 'https://aws.amazon.com/elasticache/pricing/',
    quote: 'not found: no stored copy of the node price table was found',
    read: READ,
    hand: 'vendor',
    note: 'node-based clusters are not priced here; the model prices Redis as ElastiCache Serverless (per ECPU + GB-hour)',
  },
  sqsRequest: {
    usd: 0.4 / 1e6,
    unit: 'SQS standard request (per 64 KB chunk)',
    source: 'https://unanswered.io/guide/aws-sqs-pricing-and-cost-optimization',
    quote:
      'Standard queues cost $0.40 per million requests after the free tier up to 100 billion requests per month. ... each 64 KB chunk of a message is billed as one request.',
    read: READ,
    hand: 'secondary',
  },
  snsMobilePush: {
    usd: 0.5 / 1e6,
    unit: 'SNS mobile push notification',
    source: 'https://www.factualminds.com/blog/amazon-sns-pricing-publishes-fanout-protocols/',
    quote:
      'Standard topic publish is $0.50/M, but HTTP delivery is $0.60/M on top, email is $2/100K, SMS varies by country, and mobile push is $0.50/M.',
    read: READ,
    hand: 'secondary',
  },
  snsPublish: {
    usd: 0.5 / 1e6,
    unit: 'SNS publish request (per 64 KB chunk)',
    source: 'https://www.factualminds.com/blog/amazon-sns-pricing-publishes-fanout-protocols/',
    quote: 'Standard topic publish is $0.50/M',
    read: READ,
    hand: 'secondary',
    note: 'a Publish to a platform endpoint is a request; whether it is billed as a publish and a mobile push or only as the push was not found: the model counts both (the higher)',
  },
  ablyMessage: {
    usd: 2.5 / 1e6,
    unit: 'Ably message (each published and each received)',
    source: 'https://ably.com/pricing/full-calculator',
    quote:
      'Overages are charged at a flat rate of $2.50 p/million messages ... If you publish one message to a single channel with 10 subscribers, this will be counted as 11 messages (1 published + 10 received).',
    read: READ,
    hand: 'vendor',
  },
  ablyStandardMonth: {
    usd: 29,
    unit: 'Ably Standard package, per month (10,000 concurrent connections)',
    source: 'https://ably.com/docs/pricing/standard',
    quote:
      'The Standard package has a monthly fee of $29 plus the number of messages, and channel and connection minutes that you use on top of that.',
    read: READ,
    hand: 'vendor',
  },
  ablyConnectionMinute: {
    usd: null,
    unit: 'Ably connection minute',
    source: 'https://ably.com/docs/pricing',
    quote:
      'Connections (per million minutes) | A connection is established between your clients and Ably for realtime communication.',
    read: READ,
    hand: 'vendor',
    note: 'the unit is documented; its price per million minutes was not found on any stored page: left out of the Ably column (which is therefore a lower bound)',
  },
  ablyChannelMinute: {
    usd: null,
    unit: 'Ably channel minute',
    source: 'https://ably.com/docs/pricing',
    quote: 'Active channels[*] (per million minutes)',
    read: READ,
    hand: 'vendor',
    note: 'price not found: left out (lower bound)',
  },
  appsyncEventOperation: {
    usd: 1.0 / 1e6,
    unit: 'AppSync Events Event API operation',
    source:
      'https://huggingface.co/datasets/labofsahil/aws-pricing-dataset/blob/main/AWSAppSync.csv',
    quote:
      '"$1 per million Event API operations in EU (Ireland)" (AWS price list row; the re:Invent 2024 talk FWM302 says "pay-per-use pricing at $1 per million API operations")',
    read: READ,
    hand: 'secondary',
    note: "AWS's price list (its CSV as mirrored in a public dataset); the us-east-1 row was not in the excerpt found, the same $1 is assumed there",
  },
  appsyncConnectionMinute: {
    usd: 0.08 / 1e6,
    unit: 'AppSync connection minute',
    source: 'https://aws.amazon.com/ar/appsync/pricing/?loc=ft',
    quote:
      '"0.08 USD عن كل مليون دقيقة اتصال بخدمة AWS AppSync GraphQL" ($0.08 per million connection minutes to AWS AppSync GraphQL)',
    read: READ,
    hand: 'vendor',
    note: 'quoted for AppSync GraphQL real-time; the Events connection-minute line was not found and is assumed the same',
  },
  pusherPlans: {
    usd: null,
    unit: 'Pusher Channels monthly plans (messages/day, concurrent connections)',
    source:
      'https://raw.githubusercontent.com/api-evangelist/pusher/refs/heads/main/plans/pusher-plans-pricing.yml',
    quote:
      'Sandbox (200K msg/day, 100 connections) up through Startup ($49), Pro ($99), Business ($299), Premium ($499), Growth ($699), Plus ($899), Growth Plus ($1199)',
    read: READ,
    hand: 'secondary',
    note: 'a third-party transcription (it says: written by a bulk sweep, not harvested from pusher.com/channels/pricing); see PUSHER_PLANS',
  },
} as const satisfies Record<string, Price>;

export type PriceName = keyof typeof PRICES;

/** The date of the price list (every price above was read on it). */
export const PRICE_LIST_DATE = READ;

/** Pusher Channels plans, from the same (secondary) source as PRICES.pusherPlans. */
export const PUSHER_PLANS: readonly {
  name: string;
  usdMonth: number;
  messagesPerDay: number;
  connections: number;
}[] = [
  { name: 'Sandbox', usdMonth: 0, messagesPerDay: 200_000, connections: 100 },
  { name: 'Startup', usdMonth: 49, messagesPerDay: 1_000_000, connections: 500 },
  { name: 'Pro', usdMonth: 99, messagesPerDay: 4_000_000, connections: 2_000 },
  { name: 'Business', usdMonth: 299, messagesPerDay: 10_000_000, connections: 5_000 },
  { name: 'Premium', usdMonth: 499, messagesPerDay: 20_000_000, connections: 10_000 },
  { name: 'Growth', usdMonth: 699, messagesPerDay: 40_000_000, connections: 15_000 },
  { name: 'Plus', usdMonth: 899, messagesPerDay: 60_000_000, connections: 20_000 },
  { name: 'Growth Plus', usdMonth: 1_199, messagesPerDay: 90_000_000, connections: 30_000 },
];

/** Largest message each competitor accepts (issue 17's anchors; a message above it cannot be sent there). */
export const MAX_MESSAGE_BYTES = {
  pusher: 10 * 1024,
  ably: 64 * 1024,
  appsync: 240 * 1024,
} as const;
