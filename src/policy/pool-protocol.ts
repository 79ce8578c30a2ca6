// The messages between the policy pool and its worker threads, and the layout of the shared progress slots.

/** Int32 slots each worker writes before every evaluation, so the pool's watchdog can time it. */
export const PROGRESS = { busy: 0, seq: 1, index: 2, startedAt: 3, length: 4 } as const;

export interface EvalItem {
  readonly entrypoint: string;
  /** The input, already serialised as JSON. */
  readonly input: string;
}

export type WorkerRequest =
  | { readonly t: "load"; readonly file: string; readonly bytes: ArrayBuffer; readonly epoch: number }
  | {
      readonly t: "eval";
      readonly seq: number;
      /**
       * The batch as two strings, one line per evaluation (JSON text holds no raw newline): copying two strings
       * between threads costs far less than cloning an array of objects.
       */
      readonly entrypoints: string;
      readonly inputs: string;
      readonly epoch: number;
    };

export type EvalOutcome =
  | { readonly ok: true; readonly result: unknown; readonly revision: string }
  | { readonly ok: false; readonly message: string; readonly revision: string };

export type WorkerReply =
  | { readonly t: "loaded"; readonly revision: string; readonly entrypoints: string[] }
  | { readonly t: "load-failed"; readonly message: string }
  /** `results`: the batch's EvalOutcome[] as JSON text, for the same reason. */
  | { readonly t: "results"; readonly seq: number; readonly results: string };
