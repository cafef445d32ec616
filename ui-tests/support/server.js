// Starts the real `local-mcp serve` binary on a loopback port with a fresh
// database, and stops it again.
//
// The binary is target/debug/local-mcp (build it with `cargo build -p local-mcp`),
// or $LOCAL_MCP_BIN. The environment is built from scratch (only PATH and HOME are
// passed through) so that a LOG_LEVEL or API_TOKEN of the caller's shell cannot
// change what is tested; in particular LOG_LEVEL stays unset, because the
// "local-mcp listening on http://ADDR" line is logged at info level.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');

/** The binary under test. */
export function binaryPath() {
  const bin = process.env.LOCAL_MCP_BIN || join(repoRoot, 'target', 'debug', 'local-mcp');
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run \`cargo build -p local-mcp\` first (or set LOCAL_MCP_BIN)`);
  }
  return bin;
}

/** A fresh temporary directory for a database; removed by `removeDir`. */
export async function freshDir() {
  return mkdtemp(join(tmpdir(), 'local-mcp-ui-'));
}

export async function removeDir(dir) {
  await rm(dir, { recursive: true, force: true });
}

const MARK = 'local-mcp listening on http://';

/**
 * Starts `local-mcp serve`.
 *
 * options.dbPath: the SQLite file (default: a new one in a fresh temp dir, removed
 *   when the server is stopped); options.port: 0 (default) picks a free port;
 *   options.env: extra environment variables (API_TOKEN, DEFAULT_WAIT_SECONDS...).
 *
 * Resolves to { url, port, dbPath, log(), stop() } once the server logged its
 * listening line; rejects with the log if it exits or does not listen in 20 s.
 */
export async function startServer(options = {}) {
  const ownDir = options.dbPath ? null : await freshDir();
  const dbPath = options.dbPath ?? join(ownDir, 'local_mcp.sqlite3');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? tmpdir(),
    HTTP_PORT: String(options.port ?? 0),
    DB_PATH: dbPath,
    AUDIT_LOG: 'off',
    ...options.env,
  };
  const child = spawn(binaryPath(), ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = [];
  let exited = null;
  const exit = new Promise((resolveExit) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolveExit(exited);
    });
  });

  const addr = await new Promise((resolveAddr, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`local-mcp serve did not start listening in 20 s:\n${lines.join('\n')}`));
    }, 20_000);
    const rl = createInterface({ input: child.stderr });
    rl.on('line', (line) => {
      lines.push(line);
      const at = line.indexOf(MARK);
      if (at >= 0) {
        const found = line.slice(at + MARK.length).match(/^[^\s]+/);
        if (found) {
          clearTimeout(timer);
          resolveAddr(found[0]);
        }
      }
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    exit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`local-mcp serve exited (${code ?? signal}) before listening:\n${lines.join('\n')}`));
    });
  });

  const port = Number(addr.split(':').pop());
  let stopped = false;
  return {
    url: `http://${addr}`,
    port,
    dbPath,
    pid: child.pid,
    log: () => lines.join('\n'),
    get exited() {
      return exited;
    },
    /** SIGTERM, then waits for the exit (SIGKILL after 5 s); removes its own temp dir. */
    async stop() {
      if (stopped) return exit;
      stopped = true;
      if (exited === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exit;
        clearTimeout(timer);
      }
      if (ownDir) await removeDir(ownDir);
      return exited;
    },
  };
}
