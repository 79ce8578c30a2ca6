// A fixed-capacity FIFO over one preallocated array: pushing is O(1) and allocates nothing, which is what the
// decision path needs; the oldest records are read as a batch and released once written.
export class Ring<T> {
  readonly #slots: (T | undefined)[];
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    this.#slots = new Array<T | undefined>(capacity).fill(undefined);
  }

  get size(): number {
    return this.#size;
  }

  get full(): boolean {
    return this.#size === this.#slots.length;
  }

  /** Adds `item` at the end; the caller checks `full` first. */
  push(item: T): void {
    this.#slots[(this.#head + this.#size) % this.#slots.length] = item;
    this.#size++;
  }

  /** The `n` oldest items (n <= size), oldest first, still held. */
  oldest(n: number): T[] {
    const items = new Array<T>(n);
    for (let i = 0; i < n; i++) items[i] = this.#slots[(this.#head + i) % this.#slots.length] as T;
    return items;
  }

  /** Forgets the `n` oldest items, clearing their slots so they can be collected. */
  release(n: number): void {
    for (let i = 0; i < n; i++) this.#slots[(this.#head + i) % this.#slots.length] = undefined;
    this.#head = (this.#head + n) % this.#slots.length;
    this.#size -= n;
  }
}
