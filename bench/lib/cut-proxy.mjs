/**
 * A TCP proxy on 127.0.0.1 that forwards raw bytes to a server and can cut every connection
 * through it at once, the way a network failure would: the client's side gets a TCP reset, the
 * server's side is closed. It does not parse the traffic. Used by the `resume` scenario, hosted
 * in a worker process of its own so that the forwarding takes no CPU from the clients measured.
 */
import net from 'node:net';
import { nowNs } from './util.mjs';

/**
 * Starts a proxy on a free 127.0.0.1 port forwarding to 127.0.0.1:`targetPort`. Reading follows
 * the writing side's backpressure, so the proxy holds no more than a socket buffer.
 */
export async function startCutProxy(targetPort) {
  const conns = new Set();
  let accepted = 0;
  const server = net.createServer({ noDelay: true }, (client) => {
    accepted++;
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    const conn = { client, upstream };
    conns.add(conn);
    const end = () => {
      conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    for (const [src, dest] of [
      [client, upstream],
      [upstream, client],
    ]) {
      src.on('data', (chunk) => {
        if (!dest.write(chunk)) src.pause();
      });
      dest.on('drain', () => src.resume());
      src.on('error', end);
      src.on('close', end);
    }
    // Nothing is read from the client until the server side is open (the chunks would be lost).
    client.pause();
    upstream.once('connect', () => client.resume());
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    get connections() {
      return conns.size;
    },
    get accepted() {
      return accepted;
    },
    /**
     * Cuts every open connection: resets the client's side and closes the server's. Returns the
     * time of the cut (nowNs(), read just before) and how many connections were cut.
     */
    cutAll() {
      const ns = nowNs();
      const list = [...conns];
      conns.clear();
      for (const { client, upstream } of list) {
        if (typeof client.resetAndDestroy === 'function') client.resetAndDestroy();
        else client.destroy();
        upstream.destroy();
      }
      return { ns, cut: list.length };
    },
    /** Stops listening and closes every connection. */
    async close() {
      for (const { client, upstream } of conns) {
        client.destroy();
        upstream.destroy();
      }
      conns.clear();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
