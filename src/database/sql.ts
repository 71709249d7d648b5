import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import type { EntityMetadata } from 'typeorm';

/** Where a statement runs: the pool (on a connection of its own) or the connection of a transaction. */
export type Queryable = Pool | PoolClient;

/**
 * A statement with named parameters (`:jobId`), compiled once to
 * PostgreSQL's positional ones; `P` names its parameters and their types.
 * A colon followed by a name is a parameter wherever it is not in a string, a
 * quoted identifier or a comment; `::type` casts are left alone.
 */
export class Statement<P extends object = Record<string, never>> {
  /** The SQL as PostgreSQL receives it ($1, $2, …). */
  readonly text: string;
  /** The parameter behind each position. */
  readonly names: readonly string[];

  /**
   * @param preparedAs the name under which PostgreSQL keeps the statement
   *   parsed and planned on each connection (a protocol-level prepared
   *   statement, see prepared()); none for a statement parsed at each run.
   */
  constructor(
    named: string,
    readonly preparedAs?: string,
  ) {
    const names: string[] = [];
    // Trimmed, so that pg_stat_activity and the logs show each statement from its first word.
    this.text = replaceParameters(named, (name) => {
      let i = names.indexOf(name);
      if (i < 0) i = names.push(name) - 1;
      return `$${i + 1}`;
    }).trim();
    this.names = names;
  }

  /** The positional values; a parameter left undefined is a bug, not a NULL. */
  values(params: P): unknown[] {
    const record = params as Record<string, unknown>;
    return this.names.map((name) => {
      const value = record[name];
      if (value === undefined) throw new Error(`statement parameter :${name} is undefined`);
      return value;
    });
  }

  query<R extends QueryResultRow = QueryResultRow>(on: Queryable, params: P): Promise<QueryResult<R>> {
    const values = this.values(params);
    return this.preparedAs === undefined
      ? on.query<R>(this.text, values)
      : on.query<R>({ name: this.preparedAs, text: this.text, values });
  }

  async rows<R extends QueryResultRow>(on: Queryable, params: P): Promise<R[]> {
    return (await this.query<R>(on, params)).rows;
  }
}

/** A named statement: `sql<{ jobId: string }>('SELECT … WHERE id = :jobId')`. */
export function sql<P extends object = Record<string, never>>(text: string): Statement<P> {
  return new Statement<P>(text);
}

/**
 * A statement that each connection parses and plans once, under `name`, and
 * then only binds and runs (pg's named statements): for the statements of
 * the hottest requests, whose parse and plan cost PostgreSQL more CPU than
 * their run (bench/README.md, "Toward 90% of the raw server"). Not behind a
 * pooler in transaction mode, which hands each statement to any server
 * connection (Database.prepares): there, pass no name.
 */
export function prepared<P extends object = Record<string, never>>(
  name: string | undefined,
  text: string,
): Statement<P> {
  return new Statement<P>(text, name);
}

/**
 * Runs `fn` in a transaction on a connection of `pool`: committed when `fn`
 * resolves, rolled back when it throws. A connection that failed (or whose
 * rollback failed) is closed instead of going back to the pool. `begin` as
 * for inTransaction.
 */
export async function transaction<T>(
  pool: Pool,
  fn: (tx: PoolClient) => Promise<T>,
  begin = 'BEGIN',
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A connection that breaks while it is checked out (the server ended it, say
  // mid-COPY) reports it as an 'error' event, which must not crash the process.
  const lost = (err: Error) => {
    broken ??= err;
  };
  client.on('error', lost);
  try {
    return await inTransaction(client, fn, lost, begin);
  } finally {
    if (!broken) client.removeListener('error', lost);
    client.release(broken);
  }
}

/**
 * The same on a connection the caller holds (and releases). `begin` may add
 * settings for this transaction alone (`BEGIN; SET LOCAL …`, one round trip).
 */
export async function inTransaction<T>(
  client: PoolClient,
  fn: (tx: PoolClient) => Promise<T>,
  onRollbackFailed: (err: Error) => void = () => undefined,
  begin = 'BEGIN',
): Promise<T> {
  await client.query(begin);
  try {
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(onRollbackFailed);
    throw err;
  }
}

/** `'a', 'b'`: constant strings as SQL literals, for an `IN (…)` list in DDL and in fixed statements. */
export function sqlLiterals(values: readonly string[]): string {
  return values.map((v) => `'${v.replaceAll("'", "''")}'`).join(', ');
}

/**
 * A select list that reads columns into an entity's property names
 * (`total_items AS "totalItems"`), from the entity's metadata, so that a row
 * is already in the entity's shape. Unqualified: for statements on one table.
 */
export function selectList(metadata: EntityMetadata, properties: readonly string[]): string {
  return properties
    .map((property) => {
      const column = metadata.findColumnWithPropertyName(property);
      if (!column) throw new Error(`${metadata.name} has no column for ${property}`);
      return column.databaseName === property ? property : `${column.databaseName} AS "${property}"`;
    })
    .join(', ');
}

/** Replaces each `:name` outside strings, quoted identifiers and comments. */
function replaceParameters(text: string, replace: (name: string) => string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const skipped = endOfQuoted(text, i);
    if (skipped > i) {
      out += text.slice(i, skipped);
      i = skipped;
      continue;
    }
    if (text[i] === ':' && text[i - 1] !== ':') {
      const name = /^[A-Za-z_]\w*/.exec(text.slice(i + 1, i + 65))?.[0];
      if (name) {
        out += replace(name);
        i += 1 + name.length;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

/** Where a string, quoted identifier or comment that starts at `i` ends; `i` when none starts there. */
function endOfQuoted(text: string, i: number): number {
  const after = (index: number, length: number) => (index < 0 ? text.length : index + length);
  const c = text[i];
  if (c === "'" || c === '"') return after(text.indexOf(c, i + 1), 1);
  if (text.startsWith('--', i)) return after(text.indexOf('\n', i), 1);
  if (text.startsWith('/*', i)) return after(text.indexOf('*/', i + 2), 2);
  return i;
}
