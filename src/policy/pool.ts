// Policy evaluation off the serving thread, within a time budget. Worker threads each hold the active bundle;
// evaluations queue here and go to an idle worker in batches (one message each way per batch, so the
// hand-off costs the serving thread ~1-3 µs per call under load). A watchdog reads each worker's progress from
// shared memory: an evaluation past the budget is answered with PolicyTimeout, its worker is terminated and
// replaced, and the other evaluations of its batch go to another worker. A slow rule costs its own caller the
// budget and delays at most the few calls batched with it; nothing waits on it past the budget.
import { Worker } from "node:worker_threads";
import { BundleError, PolicyEvaluationError, PolicyTimeout, Unavailable } from "../errors.ts";
import type { PolicyBundle } from "./bundle.ts";
import { type ActiveBundleInfo, type BundleHolder, decodedAnswer, type Evaluated } from "./engine.ts";
import {
  type CheckDecision,
  decodeCheckDecision,
  decodeRequestPlan,
  decodeReviewVerdict,
  ENTRYPOINTS,
  type RequestPlan,
  type ReviewVerdict,
} from "./entrypoints.ts";
import { type EvalItem, type EvalOutcome, PROGRESS, type WorkerReply } from "./pool-protocol.ts";

export interface PolicyPoolOptions {
  /** Worker threads evaluating at once (at least 1). */
  readonly workers: number;
  /** The budget of one evaluation, in ms. */
  readonly timeoutMs: number;
  /** Evaluations sent to a worker in one message, at most. */
  readonly maxBatch?: number;
  /** Told of every evaluation stopped at the budget (log it, count it). */
  readonly onTimeout?: (e: { entrypoint: string; revision: string; timeoutMs: number }) => void;
  /** Told of every evaluation that failed (the policy trapped or threw); the caller gets a PolicyEvaluationError. */
  readonly onEvaluationError?: (e: { entrypoint: string; revision: string; message: string }) => void;
  /** Told when a bundle could not be loaded by the workers (the previous one keeps serving). */
  readonly onLoadFailed?: (e: { revision: string; reason: string }) => void;
}

interface Pending {
  readonly item: EvalItem;
  readonly resolve: (value: Evaluated<unknown>) => void;
  readonly reject: (err: Error) => void;
  /** Sent before, in a batch that was stopped or lost: it runs again in a batch of such evaluations only. */
  retried?: boolean;
}

interface Slot {
  readonly worker: Worker;
  readonly progress: Int32Array;
  ready: boolean;
  dead: boolean;
  inFlight: { seq: number; pendings: Pending[] } | undefined;
}

interface Generation {
  readonly bundle: PolicyBundle;
  readonly activatedAt: Date;
  readonly slots: Slot[];
  /** Settles once the first worker has loaded the bundle (rejects if none can). */
  readonly loaded: Promise<void>;
  /** Why its workers were stopped while loading, if they were. */
  failure: string | undefined;
  /** Whether that was a verification input running past the budget. */
  timedOut: boolean;
}

const WORKER_FILE = new URL("./pool-worker.ts", import.meta.url);
const QUARANTINE_MS = 10_000;
/** Timeouts of one question within QUARANTINE_MS before it is refused unevaluated: one can be machine noise. */
const QUARANTINE_STRIKES = 2;
const QUARANTINE_MAX = 1_000;
/** Attempts at verifying a bundle whose verification inputs run past the budget before it is refused. */
const VERIFY_ATTEMPTS = 2;

/** A question exactly: its entrypoint and its whole input but `now`. */
function exactKey(entrypoint: string, input: unknown): string {
  const timeless = input !== null && typeof input === "object" && !Array.isArray(input) ? { ...input, now: undefined } : input;
  return `${entrypoint}\n${JSON.stringify(timeless ?? null)}`;
}

/** For a check: who is checked for what (subject, resource, action), whatever the context and groups. */
function aboutKey(entrypoint: string, input: unknown): string | undefined {
  if (entrypoint !== ENTRYPOINTS.checkDecision) return undefined;
  const i = (input ?? {}) as { subject?: { id?: unknown }; resource?: unknown; action?: unknown };
  return `${entrypoint}\n${JSON.stringify([i.subject?.id, i.resource, i.action])}`;
}

export class PolicyPool implements BundleHolder {
  readonly #opts: Required<Omit<PolicyPoolOptions, "onTimeout" | "onLoadFailed" | "onEvaluationError">> & PolicyPoolOptions;
  /** The generation evaluations go to; the newest activated one once it has loaded. */
  #serving: Generation | undefined;
  /** An activated generation still loading; evaluations wait for it rather than use an older bundle. */
  #loading: Generation | undefined;
  readonly #queue: Pending[] = [];
  /** Questions that ran past the budget recently: question key -> until when (performance.now ms) and on which revision. */
  /** By exactKey: how often that very question ran away; by aboutKey: which different questions about it did. */
  readonly #quarantine = new Map<string, { until: number; revision: string; strikes: number; variants: Set<string> }>();
  #flushScheduled = false;
  #watchdog: NodeJS.Timeout | undefined;
  #seq = 0;
  #closed = false;
  /** Progress times are ms since this instant (an Int32 holds ~24 days of them). */
  readonly #epoch = Math.floor(performance.timeOrigin + performance.now());

  constructor(opts: PolicyPoolOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new RangeError("workers must be a whole number of at least 1");
    if (!(opts.timeoutMs > 0)) throw new RangeError("timeoutMs must be above 0");
    this.#opts = { maxBatch: 64, ...opts };
  }

  readonly verifiesBundles = true;

  /**
   * Makes `bundle` serve: fresh workers load and verify it (each verification input under the evaluation
   * budget) while the current bundle keeps answering; then `beforeSwitch` runs (throwing refuses the bundle)
   * and every later evaluation uses it. Resolves with the revision replaced; rejects with a BundleError when
   * the bundle cannot serve, the previous one serving on. A newer activation supersedes one still loading.
   */
  activate(bundle: PolicyBundle, beforeSwitch?: () => void | Promise<void>): Promise<string | undefined> {
    return this.#activate(bundle, beforeSwitch, 1);
  }

  /**
   * One attempt at activating. A verification input past the budget gets one more attempt on fresh workers
   * before the bundle is refused: a quick rule descheduled past the budget on a loaded machine is noise, while a
   * really slow one runs past it both times.
   */
  async #activate(
    bundle: PolicyBundle,
    beforeSwitch: (() => void | Promise<void>) | undefined,
    attempt: number,
  ): Promise<string | undefined> {
    if (this.#closed) throw new Unavailable("the policy pool is closed");
    const generation = this.#spawnGeneration(bundle, new Date());
    const superseded = this.#loading;
    this.#loading = generation;
    if (superseded) this.#retire(superseded);
    try {
      await generation.loaded;
      if (this.#loading !== generation) throw new BundleError(bundle.file, "superseded by a newer bundle before it could serve");
      await beforeSwitch?.();
      if (this.#loading !== generation) throw new BundleError(bundle.file, "superseded by a newer bundle before it could serve");
    } catch (err) {
      const current = this.#loading === generation;
      if (current) this.#loading = undefined;
      this.#retire(generation);
      if (generation.timedOut && current && attempt < VERIFY_ATTEMPTS && !this.#closed)
        return this.#activate(bundle, beforeSwitch, attempt + 1);
      const reason = generation.failure ?? (err as Error).message;
      this.#opts.onLoadFailed?.({ revision: bundle.revision, reason });
      this.#flush();
      throw err instanceof BundleError && generation.failure === undefined ? err : new BundleError(bundle.file, reason, { cause: err });
    }
    const old = this.#serving;
    this.#serving = generation;
    this.#loading = undefined;
    if (old) this.#retire(old);
    this.#flush();
    return old?.bundle.revision;
  }

  /** The bundle serving (a newer one still loading is not active yet). */
  get active(): ActiveBundleInfo | undefined {
    const g = this.#serving;
    return g && { revision: g.bundle.revision, file: g.bundle.file, activatedAt: g.activatedAt };
  }

  get ready(): boolean {
    return this.#serving !== undefined;
  }

  requestPlan(input: object): Promise<Evaluated<RequestPlan>> {
    return this.#typed(ENTRYPOINTS.requestPlan, input, decodeRequestPlan);
  }

  reviewVerdict(input: object): Promise<Evaluated<ReviewVerdict>> {
    return this.#typed(ENTRYPOINTS.reviewVerdict, input, decodeReviewVerdict);
  }

  checkDecision(input: object): Promise<Evaluated<CheckDecision>> {
    return this.#typed(ENTRYPOINTS.checkDecision, input, decodeCheckDecision);
  }

  /** Evaluates any entrypoint of the active bundle; the raw JSON result (undefined if the rule is). */
  evaluate(entrypoint: string, input: unknown): Promise<Evaluated<unknown>> {
    if (this.#closed) return Promise.reject(new Unavailable("the policy pool is closed"));
    if (!this.#serving && !this.#loading) return Promise.reject(new Unavailable("no policy bundle is loaded"));
    if (this.#quarantine.size > 0) {
      const refused = this.#quarantined(entrypoint, input);
      if (refused) return Promise.reject(refused);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ item: { entrypoint, input: JSON.stringify(input ?? null) }, resolve, reject });
      this.#scheduleFlush();
    });
  }

  /** Stops every worker; evaluations still queued or running fail with Unavailable. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#watchdog);
    const gone = new Unavailable("jitgate is shutting down");
    for (const p of this.#queue.splice(0)) p.reject(gone);
    const generations = [this.#serving, this.#loading].filter((g): g is Generation => g !== undefined);
    this.#serving = this.#loading = undefined;
    await Promise.all(
      generations.flatMap((g) =>
        g.slots.map((s) => {
          for (const p of s.inFlight?.pendings ?? []) p.reject(gone);
          s.inFlight = undefined;
          s.dead = true;
          return s.worker.terminate();
        }),
      ),
    );
  }

  async #typed<T>(entrypoint: string, input: object, decode: (v: unknown) => T | undefined): Promise<Evaluated<T>> {
    return decodedAnswer(entrypoint, await this.evaluate(entrypoint, input), decode);
  }

  #spawnGeneration(bundle: PolicyBundle, activatedAt: Date): Generation {
    const slots: Slot[] = [];
    const loads: Promise<void>[] = [];
    for (let i = 0; i < this.#opts.workers; i++) {
      const { slot, loaded } = this.#spawn(bundle);
      slots.push(slot);
      loads.push(loaded);
    }
    // Serving starts with the first worker up; a bundle no worker can load fails with the first reason.
    const loaded = Promise.any(loads).catch((err: AggregateError) => {
      throw (err.errors[0] as Error | undefined) ?? new BundleError(bundle.file, "no policy worker could load it");
    });
    loaded.catch(() => {});
    return { bundle, activatedAt, slots, loaded, failure: undefined, timedOut: false };
  }

  #spawn(bundle: PolicyBundle): { slot: Slot; loaded: Promise<void> } {
    const progress = new SharedArrayBuffer(PROGRESS.length * Int32Array.BYTES_PER_ELEMENT);
    const worker = new Worker(WORKER_FILE, { workerData: { progress } });
    worker.unref();
    const slot: Slot = { worker, progress: new Int32Array(progress), ready: false, dead: false, inFlight: undefined };
    const loaded = new Promise<void>((resolve, reject) => {
      worker.on("message", (msg: WorkerReply) => {
        if (msg.t === "loaded") {
          slot.ready = true;
          resolve();
          this.#flush();
        } else if (msg.t === "load-failed") {
          slot.dead = true;
          void worker.terminate();
          reject(new BundleError(bundle.file, msg.message));
        } else {
          this.#settle(slot, msg.seq, JSON.parse(msg.results) as EvalOutcome[]);
        }
      });
      worker.on("error", (err) => {
        slot.dead = true;
        reject(new BundleError(bundle.file, `policy worker failed: ${err.message}`));
        this.#lost(slot, new PolicyEvaluationError(`policy worker failed: ${err.message}`));
      });
      worker.on("exit", () => {
        // A no-op once loaded; while loading, the load has failed.
        reject(new BundleError(bundle.file, "policy worker exited while loading"));
        if (!slot.dead) {
          slot.dead = true;
          this.#lost(slot, new PolicyEvaluationError("policy worker exited"));
        }
      });
    });
    const bytes = new Uint8Array(bundle.bytes).slice().buffer;
    worker.postMessage({ t: "load", file: bundle.file, bytes, epoch: this.#epoch }, [bytes]);
    this.#armWatchdog();
    return { slot, loaded };
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // After this turn's I/O callbacks: calls that arrived together travel together.
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /**
   * Hands queued evaluations to idle, loaded workers of the generation that serves. While a newer bundle
   * loads, the one serving keeps answering (each answer names its revision); before the first bundle has
   * loaded, evaluations wait for it.
   */
  #flush(): void {
    if (this.#queue.length === 0) return;
    const generation = this.#serving;
    if (!generation) {
      if (this.#loading) return;
      const none = new Unavailable("no policy bundle is loaded");
      for (const p of this.#queue.splice(0)) p.reject(none);
      return;
    }
    for (const slot of generation.slots) {
      if (this.#queue.length === 0) break;
      if (!slot.ready || slot.dead || slot.inFlight) continue;
      const pendings = this.#queue.splice(0, this.#batchSize());
      const seq = ++this.#seq;
      slot.inFlight = { seq, pendings };
      let entrypoints = "";
      let inputs = "";
      for (const [i, p] of pendings.entries()) {
        entrypoints += i === 0 ? p.item.entrypoint : `\n${p.item.entrypoint}`;
        inputs += i === 0 ? p.item.input : `\n${p.item.input}`;
      }
      slot.worker.postMessage({ t: "eval", seq, entrypoints, inputs, epoch: this.#epoch });
    }
    this.#armWatchdog();
  }

  /**
   * How many queued evaluations the next batch takes. Those that come back from a stopped batch travel together
   * and with nothing new: a stream of run-away questions, each joining a batch of innocent ones, could otherwise
   * have the innocent ones stopped and sent again forever. Each such batch removes at least one run-away.
   */
  #batchSize(): number {
    const max = this.#opts.maxBatch;
    if (this.#queue[0]?.retried !== true) return max;
    let n = 1;
    while (n < max && this.#queue[n]?.retried === true) n++;
    return n;
  }

  #settle(slot: Slot, seq: number, results: readonly EvalOutcome[]): void {
    const batch = slot.inFlight;
    if (!batch || batch.seq !== seq) return;
    slot.inFlight = undefined;
    batch.pendings.forEach((p, i) => {
      const r = results[i];
      if (!r) p.reject(new PolicyEvaluationError("policy worker answered fewer results than asked"));
      else if (r.ok) p.resolve({ result: r.result, revision: r.revision });
      else {
        this.#opts.onEvaluationError?.({ entrypoint: p.item.entrypoint, revision: r.revision, message: r.message });
        p.reject(new PolicyEvaluationError(`policy ${p.item.entrypoint} (revision ${r.revision}) failed to evaluate: ${r.message}`));
      }
    });
    this.#flush();
  }

  /** A worker that died: what it was evaluating goes back to the front of the queue, and a new worker takes its place. */
  #lost(slot: Slot, _why: Error): void {
    const batch = slot.inFlight;
    slot.inFlight = undefined;
    if (batch) this.#requeue(batch.pendings);
    this.#replace(slot);
    this.#flush();
  }

  /** Evaluations of a batch that was stopped or lost, back at the front of the queue (see #batchSize). */
  #requeue(pendings: Pending[]): void {
    for (const p of pendings) p.retried = true;
    this.#queue.unshift(...pendings);
  }

  #replace(slot: Slot): void {
    if (this.#closed) return;
    for (const g of [this.#serving, this.#loading]) {
      if (!g) continue;
      const i = g.slots.indexOf(slot);
      if (i < 0) continue;
      const { slot: fresh, loaded } = this.#spawn(g.bundle);
      g.slots[i] = fresh;
      loaded.catch(() => {});
    }
  }

  /** Workers of a generation no longer served end once their batches are answered. */
  #retire(generation: Generation): void {
    for (const slot of generation.slots) {
      if (slot.inFlight) continue;
      slot.dead = true;
      void slot.worker.terminate();
    }
    const drain = setInterval(() => {
      for (const slot of generation.slots) {
        if (slot.inFlight || slot.dead) continue;
        slot.dead = true;
        void slot.worker.terminate();
      }
      if (generation.slots.every((s) => s.dead)) clearInterval(drain);
    }, 50);
    drain.unref();
  }

  #armWatchdog(): void {
    if (this.#watchdog || this.#closed) return;
    const tick = Math.max(1, Math.min(25, Math.floor(this.#opts.timeoutMs / 4)));
    this.#watchdog = setInterval(() => this.#watch(), tick);
    this.#watchdog.unref();
  }

  /** Stops every evaluation that has run past the budget; sleeps when nothing is running. */
  #watch(): void {
    const now = Math.floor(performance.timeOrigin + performance.now()) - this.#epoch;
    let busy = false;
    for (const g of [this.#serving, this.#loading]) {
      for (const slot of g?.slots ?? []) {
        if (slot.dead) continue;
        const running = Atomics.load(slot.progress, PROGRESS.busy) === 1;
        if (!running) {
          busy ||= !slot.ready || slot.inFlight !== undefined;
          continue;
        }
        busy = true;
        if (now - Atomics.load(slot.progress, PROGRESS.startedAt) <= this.#opts.timeoutMs) continue;
        this.#stop(g as Generation, slot);
      }
    }
    if (!busy && this.#queue.length === 0) {
      clearInterval(this.#watchdog);
      this.#watchdog = undefined;
    }
  }

  #stop(generation: Generation, slot: Slot): void {
    const index = Atomics.load(slot.progress, PROGRESS.index);
    const seq = Atomics.load(slot.progress, PROGRESS.seq);
    slot.dead = true;
    void slot.worker.terminate();
    const revision = generation.bundle.revision;
    const timeoutMs = this.#opts.timeoutMs;
    if (!slot.ready) {
      // A verification input of a bundle being loaded ran past the budget: the bundle is refused.
      if (generation === this.#loading) this.#failLoading(generation, timeoutMs);
      else this.#replace(slot);
      return;
    }
    const batch = slot.inFlight;
    slot.inFlight = undefined;
    if (batch && batch.seq === seq) {
      const slow = batch.pendings[index];
      if (slow) {
        this.#opts.onTimeout?.({ entrypoint: slow.item.entrypoint, revision, timeoutMs });
        slow.reject(new PolicyTimeout(`policy ${slow.item.entrypoint} (revision ${revision}) did not answer within ${timeoutMs} ms`));
        this.#remember(slow.item, revision);
      }
      // The others of its batch did nothing wrong: they run again on another worker.
      this.#requeue(batch.pendings.filter((_, i) => i !== index));
    } else if (batch) {
      this.#requeue(batch.pendings);
    }
    this.#replace(slot);
    this.#flush();
  }

  /** Stops every worker of a loading generation; its `loaded` then rejects and activate reports why. */
  /**
   * Run-away questions are refused at once for QUARANTINE_MS, without being evaluated, once there is evidence they
   * will run away again: each stop costs a worker restart (~120-170 ms of CPU), so a caller repeating a run-away
   * question, or varying a context key to dodge the first rule, must not make the pool restart workers over and
   * over. Refused: the very same question (all but `now`) once it has run away twice; any check of a subject,
   * resource and action once two different checks of them have. One timeout alone never quarantines: on a loaded
   * machine a quick evaluation can be descheduled past the budget, and refusing it for 10 s would turn one slow
   * moment into thousands of denials. Nor does one bad context condemn the subject's other checks. A new bundle
   * forgets it all.
   */
  #remember(item: EvalItem, revision: string): void {
    if (this.#quarantine.size >= QUARANTINE_MAX) this.#quarantine.clear();
    const input = JSON.parse(item.input) as unknown;
    const exact = exactKey(item.entrypoint, input);
    const now = performance.now();
    const note = (key: string) => {
      const earlier = this.#quarantine.get(key);
      const current = earlier && earlier.until > now && earlier.revision === revision ? earlier : undefined;
      const entry = {
        until: now + QUARANTINE_MS,
        revision,
        strikes: (current?.strikes ?? 0) + 1,
        variants: current?.variants ?? new Set<string>(),
      };
      entry.variants.add(exact);
      this.#quarantine.set(key, entry);
    };
    note(exact);
    const about = aboutKey(item.entrypoint, input);
    if (about !== undefined) note(about);
  }

  #quarantined(entrypoint: string, input: unknown): PolicyTimeout | undefined {
    const budget = `the ${this.#opts.timeoutMs} ms policy budget`;
    const exact = this.#entry(exactKey(entrypoint, input));
    if (exact && exact.strikes >= QUARANTINE_STRIKES) {
      return new PolicyTimeout(
        `the same question ran past ${budget} twice (revision ${exact.revision}) moments ago; refused without evaluating it again for up to ${QUARANTINE_MS / 1000} s`,
      );
    }
    const aboutKeyOf = aboutKey(entrypoint, input);
    const about = aboutKeyOf === undefined ? undefined : this.#entry(aboutKeyOf);
    if (about && about.variants.size >= QUARANTINE_STRIKES) {
      return new PolicyTimeout(
        `${about.variants.size} different checks of the same subject, resource and action ran past ${budget} (revision ${about.revision}) moments ago; refused without evaluating for up to ${QUARANTINE_MS / 1000} s`,
      );
    }
    return undefined;
  }

  /** A quarantine entry still in force for the serving bundle (one that is not is forgotten). */
  #entry(key: string): { revision: string; strikes: number; variants: Set<string> } | undefined {
    const entry = this.#quarantine.get(key);
    if (!entry) return undefined;
    if (entry.until <= performance.now() || entry.revision !== this.#serving?.bundle.revision) {
      this.#quarantine.delete(key);
      return undefined;
    }
    return entry;
  }

  #failLoading(generation: Generation, timeoutMs: number): void {
    generation.failure = `a verification input ran past the policy time budget (${timeoutMs} ms) on ${VERIFY_ATTEMPTS} attempts: the bundle is too slow to serve`;
    generation.timedOut = true;
    for (const slot of generation.slots) {
      slot.dead = true;
      void slot.worker.terminate();
    }
  }
}
