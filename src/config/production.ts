export const CURSOR_SECRET_REQUIRED =
  'CURSOR_SECRET must be set: list cursors are signed with it, and without AUTH_JWT_SECRET there is no ' +
  'secret that every API process shares to derive it from (set the same value of 32 bytes or more on each).';
