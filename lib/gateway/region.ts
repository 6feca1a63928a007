/**
 * Which region to sign a management API call for. SigV4 binds a signature
 * to a region: API Gateway refuses (403) a post signed for any region but
 * the one of the API holding the connection, and a publish may reach
 * connections on APIs in several regions.
 */

/** `{api}.execute-api.{region}.amazonaws.com` (and the `.com.cn` partition). */
const EXECUTE_API_HOST =
  /^[a-z0-9]+\.execute-api\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$/i;

/** A region's name as AWS spells it: `eu-west-1`, `us-gov-west-1`, `ap-southeast-4`. */
export const REGION_NAME = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;

/** The region an endpoint's host names, or undefined (a custom domain, serverless-offline). */
export function regionInHost(endpoint: string): string | undefined {
  let host: string;
  try {
    host = new URL(endpoint).hostname;
  } catch {
    return undefined;
  }
  return EXECUTE_API_HOST.exec(host)?.[1]?.toLowerCase();
}

/**
 * The signing region of an endpoint: the one in its host name when it is an
 * execute-api host, else `fallback` (WS_CALLBACK_REGION: the region of the
 * API behind the custom domain, which defaults to the Lambda's own).
 */
export function regionOf(endpoint: string, fallback: string): string {
  return regionInHost(endpoint) ?? fallback;
}
