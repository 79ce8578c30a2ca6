// Keeps the engine on the newest valid bundle: watches the bundle file's directory and, on every change,
// loads and verifies the new file off to the side before swapping it in. A bad file is rejected with one
// log line and the engine keeps serving the bundle it has. Reloads never overlap; changes that arrive during
// a reload are folded into one more reload after it.
import { basename, dirname, resolve } from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { describeThrown } from "../errors.ts";
import { loadBundleFile } from "./bundle.ts";
import type { PolicyEngine } from "./engine.ts";

export interface BundleEvents {
  /** Called just before the engine switches to a bundle; throwing refuses it (say, when the switch cannot be audited). */
  activating?(info: { revision: string; previous: string | undefined; file: string }): void;
  activated(info: { revision: string; previous: string | undefined; file: string }): void;
  rejected(info: { file: string; reason: string; serving: string | undefined }): void;
}

export class BundleWatcher {
  readonly #file: string;
  readonly #engine: PolicyEngine;
  readonly #events: BundleEvents;
  #watcher: FSWatcher | undefined;
  #reloading: Promise<void> | undefined;
  #again = false;

  constructor(file: string, engine: PolicyEngine, events: BundleEvents) {
    this.#file = resolve(file);
    this.#engine = engine;
    this.#events = events;
  }

  /** Loads the bundle now (throwing its BundleError if it is not valid), then watches for changes. */
  async start(): Promise<void> {
    const bundle = await loadBundleFile(this.#file);
    this.#events.activating?.({ revision: bundle.revision, previous: this.#engine.active?.revision, file: this.#file });
    const previous = this.#engine.activate(bundle);
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

  async #reloadLoop(): Promise<void> {
    do {
      this.#again = false;
      try {
        const bundle = await loadBundleFile(this.#file);
        if (bundle.revision === this.#engine.active?.revision) continue;
        this.#events.activating?.({ revision: bundle.revision, previous: this.#engine.active?.revision, file: this.#file });
        const previous = this.#engine.activate(bundle);
        this.#events.activated({ revision: bundle.revision, previous, file: this.#file });
      } catch (err) {
        this.#events.rejected({ file: this.#file, reason: describeThrown(err), serving: this.#engine.active?.revision });
      }
    } while (this.#again);
  }

  async close(): Promise<void> {
    await this.#watcher?.close();
    await this.#reloading;
  }
}
