// The in-process policy engine: holds the active bundle and evaluates entrypoints on it. A new bundle is
// verified off to the side (bundle.ts) and then swapped in with one reference assignment; evaluation is
// synchronous, so every evaluation runs wholly on one bundle and reports that bundle's revision.
import { describeThrown, PolicyEvaluationError, Unavailable } from "../errors.ts";
import type { PolicyBundle } from "./bundle.ts";
import {
  type CheckDecision,
  decodeCheckDecision,
  decodeRequestPlan,
  decodeReviewVerdict,
  ENTRYPOINTS,
  type RequestPlan,
  type ReviewVerdict,
} from "./entrypoints.ts";

/** A policy answer together with the revision of the bundle that gave it. */
export interface Evaluated<T> {
  readonly result: T;
  readonly revision: string;
}

export interface ActiveBundleInfo {
  readonly revision: string;
  readonly file: string;
  readonly activatedAt: Date;
}

/** What keeps a bundle serving: the in-process engine, or the server's pool of policy workers. */
export interface BundleHolder {
  /**
   * Makes `bundle` serve; `beforeSwitch` runs just before it does (throwing refuses it). Resolves with the
   * revision replaced; rejects when the bundle cannot serve (the previous one keeps serving).
   */
  activate(bundle: PolicyBundle, beforeSwitch?: () => void | Promise<void>): string | undefined | Promise<string | undefined>;
  readonly active: ActiveBundleInfo | undefined;
  /** Whether the holder verifies bundles itself (then the loader need not, on the serving thread). */
  readonly verifiesBundles: boolean;
}

/** An entrypoint's raw answer as the contract's type; an answer that does not fit is a policy bug, never a decision. */
export function decodedAnswer<T>(entrypoint: string, answer: Evaluated<unknown>, decode: (v: unknown) => T | undefined): Evaluated<T> {
  const decoded = decode(answer.result);
  if (decoded === undefined) {
    throw new PolicyEvaluationError(
      `policy ${entrypoint} (revision ${answer.revision}) answered ${JSON.stringify(answer.result) ?? "nothing"}, not a valid decision`,
    );
  }
  return { result: decoded, revision: answer.revision };
}

export class PolicyEngine implements BundleHolder {
  readonly verifiesBundles = false;
  #active: { bundle: PolicyBundle; activatedAt: Date } | undefined;
  readonly #encoder = new TextEncoder();

  /** Makes `bundle` the one every later evaluation uses. Returns the revision it replaced, if any. */
  activate(bundle: PolicyBundle, beforeSwitch?: () => void | Promise<void>): string | undefined | Promise<string | undefined> {
    const before = beforeSwitch?.();
    const activate = () => {
      const previous = this.#active?.bundle.revision;
      this.#active = { bundle, activatedAt: new Date() };
      return previous;
    };
    return before instanceof Promise ? before.then(activate) : activate();
  }

  get active(): ActiveBundleInfo | undefined {
    const a = this.#active;
    return a && { revision: a.bundle.revision, file: a.bundle.file, activatedAt: a.activatedAt };
  }

  get ready(): boolean {
    return this.#active !== undefined;
  }

  /** Evaluates any entrypoint of the active bundle; the result is the raw JSON value (undefined if the rule is). */
  evaluate(entrypoint: string, input: unknown): Evaluated<unknown> {
    // Serialised input in an exact ArrayBuffer skips a copy inside opa-wasm.
    return this.evaluateSerialized(entrypoint, this.#encoder.encode(JSON.stringify(input ?? null)).buffer);
  }

  /**
   * Evaluates with input already serialised as JSON in an ArrayBuffer holding exactly that JSON. A Buffer must
   * not be passed: opa-wasm would treat it as an object and evaluate against garbage.
   */
  evaluateSerialized(entrypoint: string, json: ArrayBuffer): Evaluated<unknown> {
    const active = this.#active;
    if (!active) throw new Unavailable("no policy bundle is loaded");
    if (!active.bundle.entrypoints.includes(entrypoint)) {
      throw new PolicyEvaluationError(
        `entrypoint ${entrypoint} is not in bundle ${active.bundle.revision} (it has ${active.bundle.entrypoints.join(", ")})`,
      );
    }
    let resultSet: { result?: unknown }[];
    try {
      resultSet = active.bundle.policy.evaluate(json, entrypoint);
    } catch (err) {
      throw new PolicyEvaluationError(`policy ${entrypoint} failed to evaluate: ${describeThrown(err)}`, { cause: err });
    }
    return { result: resultSet[0]?.result, revision: active.bundle.revision };
  }

  requestPlan(input: object): Evaluated<RequestPlan> {
    return this.#typed(ENTRYPOINTS.requestPlan, input, decodeRequestPlan);
  }

  reviewVerdict(input: object): Evaluated<ReviewVerdict> {
    return this.#typed(ENTRYPOINTS.reviewVerdict, input, decodeReviewVerdict);
  }

  checkDecision(input: object): Evaluated<CheckDecision> {
    return this.#typed(ENTRYPOINTS.checkDecision, input, decodeCheckDecision);
  }

  #typed<T>(entrypoint: string, input: object, decode: (v: unknown) => T | undefined): Evaluated<T> {
    return decodedAnswer(entrypoint, this.evaluate(entrypoint, input), decode);
  }
}
