import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { asProblem, type Page, type Problem } from './api';

export interface Paged<T> {
  items: T[];
  loading: boolean;
  problem: Problem | undefined;
  /** There is a next page (the last one answered a next_cursor). */
  more: boolean;
  loadMore: () => void;
  setItems: (update: (items: T[]) => T[]) => void;
}

/**
 * A keyset-paginated list that grows page by page: the first page when `key`
 * changes (new filters), the next one on loadMore(). The cursor is the API's
 * opaque next_cursor, passed back as it came.
 */
export function usePaged<T>(
  key: string,
  load: (cursor: string | undefined, signal: AbortSignal) => Promise<Page<T>>,
): Paged<T> {
  // The rows are kept with the key they were loaded for, so that a render
  // after the key changed never shows the old filter's rows under the new one.
  const [list, setList] = useState<{ key: string; items: T[] }>({ key, items: [] });
  const [loading, setLoading] = useState(false);
  const [problem, setProblem] = useState<Problem>();
  const cursor = useRef<string | null | undefined>(undefined);
  const inFlight = useRef<AbortController | undefined>(undefined);
  const loadRef = useRef(load);
  loadRef.current = load;
  const keyRef = useRef(key);
  keyRef.current = key;

  const fetchPage = useCallback((first: boolean) => {
    if (!first && (inFlight.current || cursor.current === null)) return;
    inFlight.current?.abort();
    const abort = new AbortController();
    inFlight.current = abort;
    const forKey = keyRef.current;
    setLoading(true);
    setProblem(undefined);
    loadRef
      .current(first ? undefined : (cursor.current ?? undefined), abort.signal)
      .then((page) => {
        if (abort.signal.aborted) return;
        cursor.current = page.next_cursor;
        setList((prev) => ({
          key: forKey,
          items: first || prev.key !== forKey ? page.items : [...prev.items, ...page.items],
        }));
      })
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setProblem(asProblem(err));
      })
      .finally(() => {
        if (inFlight.current === abort) {
          inFlight.current = undefined;
          setLoading(false);
        }
      });
  }, []);

  useEffect(() => {
    cursor.current = undefined;
    setList({ key, items: [] });
    fetchPage(true);
    return () => inFlight.current?.abort();
  }, [key, fetchPage]);

  const current = list.key === key;
  return {
    items: current ? list.items : [],
    loading: loading || !current,
    problem: current ? problem : undefined,
    more: current && cursor.current !== null,
    loadMore: () => fetchPage(false),
    setItems: (update) => setList((prev) => ({ key: prev.key, items: update(prev.items) })),
  };
}

/**
 * Loads the next page when the sentinel (the element after the list) comes
 * within a screen of the viewport: infinite scroll. The page also shows a
 * "Load more" button, for the keyboard and for screens where nothing scrolls.
 */
export function useInfiniteScroll<T>(paged: Paged<T>) {
  const sentinel = useRef<HTMLDivElement>(null);
  const latest = useRef(paged);
  latest.current = paged;
  useEffect(() => {
    const node = sentinel.current;
    if (!node) return;
    const observer = new IntersectionObserver(
      (entries) => {
        const p = latest.current;
        if (entries.some((e) => e.isIntersecting) && p.more && !p.loading && !p.problem) p.loadMore();
      },
      { rootMargin: '0px 0px 100% 0px' },
    );
    observer.observe(node);
    return () => observer.disconnect();
  }, []);
  // A page that did not fill the screen leaves the sentinel in view, where the observer stays quiet: ask again.
  useEffect(() => {
    const node = sentinel.current;
    if (!node || paged.loading || !paged.more || paged.problem) return;
    if (node.getBoundingClientRect().top < window.innerHeight * 2) paged.loadMore();
  }, [paged.loading, paged.items.length]);
  return sentinel;
}
