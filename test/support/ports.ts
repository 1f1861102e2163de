// A TCP port on loopback that nothing listens on: bound to port 0, then closed again. For a child process or a
// server that must be told its port before it starts (another process could take it between, which on a test
// machine does not happen in practice), and for "the server cannot be reached".
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
