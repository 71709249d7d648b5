import { execFileSync } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * Hosts made of Linux network namespaces on this machine, for specs that cut
 * one off from the network (a partition, not a process that dies). Each host
 * is a namespace with one veth pair: `10.<net>.<n>.2/24` inside, the peer
 * `10.<net>.<n>.1` in the machine's own namespace, and a default route to
 * it. The machine's namespace answers on the first host's peer address
 * (HostNet.hub), where the spec puts what the hosts reach: a forwarder to
 * PostgreSQL (which listens on loopback only), a downstream. Nothing leaves
 * the machine: the addresses are private and nothing is routed on.
 *
 * Needs root and iproute2's `ip`; namespaces and links are named after the
 * test process (`bj<pid>…`), and those of a run whose process is gone are
 * removed first.
 */
export interface Host {
  name: string;
  /** The host's address inside its namespace. */
  address: string;
  /** The machine's end of the link, the one cut() takes down. */
  link: string;
  /** argv prefix that runs a command on this host. */
  exec: string[];
}

export interface HostNet {
  hosts: Host[];
  /** The machine's address the hosts reach it on. */
  hub: string;
  cut(host: Host): void;
  restore(host: Host): void;
  destroy(): void;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Whether this machine can build such hosts: root, and `ip` with namespaces. */
export function netnsProblem(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (ip netns)';
  try {
    ip('netns', 'list');
  } catch (err) {
    return `needs iproute2's ip with network namespaces: ${(err as Error).message}`;
  }
  return null;
}

/** Removes the namespaces (and so their links) of earlier runs whose process is gone. */
function removeLeftovers(): void {
  for (const line of ip('netns', 'list').split('\n')) {
    const m = /^bj(\d+)h\d+\b/.exec(line.trim());
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive || pid === process.pid) {
      const name = line.trim().split(/\s+/)[0];
      try {
        ip('netns', 'delete', name);
      } catch {
        // gone meanwhile
      }
    }
  }
}

export function createHosts(count: number): HostNet {
  removeLeftovers();
  // One /16 per test process (100-199), so that runs side by side do not share addresses.
  const net = 100 + (process.pid % 100);
  const hosts: Host[] = [];
  const made: string[] = [];
  const destroy = () => {
    for (const ns of made.reverse()) {
      try {
        ip('netns', 'delete', ns);
      } catch {
        // already gone
      }
    }
    made.length = 0;
  };
  try {
    for (let n = 1; n <= count; n++) {
      const name = `bj${process.pid}h${n}`;
      const link = `${name}x`;
      const inner = `${name}i`;
      ip('netns', 'add', name);
      made.push(name);
      ip('link', 'add', link, 'type', 'veth', 'peer', 'name', inner);
      ip('link', 'set', inner, 'netns', name);
      ip('addr', 'add', `10.${net}.${n}.1/24`, 'dev', link);
      ip('link', 'set', link, 'up');
      const exec = ['ip', 'netns', 'exec', name];
      ip('netns', 'exec', name, 'ip', 'addr', 'add', `10.${net}.${n}.2/24`, 'dev', inner);
      ip('netns', 'exec', name, 'ip', 'link', 'set', inner, 'up');
      ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
      ip('netns', 'exec', name, 'ip', 'route', 'add', 'default', 'via', `10.${net}.${n}.1`);
      hosts.push({ name, address: `10.${net}.${n}.2`, link, exec });
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    hosts,
    hub: `10.${net}.1.1`,
    cut: (host) => void ip('link', 'set', host.link, 'down'),
    restore: (host) => void ip('link', 'set', host.link, 'up'),
    destroy,
  };
}

/** A TCP forwarder: listens on `host`:any port and pipes each connection to `to`. */
export async function forward(
  host: string,
  to: { host: string; port: number },
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = connect(to.port, to.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
