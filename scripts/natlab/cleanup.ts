// Teardown on process exit and on SIGINT/SIGTERM/SIGHUP, for labs their owner did not destroy.

/** Something that can tear itself down synchronously (no event loop left at 'exit'). */
export interface SyncDestroyable {
  destroySync(): void;
}

const live = new Set<SyncDestroyable>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let installed = false;

function destroyAll(): void {
  for (const lab of [...live]) {
    live.delete(lab);
    try { lab.destroySync(); } catch { /* keep tearing down the others */ }
  }
}

function onExit(): void {
  destroyAll();
}

function onSignal(sig: NodeJS.Signals): void {
  destroyAll();
  uninstall();
  // Our listener replaced Node's default action; if nobody else handles the signal, die from it.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', onExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** Tears lab down when the process exits or is signalled, unless unregistered first. */
export function registerForCleanup(lab: SyncDestroyable): void {
  live.add(lab);
  install();
}

export function unregisterForCleanup(lab: SyncDestroyable): void {
  live.delete(lab);
  if (live.size === 0) uninstall();
}
