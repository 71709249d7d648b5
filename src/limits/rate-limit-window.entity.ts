import { Check, Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * One fixed window of a shared rate limit: how many requests the API
 * processes together have reserved for `key` in the window that starts at
 * `window_start`. A process reserves a chunk at a time and admits from it
 * without asking again (SharedRateLimiter); `used` counts reservations, spent
 * or not, so N processes never admit more than the limit together.
 * `granted` is what the last reservation took: PostgreSQL 15's RETURNING
 * shows only the new row, and the reserving process must learn its share.
 *
 * The table is UNLOGGED (migration SharedRateLimits): counts that only live
 * for two minutes are not worth a WAL write and flush per reservation, and a
 * crash or a failover that empties it only forgives the current minute.
 */
@Entity({ name: 'rate_limit_windows' })
@Check('rate_limit_windows_used_check', 'granted >= 0 AND used >= granted')
/** The sweep of past windows (RateLimitRepository.deletePast) reads by age. */
@Index('rate_limit_windows_window_start_idx', ['windowStart'])
export class RateLimitWindow {
  /** The limit and the caller: `principal:<sub>`. */
  @PrimaryColumn('text', { primaryKeyConstraintName: 'rate_limit_windows_pkey' })
  key: string;

  @PrimaryColumn('timestamp with time zone', {
    name: 'window_start',
    precision: 3,
    primaryKeyConstraintName: 'rate_limit_windows_pkey',
  })
  windowStart: Date;

  @Column('integer')
  used: number;

  @Column('integer')
  granted: number;
}
