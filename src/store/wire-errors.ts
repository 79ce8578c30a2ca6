// Errors crossing from a store's worker thread to the thread that asked: jitgate's code, the message and the
// SQLite code behind it go over; this side rebuilds the same kind of error, with a SqliteError of that code as
// its cause so write health learns why.
import Database from "better-sqlite3";
import { AlreadyExists, describeThrown, FailedPrecondition, JitgateError, NotFound, Unavailable } from "../errors.ts";
import { sqliteCause } from "./sqlite-errors.ts";

export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly sqliteCode?: string;
  readonly sqliteMessage?: string;
}

export function errorToWire(err: unknown): WireError {
  const code = err instanceof JitgateError ? err.code : "INTERNAL";
  const sqlite = sqliteCause(err);
  const wire = { code, message: err instanceof JitgateError ? err.message : describeThrown(err) };
  return sqlite === undefined ? wire : { ...wire, sqliteCode: sqlite.code, sqliteMessage: sqlite.message };
}

/** An Unavailable stays Unavailable (callers retry it), a refusal the store makes stays that refusal. */
export function errorFromWire(wire: WireError): Error {
  const sqlite = wire.sqliteCode === undefined ? undefined : new Database.SqliteError(wire.sqliteMessage ?? wire.message, wire.sqliteCode);
  const options = sqlite === undefined ? undefined : { cause: sqlite };
  switch (wire.code) {
    case "UNAVAILABLE":
      return new Unavailable(wire.message, options);
    case "FAILED_PRECONDITION":
      return new FailedPrecondition(wire.message, options);
    case "ALREADY_EXISTS":
      return new AlreadyExists(wire.message, options);
    case "NOT_FOUND":
      return new NotFound(wire.message, options);
    default:
      return sqlite ?? new JitgateError(wire.message);
  }
}
