/**
 * The DataSource the TypeORM CLI uses (`npm run migration:run`, `migration:revert`,
 * `migration:generate -- src/database/migrations/Name`). It connects to
 * DATABASE_URL, or, when that is unset, to the embedded PostgreSQL that
 * `npm start` runs under DATA_DIR (start the service once first).
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataSource } from 'typeorm';
import { loadEnv } from './src/config/env';
import { dataSourceOptions } from './src/database/data-source-options';
import { SCHEMA_ENTITIES } from './src/entities';

function embeddedUrl(dataDir: string, port: number): string {
  const password = readFileSync(join(resolve(dataDir), 'postgres-password'), 'utf8').trim();
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/bulk_jobs`;
}

const env = loadEnv();
export default new DataSource(
  dataSourceOptions({
    url: env.DATABASE_URL ?? embeddedUrl(env.DATA_DIR, env.EMBEDDED_PG_PORT),
    applicationName: 'bulk-jobs-cli',
    entities: SCHEMA_ENTITIES,
  }),
);
