/**
 * @packageDocumentation
 * Server SDK for app servers: access tokens (and, with the server API, a typed client and webhook
 * verification).
 */
export { createAccessToken, GRANTS_CLAIM } from './token.js';
export type { AccessTokenOptions } from './token.js';
export { DEFAULT_GRANTS, mayJoinConference, resolveGrants } from './grants.js';
export type { Grants, ResolvedGrants } from './grants.js';
