import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgument } from "../../src/errors.ts";
import { type IdentityInput, parseIdentityConfig } from "../../src/identity/config.ts";

const CWD = "/srv/jitgate";
const OIDC = { issuer: "https://idp.example.com/realms/ops", audience: "jitgate", jwksUrl: "https://idp.example.com/certs" };

function refusal(input: IdentityInput): InvalidArgument {
  try {
    parseIdentityConfig(input, CWD);
  } catch (err) {
    assert.ok(err instanceof InvalidArgument, `expected an InvalidArgument, got ${String(err)}`);
    return err;
  }
  return assert.fail("the configuration was accepted");
}

describe("identity configuration", () => {
  test("no identity mode at all is refused with a hint at --dev, mTLS and OIDC", () => {
    const err = refusal({ dataDir: "data" });
    assert.match(err.message, /no caller identity configured: use --dev for local development, or configure mTLS or OIDC/);
  });

  test("dev mode needs only the data directory, resolved against the working directory", () => {
    const config = parseIdentityConfig({ dev: true, dataDir: "data" }, CWD);
    assert.deepEqual(config, { mtls: undefined, oidc: undefined, dev: true, dataDir: "/srv/jitgate/data" });
    assert.ok(Object.isFrozen(config));
  });

  test("dev mode from the environment takes 1/0 and refuses other words", () => {
    assert.equal(parseIdentityConfig({ dev: "1", dataDir: "d" }, CWD).dev, true);
    const err = refusal({ dev: "maybe", dataDir: "d" });
    assert.equal(err.field, "--dev (JITGATE_DEV)");
  });

  test("OIDC gets the defaults: groups claim, sub, RS256/ES256/EdDSA/PS256, 30 s tolerance", () => {
    const { oidc } = parseIdentityConfig({ oidc: OIDC }, CWD);
    assert.deepEqual(oidc, {
      ...OIDC,
      jwksFile: undefined,
      groupsClaim: "groups",
      subjectClaim: "sub",
      algorithms: ["RS256", "ES256", "EdDSA", "PS256"],
      clockToleranceS: 30,
    });
  });

  test("OIDC settings from the environment: comma-separated algorithms, tolerance as text, a relative JWKS file", () => {
    const { oidc } = parseIdentityConfig(
      {
        oidc: {
          issuer: "i",
          audience: "a",
          jwksFile: "keys/jwks.json",
          algorithms: "ES256, PS256",
          clockToleranceS: "60",
          groupsClaim: "realm_access.roles",
        },
      },
      CWD,
    );
    assert.equal(oidc?.jwksFile, "/srv/jitgate/keys/jwks.json");
    assert.deepEqual(oidc?.algorithms, ["ES256", "PS256"]);
    assert.equal(oidc?.clockToleranceS, 60);
    assert.equal(oidc?.groupsClaim, "realm_access.roles");
  });

  test("OIDC without an issuer is refused naming the flag and the variable", () => {
    const err = refusal({ oidc: { audience: "jitgate", jwksUrl: OIDC.jwksUrl } });
    assert.equal(err.field, "--oidc-issuer (JITGATE_OIDC_ISSUER)");
    assert.match(err.message, /^--oidc-issuer \(JITGATE_OIDC_ISSUER\): is required/);
  });

  test("OIDC without an audience is refused", () => {
    assert.equal(refusal({ oidc: { issuer: "i", jwksUrl: OIDC.jwksUrl } }).field, "--oidc-audience (JITGATE_OIDC_AUDIENCE)");
  });

  test("OIDC needs exactly one of a JWKS URL and a JWKS file", () => {
    assert.match(refusal({ oidc: { issuer: "i", audience: "a" } }).message, /exactly one of --oidc-jwks-url and --oidc-jwks-file/);
    assert.match(refusal({ oidc: { ...OIDC, jwksFile: "k.json" } }).message, /exactly one of/);
  });

  test("a JWKS URL must be https, except on loopback", () => {
    const err = refusal({ oidc: { ...OIDC, jwksUrl: "http://idp.example.com/certs" } });
    assert.equal(err.field, "--oidc-jwks-url (JITGATE_OIDC_JWKS_URL)");
    assert.match(err.message, /must be an https URL/);
    assert.match(refusal({ oidc: { ...OIDC, jwksUrl: "not a url" } }).message, /is not a URL/);
    assert.equal(
      parseIdentityConfig({ oidc: { ...OIDC, jwksUrl: "http://127.0.0.1:8080/certs" } }, CWD).oidc?.jwksUrl,
      "http://127.0.0.1:8080/certs",
    );
  });

  test("symmetric algorithms and none are refused; unknown names are refused", () => {
    const field = "--oidc-algorithms (JITGATE_OIDC_ALGORITHMS)";
    const hs = refusal({ oidc: { ...OIDC, algorithms: "RS256,HS256" } });
    assert.equal(hs.field, field);
    assert.match(hs.message, /'HS256' is not accepted: only asymmetric/);
    assert.match(refusal({ oidc: { ...OIDC, algorithms: ["none"] } }).message, /'none' is not accepted/);
    assert.match(refusal({ oidc: { ...OIDC, algorithms: "RS257" } }).message, /'RS257' is not one of/);
    assert.match(refusal({ oidc: { ...OIDC, algorithms: " , " } }).message, /lists no algorithm/);
  });

  test("a clock tolerance over 60 s, negative or fractional is refused", () => {
    for (const value of [61, -1, 1.5, "30s", "120"]) {
      const err = refusal({ oidc: { ...OIDC, clockToleranceS: value } });
      assert.equal(err.field, "--oidc-clock-tolerance (JITGATE_OIDC_CLOCK_TOLERANCE)");
      assert.match(err.message, /from 0 to 60/);
    }
  });

  test("a groups claim path with an empty segment is refused", () => {
    assert.match(refusal({ oidc: { ...OIDC, groupsClaim: "realm_access..roles" } }).message, /dotted path/);
  });

  test("mTLS needs a CA; a groups file without one is refused", () => {
    const config = parseIdentityConfig({ mtls: { caFile: "tls/ca.pem", groupsFile: "/etc/jitgate/groups.json" } }, CWD);
    assert.deepEqual(config.mtls, { caFile: "/srv/jitgate/tls/ca.pem", groupsFile: "/etc/jitgate/groups.json" });
    assert.equal(refusal({ mtls: { groupsFile: "g.json" } }).field, "--mtls-ca (JITGATE_MTLS_CA)");
  });

  test("--dev needs a data directory, and the dev issuer name is reserved", () => {
    assert.equal(refusal({ dev: true }).field, "--data-dir (JITGATE_DATA_DIR)");
    assert.match(refusal({ dev: true, dataDir: "d", oidc: { ...OIDC, issuer: "jitgate-dev" } }).message, /reserved for the dev issuer/);
  });

  test("values with control characters are refused", () => {
    assert.match(refusal({ oidc: { ...OIDC, audience: "jit\ngate" } }).message, /without control characters/);
  });
});
