import { useState } from 'preact/hooks';
import { asProblem, client, devToken, type Problem } from './api';
import { ProblemBox } from './components';
import { devTokensOffered, sessionOf, type Session } from './session';

/**
 * Sign-in: paste a bearer token (checked with one read before it is kept),
 * or, in development, get one for a name from the server.
 */
export function SignIn({ onSignedIn, reason }: { onSignedIn: (s: Session) => void; reason?: Problem }) {
  const [token, setToken] = useState('');
  const [name, setName] = useState('');
  const [admin, setAdmin] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>(reason);
  const [busy, setBusy] = useState(false);

  const tryToken = async (raw: string) => {
    const session = sessionOf(raw);
    if (!session) {
      setProblem({
        type: 'about:blank',
        title: 'Not a token',
        status: 0,
        detail: 'A JWT has three parts separated by dots.',
      });
      return;
    }
    setBusy(true);
    setProblem(undefined);
    try {
      await client(session.token).counts();
      onSignedIn(session);
    } catch (err) {
      setProblem(asProblem(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="page sign-in">
      <h1>Sign in</h1>
      {problem ? <ProblemBox problem={problem} /> : null}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void tryToken(token);
        }}
      >
        <label for="token">Bearer token</label>
        <textarea
          id="token"
          rows={4}
          spellcheck={false}
          autocomplete="off"
          value={token}
          onInput={(e) => setToken((e.target as HTMLTextAreaElement).value)}
        />
        <p class="hint">
          Kept in this tab only (sessionStorage). <code>npm run token -- --sub alice</code> prints one.
        </p>
        <button type="submit" disabled={busy || token.trim() === ''}>
          Sign in
        </button>
      </form>
      {devTokensOffered() ? (
        <form
          class="dev-token"
          onSubmit={(e) => {
            e.preventDefault();
            setBusy(true);
            setProblem(undefined);
            devToken(name.trim(), admin)
              .then((t) => tryToken(t.access_token))
              .catch((err: unknown) => setProblem(asProblem(err)))
              .finally(() => setBusy(false));
          }}
        >
          <h2>Development</h2>
          <p class="hint">
            This server signs with a secret it generated, so it can give you a token for any name.
          </p>
          <label for="dev-name">Name</label>
          <input
            id="dev-name"
            value={name}
            autocomplete="off"
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
          <label class="check">
            <input
              type="checkbox"
              checked={admin}
              onChange={(e) => setAdmin((e.target as HTMLInputElement).checked)}
            />{' '}
            admin
          </label>
          <button type="submit" disabled={busy || name.trim() === ''}>
            Get a development token
          </button>
        </form>
      ) : null}
    </main>
  );
}
