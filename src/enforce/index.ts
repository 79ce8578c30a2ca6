// jitgate's enforcement library for services: the server interceptor, the shared token verification, and
// the token source for their clients.
export { createEnforcer, type Enforcer, type EnforcerOptions } from "./interceptor.ts";
export { AccessTokenSource, type TokenSourceOptions } from "./token-source.ts";
export { TokenRejected, type VerifiedAccessToken, verifyAccessToken } from "./verify.ts";
