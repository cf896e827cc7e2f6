// A pooled PostgreSQL connection while it is checked out. pg's pool listens for 'error' only on
// idle clients; a server that ends a connection in use (a restart, an admin's
// pg_terminate_backend) makes that client emit 'error' too, even with a query in flight that
// fails by itself, and an 'error' nobody listens to ends the process: every coordinator holding a
// connection when PostgreSQL restarted would exit.
import type pg from 'pg';

/**
 * Records the error a checked-out client emits (`error`; release it as broken then). Call done()
 * before release: a broken client keeps a listener that ignores its last words.
 */
export function watchCheckedOut(client: pg.PoolClient): { readonly error: Error | null; done(): void } {
  const state = {
    error: null as Error | null,
    done(): void {
      client.off('error', onError);
      if (state.error !== null) client.on('error', () => undefined);
    },
  };
  const onError = (err: Error): void => { state.error = err; };
  client.on('error', onError);
  return state;
}
