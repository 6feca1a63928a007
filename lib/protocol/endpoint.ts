/** Where the management API of the API holding a connection lives. */
export function callbackEndpoint(domainName: string, stage: string, callbackUrl?: string): string {
  return callbackUrl ?? `https://${domainName}/${stage}`;
}
