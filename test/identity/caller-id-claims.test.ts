// Caller ids as identity sources hand them over: a token whose subject holds an invisible, format or other
// unusable character identifies nobody (UNAUTHENTICATED, naming the claim), through the dev issuer's verifier and
// an OIDC issuer's alike; visible look-alikes authenticate as exactly themselves (separation of duties handles them).
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type CryptoKey, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { Unauthenticated } from "../../src/errors.ts";
import { type Authenticator, createAuthenticator } from "../../src/identity/authenticator.ts";
import { DEV_AUDIENCE, DEV_ISSUER, parseIdentityConfig } from "../../src/identity/config.ts";
import { DEV_ALGORITHM, loadOrCreateDevKey } from "../../src/identity/dev-issuer.ts";
import { identityFromCertificate } from "../../src/identity/mtls.ts";

const NOW_MS = Date.UTC(2026, 10, 23, 12, 0, 0);
const NOW = NOW_MS / 1000;
const clock = { now: () => NOW_MS };
const ISSUER = "https://idp.example.com/realms/ops";
const AUDIENCE = "jitgate";

const hex = (c: string) => (c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");

/** One character of each class a caller id may not hold, inside "ali?ce". */
const UNUSABLE: readonly (readonly [string, string])[] = [
  ["NUL", "\u0000"],
  ["tab", "\u0009"],
  ["escape", "\u001B"],
  ["delete", "\u007F"],
  ["C1 next line", "\u0085"],
  ["zero width space", "\u200B"],
  ["zero width non-joiner", "\u200C"],
  ["zero width joiner", "\u200D"],
  ["word joiner", "\u2060"],
  ["soft hyphen", "\u00AD"],
  ["byte order mark", "\uFEFF"],
  ["right-to-left override", "\u202E"],
  ["left-to-right isolate", "\u2066"],
  ["Mongolian vowel separator", "\u180E"],
  ["variation selector 16", "\uFE0F"],
  ["combining grapheme joiner", "\u034F"],
  ["Hangul filler", "\u3164"],
  ["Braille pattern blank", "\u2800"],
  ["tag latin capital letter A", "\u{E0041}"],
  ["private use", "\uE000"],
  ["unassigned", "\u0378"],
  ["line separator", "\u2028"],
  ["no-break space", "\u00A0"],
  ["ideographic space", "\u3000"],
];

function bearer(token: string) {
  return { authorization: [`Bearer ${token}`], peerCertificate: undefined };
}

async function refusal(promise: Promise<unknown>): Promise<Unauthenticated> {
  const err = await promise.then(
    () => assert.fail("the caller was accepted"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof Unauthenticated, `expected Unauthenticated, got ${String(err)}`);
  return err;
}

let dir: string;
let dev: Authenticator;
let devKey: { privateKey: CryptoKey; kid: string };
let oidc: Authenticator;
let idpKey: CryptoKey;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "jitgate-caller-ids-"));
  const dataDir = join(dir, "data");
  devKey = await loadOrCreateDevKey(dataDir);
  dev = await createAuthenticator(parseIdentityConfig({ dev: true, dataDir }, dir), { clock });
  const idp = await generateKeyPair("ES256", { extractable: true });
  idpKey = idp.privateKey;
  const jwksFile = join(dir, "jwks.json");
  await writeFile(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: "idp-1", alg: "ES256", use: "sig" }] }));
  const config = parseIdentityConfig({ oidc: { issuer: ISSUER, audience: AUDIENCE, jwksFile, subjectClaim: "preferred_username" } }, dir);
  oidc = await createAuthenticator(config, { clock });
});
after(() => rm(dir, { recursive: true, force: true }));

/** A token the dev verifier's own key signed, so only the subject can be wrong (`jitgate login` refuses to mint it). */
function devToken(sub: string): Promise<string> {
  return new SignJWT({ groups: ["dba"] })
    .setProtectedHeader({ alg: DEV_ALGORITHM, kid: devKey.kid, typ: "JWT" })
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setSubject(sub)
    .setIssuedAt(NOW)
    .setExpirationTime(NOW + 300)
    .sign(devKey.privateKey);
}

/** A token from the OIDC issuer, naming the caller in preferred_username. */
function idpToken(username: string): Promise<string> {
  const claims: JWTPayload = { iss: ISSUER, aud: AUDIENCE, sub: "f3b1c2d4", preferred_username: username, iat: NOW, exp: NOW + 300 };
  return new SignJWT({ ...claims, groups: ["dba"] }).setProtectedHeader({ alg: "ES256", kid: "idp-1" }).sign(idpKey);
}

describe("caller ids from tokens", () => {
  test("a dev token whose subject holds any invisible, control, format or other space character is UNAUTHENTICATED naming 'sub'", async () => {
    for (const [name, c] of UNUSABLE) {
      const err = await refusal(dev.authenticate(bearer(await devToken(`ali${c}ce`))));
      assert.equal(err.code, "UNAUTHENTICATED", name);
      assert.match(err.message, /^token claim 'sub' is not a usable caller id: it /, name);
      assert.ok(err.message.includes(`U+${hex(c)} at position 3`), `${name}: ${err.message}`);
      assert.ok(!err.message.includes("ali"), `${name}: the message repeats the id: ${err.message}`);
    }
  });

  test("an OIDC token is refused the same way, naming the configured subject claim", async () => {
    for (const [name, c] of UNUSABLE) {
      const err = await refusal(oidc.authenticate(bearer(await idpToken(`ali${c}ce`))));
      assert.match(err.message, /^token claim 'preferred_username' is not a usable caller id: it /, name);
      assert.ok(err.message.includes(`U+${hex(c)}`), `${name}: ${err.message}`);
    }
  });

  test("surrounding or doubled spaces and a leading combining mark are refused", async () => {
    const cases: readonly (readonly [string, RegExp])[] = [
      ["alice ", /has surrounding whitespace/],
      [" alice", /has surrounding whitespace/],
      ["Alice  Smith", /holds two spaces in a row/],
      ["\u0301alice", /starts with a combining mark/],
      ["", /is empty or not text/],
    ];
    for (const [sub, problem] of cases) {
      const err = await refusal(dev.authenticate(bearer(await devToken(sub))));
      assert.match(err.message, /^token claim 'sub' is not a usable caller id: it /, JSON.stringify(sub));
      assert.match(err.message, problem, JSON.stringify(sub));
    }
  });

  test("visible look-alikes authenticate as exactly the id the token names, unnormalised", async () => {
    for (const id of ["ALICE", "ａｌｉｃｅ", "alice\u0301", "alic\u00E9", "\u0430lice", "𝐚𝐥𝐢𝐜𝐞", "Alice Smith", "山田太郎"]) {
      assert.deepEqual(await dev.authenticate(bearer(await devToken(id))), { id, groups: ["dba"] });
      assert.equal((await oidc.authenticate(bearer(await idpToken(id)))).id, id);
    }
  });
});

describe("caller ids from client certificates", () => {
  test("a certificate CN holding an invisible or other space character identifies nobody", () => {
    for (const cn of ["ali\u200Bce", "ali\u202Ece", "alice\u00A0", "Alice  Smith", "\u0301alice"]) {
      assert.throws(
        () => identityFromCertificate({ subject: { CN: cn } as never, subjectaltname: "" }),
        Unauthenticated,
        JSON.stringify(cn),
      );
    }
  });
});
