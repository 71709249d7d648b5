const number = new Intl.NumberFormat();

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time, as 2026-11-29 10:15:42: one width whatever the locale, so columns stay put. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}
export const formatNumber = (n: number) => number.format(n);
export const formatPercent = (share: number) => `${Math.floor(share * 1000) / 10}%`;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 1) return '< 1 s';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${rest} s`;
  return `${rest} s`;
}

export function formatRate(perSecond: number | undefined): string {
  if (perSecond === undefined) return '—';
  return `${perSecond >= 100 ? number.format(Math.round(perSecond)) : perSecond.toFixed(1)} items/s`;
}

/** The job's short id, for narrow screens. */
export const shortId = (id: string) => id.slice(0, 8);
