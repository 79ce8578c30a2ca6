// Writes a signed checkpoint of the audit trail's head every interval (when the head has moved) and once more on
// shutdown, so the newest entries are covered too. Checkpoints never overlap; a failed one is reported and retried
// at the next tick.
import { type AuditHead, type CheckpointLine, type CheckpointSigner, signCheckpoint } from "./checkpoint.ts";
import { appendCheckpoint } from "./checkpoint-file.ts";

export interface CheckpointerOptions {
  readonly file: string;
  readonly intervalMs: number;
  readonly issuer: string;
  readonly head: () => AuditHead | undefined | Promise<AuditHead | undefined>;
  readonly signer: CheckpointSigner;
  readonly now: () => number;
  readonly onWritten: (line: CheckpointLine) => void;
  readonly onError: (err: unknown) => void;
}

export class AuditCheckpointer {
  readonly #o: CheckpointerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<CheckpointLine | undefined> | undefined;
  #lastSeq = 0;

  constructor(options: CheckpointerOptions) {
    this.#o = options;
  }

  start(): void {
    this.#timer = setInterval(() => void this.checkpoint().catch(this.#o.onError), this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Signs and appends the current head unless this process already checkpointed it; serialised. */
  async checkpoint(): Promise<CheckpointLine | undefined> {
    while (this.#running) await this.#running.catch(() => undefined);
    this.#running = this.#write().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Stops the timer and checkpoints the head once more. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.checkpoint();
  }

  async #write(): Promise<CheckpointLine | undefined> {
    const head = await this.#o.head();
    if (head === undefined || head.seq === this.#lastSeq) return undefined;
    const line = await signCheckpoint(this.#o.signer, head, this.#o.now(), this.#o.issuer);
    await appendCheckpoint(this.#o.file, line);
    this.#lastSeq = head.seq;
    this.#o.onWritten(line);
    return line;
  }
}
