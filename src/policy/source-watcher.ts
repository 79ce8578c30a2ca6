// For policy authors (`make dev`, `jitgate serve --watch-policies`): rebuilds the bundle whenever a Rego or
// data file under policies/ changes and hands it to an installer, by default the server's own BundleWatcher,
// which switches to it and renames it into place at once. A build that does not compile or that the server
// refuses is reported once and never replaces the bundle file: the last good bundle keeps serving, now and
// after a restart.
import { type FSWatcher, watch } from "chokidar";
import { type BuildOptions, type BuildResult, type BundleInstaller, buildBundle, installVerified } from "./build.ts";

/** Long enough to fold one save's events (truncate, write; or unlink, add) into one build, short enough not to be felt. */
const DEBOUNCE_MS = 50;
const SOURCE = /\.(rego|json|ya?ml)$/;

/** What takes each build: the serving process's BundleWatcher, whose install verifies and activates. */
export interface BundleTarget {
  install: BundleInstaller;
}

export class PolicySourceWatcher {
  readonly #opts: BuildOptions;
  readonly #onBuilt: (result: BuildResult) => void;
  readonly #install: BundleInstaller;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #building: Promise<void> | undefined;
  #again = false;
  #closed = false;

  /** Without a `target`, a build is checked as `make bundle` checks it and renamed into place for a watcher to find. */
  constructor(opts: BuildOptions, onBuilt: (result: BuildResult) => void, target?: BundleTarget) {
    this.#opts = opts;
    this.#onBuilt = onBuilt;
    this.#install = target ? (candidate, out) => target.install(candidate, out) : installVerified;
  }

  async start(): Promise<void> {
    this.#watcher = watch(this.#opts.policiesDir, {
      ignoreInitial: true,
      ignored: (path, stats) => stats?.isFile() === true && !SOURCE.test(path),
    });
    this.#watcher.on("all", () => this.#schedule());
    await new Promise<void>((ok) => this.#watcher?.once("ready", () => ok()));
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#build(), DEBOUNCE_MS);
  }

  async #build(): Promise<void> {
    if (this.#building) {
      this.#again = true;
      return;
    }
    this.#building = (async () => {
      do {
        this.#again = false;
        this.#onBuilt(await buildBundle(this.#opts, this.#install));
      } while (this.#again && !this.#closed);
    })().finally(() => {
      this.#building = undefined;
    });
    await this.#building;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#watcher?.close();
    await this.#building;
  }
}
