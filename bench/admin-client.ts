// The benchmarks' way into a Sentinel they started: signed in as the first admin, posting as a client would.

export interface AdminClient {
  /** `http://127.0.0.1:<port>/api/v1`. */
  api: string;
  headers: Record<string, string>;
  /** POSTs `body`; anything but 201 or 202 stops the benchmark, saying what the server answered. */
  post(url: string, body: unknown): Promise<{ id: string }>;
}

export async function adminClient(port: number, password: string): Promise<AdminClient> {
  const api = `http://127.0.0.1:${port}/api/v1`;
  const login = await fetch(`${api}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  });
  if (login.status !== 200) throw new Error(`login answered ${login.status}: ${await login.text()}`);
  const { accessToken } = (await login.json()) as { accessToken: string };
  const headers = { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' };
  return {
    api,
    headers,
    async post(url, body) {
      const res = await fetch(`${api}${url}`, { method: 'POST', headers, body: JSON.stringify(body) });
      if (res.status !== 201 && res.status !== 202) throw new Error(`POST ${url} answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as { id: string };
    },
  };
}
