// Keeps the engine on the newest valid bundle: watches the bundle file's directory and, on every change,
// loads and verifies the new file off to the side before swapping it in. A bad file is rejected with one
// log line and the engine keeps serving the bundle it has. Reloads never overlap; changes that arrive during
// a reload are folded into one more reload after it. The dev loop hands its builds to install() instead,
// which swaps them in without waiting for the file to be seen, and puts them on disk only once they serve.
import { renameSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { describeThrown } from "../errors.ts";
import { loadBundle, loadBundleFile } from "./bundle.ts";
import type { BundleHolder } from "./engine.ts";

export interface BundleEvents {
  /** Called just before the engine switches to a bundle; throwing refuses it (say, when the switch cannot be audited). */
  activating?(info: { revision: string; previous: string | undefined; file: string }): void | Promise<void>;
  activated(info: { revision: string; previous: string | undefined; file: string }): void;
  rejected(info: { file: string; reason: string; serving: string | undefined }): void;
}

export class BundleWatcher {
  readonly #file: string;
  readonly #engine: BundleHolder;
  readonly #events: BundleEvents;
  #watcher: FSWatcher | undefined;
  #reloading: Promise<void> | undefined;
  #again = false;
  /** Reloads and installs run one at a time, in order, so two bundles never race for the engine. */
  #turn: Promise<unknown> = Promise.resolve();
  /** The identity of the file whose bundle serves: a change event that finds it unchanged is an echo. */
  #current: string | undefined;

  constructor(file: string, engine: BundleHolder, events: BundleEvents) {
    this.#file = resolve(file);
    this.#engine = engine;
    this.#events = events;
  }

  /** Loads the bundle now (throwing its BundleError if it is not valid), then watches for changes. */
  async start(): Promise<void> {
    const identity = await identityOf(this.#file);
    const bundle = await loadBundleFile(this.#file, { skipVerification: this.#engine.verifiesBundles });
    const before = this.#engine.active?.revision;
    const previous = await this.#engine.activate(bundle, () =>
      this.#events.activating?.({ revision: bundle.revision, previous: before, file: this.#file }),
    );
    this.#current = identity;
    this.#events.activated({ revision: bundle.revision, previous, file: this.#file });
    const name = basename(this.#file);
    this.#watcher = watch(dirname(this.#file), {
      ignoreInitial: true,
      depth: 0,
      // Only the bundle itself: `make bundle` writes a temporary file beside it and renames it into place.
      ignored: (path: string) => path !== dirname(this.#file) && basename(path) !== name,
    });
    const onChange = () => void this.reload();
    this.#watcher.on("add", onChange).on("change", onChange);
    await new Promise<void>((ok) => this.#watcher?.once("ready", () => ok()));
  }

  /** Reloads the bundle file; resolves once the engine serves it or it has been rejected. */
  reload(): Promise<void> {
    if (this.#reloading) {
      this.#again = true;
      return this.#reloading;
    }
    this.#reloading = this.#reloadLoop().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  /**
   * Serves a freshly built bundle and puts it in place of the watched file in one step: `candidate`, a file
   * beside it, is loaded and verified the way this server verifies every bundle, and renamed over the file
   * at the moment the engine switches to it. If anything refuses it (verification, the activating hook, the
   * rename) this throws, the engine keeps its bundle and the file stays as it was, so the file on disk is
   * always one this server accepted. A candidate with the serving revision is left alone.
   */
  install(candidate: string, out: string = this.#file): Promise<void> {
    if (resolve(out) !== this.#file) return Promise.reject(new Error(`this watcher serves ${this.#file}, not ${resolve(out)}`));
    return this.#exclusive(async () => {
      // Taken before reading: rename keeps the inode, size and mtime, so the file's change event is an echo.
      const identity = await identityOf(candidate);
      const bundle = await loadBundle(this.#file, await readFile(candidate), { skipVerification: this.#engine.verifiesBundles });
      const before = this.#engine.active?.revision;
      if (bundle.revision === before) return;
      const previous = await this.#engine.activate(bundle, async () => {
        // The audit hook first: when it refuses (the likelier failure) neither the engine nor the file changes.
        await this.#events.activating?.({ revision: bundle.revision, previous: before, file: this.#file });
        renameSync(candidate, this.#file);
        this.#current = identity;
      });
      this.#events.activated({ revision: bundle.revision, previous, file: this.#file });
    });
  }

  async #reloadLoop(): Promise<void> {
    do {
      this.#again = false;
      await this.#exclusive(() => this.#reloadOnce());
    } while (this.#again);
  }

  async #reloadOnce(): Promise<void> {
    try {
      // Taken before reading, so a replacement that lands while this reload reads is reloaded again.
      const identity = await identityOf(this.#file);
      if (identity !== undefined && identity === this.#current) return;
      const bundle = await loadBundleFile(this.#file, { skipVerification: this.#engine.verifiesBundles });
      const before = this.#engine.active?.revision;
      if (bundle.revision !== before) {
        const previous = await this.#engine.activate(bundle, () =>
          this.#events.activating?.({ revision: bundle.revision, previous: before, file: this.#file }),
        );
        this.#events.activated({ revision: bundle.revision, previous, file: this.#file });
      }
      this.#current = identity;
    } catch (err) {
      this.#events.rejected({ file: this.#file, reason: describeThrown(err), serving: this.#engine.active?.revision });
    }
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#turn.then(task);
    this.#turn = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    await this.#watcher?.close();
    await this.#reloading;
    await this.#turn;
  }
}

/** Which file a path holds: a replacement renamed in has another inode, a rewrite another size or mtime. */
async function identityOf(file: string): Promise<string | undefined> {
  try {
    const s = await stat(file, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
  } catch {
    return undefined;
  }
}
