import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { client, whenUnauthorized, type Problem } from './api';
import { Link, onNavigate } from './components';
import { JobPage } from './job-page';
import { JobsList } from './jobs-list';
import { SignIn } from './sign-in';
import { loadSession, saveSession, type Session } from './session';
import './styles.css';

const JOB_PATH = /^\/ui\/jobs\/([0-9a-fA-F-]{36})\/?$/;

function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => onNavigate(() => setPath(location.pathname)), []);
  return path;
}

function App() {
  const [session, setSession] = useState<Session | undefined>(loadSession);
  const [expired, setExpired] = useState<Problem>();
  const path = usePath();
  const api = useMemo(() => (session ? client(session.token) : undefined), [session]);

  useEffect(() => {
    whenUnauthorized((problem) => {
      saveSession(undefined);
      setSession(undefined);
      setExpired(problem);
    });
  }, []);

  const signOut = () => {
    saveSession(undefined);
    setSession(undefined);
    setExpired(undefined);
  };

  const jobId = JOB_PATH.exec(path)?.[1];
  useEffect(() => {
    document.title = jobId ? `Job ${jobId.slice(0, 8)} · Bulk jobs` : 'Bulk jobs';
  }, [jobId]);

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/ui" class="brand">
          Bulk jobs
        </Link>
        {session ? (
          <div class="who">
            <span data-testid="signed-in-as">
              {session.sub}
              {session.admin ? <span class="admin-mark"> (admin)</span> : null}
            </span>
            <button type="button" class="link" onClick={signOut}>
              Sign out
            </button>
          </div>
        ) : null}
      </header>
      {!session || !api ? (
        <SignIn
          reason={expired}
          onSignedIn={(s) => {
            saveSession(s);
            setExpired(undefined);
            setSession(s);
          }}
        />
      ) : jobId ? (
        <JobPage key={jobId} api={api} session={session} id={jobId} />
      ) : (
        <JobsList api={api} session={session} />
      )}
    </>
  );
}

render(<App />, document.getElementById('app')!);
