import { expect } from 'expect';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { DataSource } from 'typeorm';
import { DESCENDING_INDEXES, OTHER_METHOD_INDEXES } from '../../src/jobs/bulk-job.entity';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { SCHEMA_ENTITIES } from '../../src/entities';
import { createEngineDatabase, type EngineDatabase } from '../support/engine';

// `npm test` runs from the repository root.
const ROOT = process.cwd();

interface CliResult {
  code: number;
  output: string;
}

/** `npm run migration:generate -- … --check` as a contributor runs it, against `databaseUrl`. */
function generateCheck(databaseUrl: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      'npm',
      ['run', '-s', 'migration:generate', '--', 'src/database/migrations/SchemaGuard', '--check'],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl }, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

/** The tables, columns, constraints and indexes of the entities' tables, as PostgreSQL describes them. */
async function describeSchema(db: DataSource, tables: string[]): Promise<Record<string, string[]>> {
  const lines = async (sql: string) =>
    (await db.query<{ line: string }[]>(sql, [tables])).map((r) => r.line).sort();
  return {
    columns: await lines(`
      SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
             || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
             || COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') AS line
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE c.relname = ANY($1) AND c.relnamespace = 'public'::regnamespace
        AND a.attnum > 0 AND NOT a.attisdropped`),
    constraints: await lines(`
      SELECT c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) AS line
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
      WHERE c.relname = ANY($1) AND c.relnamespace = 'public'::regnamespace`),
    indexes: await lines(`
      SELECT indexdef AS line FROM pg_indexes WHERE tablename = ANY($1) AND schemaname = 'public'`),
  };
}

/**
 * The entities are the truth about the schema: the documented way to change
 * it (edit an entity, `npm run migration:generate`) must produce exactly the
 * change made, never drop what the hand-written migrations built.
 */
describe('schema: the entities and the migrations describe the same database', () => {
  let migratedDb: EngineDatabase;
  let migrated: DataSource;
  let tables: string[];

  before(async () => {
    migratedDb = await createEngineDatabase();
    migrated = await new DataSource(
      dataSourceOptions({ url: migratedDb.url, poolSize: 2, entities: SCHEMA_ENTITIES }),
    ).initialize();
    await migrated.runMigrations({ transaction: 'each' });
    tables = migrated.entityMetadatas.map((m) => m.tableName);
  });

  after(async () => {
    await migrated?.destroy();
    await migratedDb?.drop();
  });

  it('has an entity for every table the migrations build', async () => {
    const rows = await migrated.query<{ tablename: string }[]>(
      `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> $1`,
      [migrated.options.migrationsTableName],
    );
    expect(rows.map((r) => r.tablename).sort()).toEqual([...tables].sort());
    expect(tables.length).toBeGreaterThan(0);
  });

  it('TypeORM finds nothing to change on a database the migrations built (schema:log)', async () => {
    const sql = await migrated.driver.createSchemaBuilder().log();
    expect(sql.upQueries.map((q) => q.query)).toEqual([]);
  });

  it('migration:generate --check reports no changes there', async () => {
    const result = await generateCheck(migratedDb.url);
    expect(result.output).toContain('No changes in database schema were found');
    expect(result.code).toBe(0);
  });

  // TypeORM's diff compares indexes by name and columns, checks by name and
  // defaults loosely; the database itself compares the rest (predicates,
  // check expressions, types, defaults, key names).
  it('the schema TypeORM builds from the entities alone is the one the migrations build', async () => {
    const scratchDb = await createEngineDatabase();
    const scratch = await new DataSource(
      dataSourceOptions({ url: scratchDb.url, poolSize: 2, entities: SCHEMA_ENTITIES }),
    ).initialize();
    try {
      await scratch.synchronize();
      const fromEntities = await describeSchema(scratch, tables);
      const fromMigrations = await describeSchema(migrated, tables);
      // Declared `synchronize: false` (TypeORM cannot say a column's direction): compared below.
      const descending = [...Object.values(DESCENDING_INDEXES), ...Object.values(OTHER_METHOD_INDEXES)].map(
        (i) => i.name,
      );
      fromMigrations.indexes = fromMigrations.indexes.filter(
        (def) => !descending.some((name) => def.startsWith(`CREATE INDEX ${name} `)),
      );
      expect(fromEntities).toEqual(fromMigrations);
    } finally {
      await scratch.destroy();
      await scratchDb.drop();
    }
  });

  it('has the descending indexes exactly as the entity documents them', async () => {
    const rows = await migrated.query<{ indexname: string; indexdef: string }[]>(
      `SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1)`,
      [Object.values(DESCENDING_INDEXES).map((i) => i.name)],
    );
    const found = Object.fromEntries(rows.map((r) => [r.indexname, r.indexdef]));
    expect(found).toEqual(
      Object.fromEntries(
        Object.values(DESCENDING_INDEXES).map((i) => [
          i.name,
          `CREATE INDEX ${i.name} ON public.bulk_jobs USING btree (${i.columns})`,
        ]),
      ),
    );
  });

  it('has the indexes of other access methods exactly as the entity documents them', async () => {
    const rows = await migrated.query<{ indexname: string; indexdef: string }[]>(
      `SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1)`,
      [Object.values(OTHER_METHOD_INDEXES).map((i) => i.name)],
    );
    expect(Object.fromEntries(rows.map((r) => [r.indexname, r.indexdef]))).toEqual(
      Object.fromEntries(
        Object.values(OTHER_METHOD_INDEXES).map((i) => [
          i.name,
          `CREATE INDEX ${i.name} ON public.bulk_jobs USING ${i.using} (${i.columns})`,
        ]),
      ),
    );
  });
});
