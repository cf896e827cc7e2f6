// Reads `pinhole agent --config-file FILE` and turns its `up` section into what the daemon joins
// with on start. The auth key lives in its own file, which must not be readable by others (0600).
import { readFile, stat } from 'node:fs/promises';
import { ConfigFileError, parseAgentConfig, type AgentConfig } from '../config/agent-config-file.js';
import { normalizeCoordinatorUrl } from '../control/coordinator-url.js';
import type { JoinOnStart } from '../daemon/run-managed.js';

export type LoadedAgentConfig = Omit<AgentConfig, 'up'> & { join?: JoinOnStart };

export async function loadAgentConfigFile(file: string): Promise<LoadedAgentConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigFileError(`--config-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const { up, ...agent } = parseAgentConfig(file, text);
  if (!up) return agent;
  let coordinatorUrl: string;
  try {
    coordinatorUrl = normalizeCoordinatorUrl(up.coordinator);
  } catch (err) {
    throw new ConfigFileError(`${file}: up.coordinator: ${(err as Error).message}`);
  }
  let authKey: string | undefined;
  if (up.authKeyFile !== undefined) {
    try {
      const st = await stat(up.authKeyFile);
      if ((st.mode & 0o077) !== 0) throw new ConfigFileError(`${file}: up.auth-key-file ${up.authKeyFile} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
      authKey = (await readFile(up.authKeyFile, 'utf8')).trim();
    } catch (err) {
      if (err instanceof ConfigFileError) throw err;
      throw new ConfigFileError(`${file}: up.auth-key-file: cannot read ${up.authKeyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return {
    ...agent,
    join: {
      register: {
        coordinatorUrl, ...(authKey !== undefined ? { authKey } : {}),
        ...(up.coordinatorKey !== undefined ? { coordinatorKey: up.coordinatorKey } : {}),
        ...(up.hostname !== undefined ? { hostname: up.hostname } : {}),
        ...(up.advertiseRoutes !== undefined ? { advertiseRoutes: up.advertiseRoutes } : {}),
        ...(up.advertiseExitNode !== undefined ? { advertiseExitNode: up.advertiseExitNode } : {}),
      },
      client: {
        ...(up.acceptRoutes !== undefined ? { acceptRoutes: up.acceptRoutes } : {}),
        ...(up.exitNode !== undefined ? { exitNode: up.exitNode } : {}),
        ...(up.exitNodeAllowLanAccess !== undefined ? { exitNodeAllowLanAccess: up.exitNodeAllowLanAccess } : {}),
        ...(up.acceptDns !== undefined ? { acceptDns: up.acceptDns } : {}),
      },
    },
  };
}
