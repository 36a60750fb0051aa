/**
 * Real networks for the WebRTC tests: a network namespace joined to this one by a veth pair
 * (iproute2), with random packet loss or blocked UDP injected by nftables (the kernel here has no
 * netem). Everything made here is removed again by `cleanup()`, also when a test fails.
 */
import { spawnSync } from 'node:child_process';

function run(cmd: string, args: string[], input?: string): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function must(cmd: string, args: string[], input?: string): void {
  const r = run(cmd, args, input);
  if (!r.ok) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.out.trim()}`);
}

/** Why namespaces cannot be used here, or undefined if they can (probed once: make one, remove it). */
export function netnsUnavailable(): string | undefined {
  const name = `bcprobe${process.pid}`;
  const add = run('ip', ['netns', 'add', name]);
  if (!add.ok) return `network namespaces are unavailable (ip netns add: ${add.out.trim() || 'failed'}; the test needs root and iproute2)`;
  run('ip', ['netns', 'del', name]);
  const nft = run('nft', ['--version']);
  if (!nft.ok) return `nftables is unavailable (${nft.out.trim() || 'nft not found'}; Debian package nftables)`;
  return undefined;
}

/** Why nftables cannot filter here, or undefined if it can (probed once: make a table, remove it). */
export function nftUnavailable(): string | undefined {
  const table = `bcprobe${process.pid}`;
  const r = run('nft', ['-f', '-'], `table inet ${table} { }\n`);
  if (!r.ok) return `nftables cannot filter here (${r.out.trim() || 'nft failed'}; the test needs root and the nftables package)`;
  run('nft', ['delete', 'table', 'inet', table]);
  return undefined;
}

/** A namespace with one veth link to this one. */
export interface Netns {
  /** The namespace's name (for `ip netns exec`). */
  name: string;
  /** Address of this side of the link (where a server here is reached from the namespace). */
  hostAddress: string;
  /** Address of the namespace's side. */
  nsAddress: string;
  /** Drops this percentage (0–100) of UDP and TCP packets on the link, in each direction. */
  setLoss(percent: number): void;
  /** Command prefix that runs a program inside the namespace. */
  exec(cmd: string, args: string[]): [string, string[]];
  /** Removes the namespace, its link and its rules. */
  cleanup(): void;
}

let made = 0;

/** Makes a namespace linked to this one on 10.<n>.<m>.0/30; `cleanup()` it in a finally/afterAll. */
export function createNetns(tag: string): Netns {
  const id = `${tag}${process.pid % 100_000}${made++}`.slice(0, 11);
  const name = `bc${id}`;
  const host = `bh${id}`;
  const peer = `bn${id}`;
  const n = (process.pid + made) % 250;
  const hostAddress = `10.213.${n}.1`;
  const nsAddress = `10.213.${n}.2`;
  /** The table of this side's input filter (packets from the namespace). */
  const hostTable = `bcloss${id}`;
  const cleanup = () => {
    run('ip', ['netns', 'del', name]); // takes the veth pair and the namespace's nftables with it
    run('ip', ['link', 'del', host]);
    run('nft', ['delete', 'table', 'inet', hostTable]);
  };
  try {
    must('ip', ['netns', 'add', name]);
    must('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
    must('ip', ['link', 'set', peer, 'netns', name]);
    must('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', host]);
    must('ip', ['link', 'set', host, 'up']);
    must('ip', ['netns', 'exec', name, 'ip', 'addr', 'add', `${nsAddress}/30`, 'dev', peer]);
    must('ip', ['netns', 'exec', name, 'ip', 'link', 'set', peer, 'up']);
    must('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  } catch (error) {
    cleanup();
    throw error;
  }
  return {
    name,
    hostAddress,
    nsAddress,
    setLoss(percent) {
      // Packets are dropped where they arrive (input hooks), as a lossy link would: a packet
      // dropped in an output hook is reported to the sending socket (EPERM), and a sender told
      // so sends it again at once, which is no loss at all.
      run('ip', ['netns', 'exec', name, 'nft', 'delete', 'table', 'inet', 'bcloss']);
      run('nft', ['delete', 'table', 'inet', hostTable]);
      if (percent <= 0) return;
      const drop = (iif: string) => `${iif}meta l4proto udp numgen random mod 100 < ${percent} drop\n    ${iif}meta l4proto tcp numgen random mod 100 < ${percent} drop`;
      must('ip', ['netns', 'exec', name, 'nft', '-f', '-'], `table inet bcloss {\n  chain in {\n    type filter hook input priority 0; policy accept;\n    ${drop('')}\n  }\n}\n`);
      must('nft', ['-f', '-'], `table inet ${hostTable} {\n  chain in {\n    type filter hook input priority 0; policy accept;\n    ${drop(`iifname "${host}" `)}\n  }\n}\n`);
    },
    exec: (cmd, args) => ['ip', ['netns', 'exec', name, cmd, ...args]],
    cleanup,
  };
}

/**
 * Drops UDP to ports `min`–`max` on this host (a firewall that lets no WebRTC through); returns the
 * function that removes the rule again.
 */
export function blockUdpPorts(min: number, max: number): () => void {
  const table = `bcblock${process.pid}`;
  must('nft', ['-f', '-'], `table inet ${table} {\n  chain in {\n    type filter hook input priority 0; policy accept;\n    udp dport ${min}-${max} drop\n  }\n}\n`);
  return () => void run('nft', ['delete', 'table', 'inet', table]);
}
