// The command API through the real server against the real store: every command family, auth, idempotency,
// and each kind of refusal.
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { SignJWT, UnsecuredJWT } from 'jose';
import { backends, JWT_SECRET, type TestApi } from '../support/sentinel-api.js';

const cluster = {
  name: 'gpu-east',
  apiServer: 'https://10.0.0.1:6443',
  credentials: { source: 'kubeconfig-base64', data: Buffer.from('apiVersion: v1\nkind: Config\n').toString('base64') },
  region: 'us-east-1',
  gpuSkus: ['nvidia-a100-80gb'],
};
const workload = {
  name: 'llama-serve',
  namespace: 'ml',
  type: 'inference',
  image: 'registry.local/llama:1.0',
  resources: { cpu: '4', memory: '16Gi', gpu: { count: 1, sku: 'nvidia-a100-80gb' } },
  labels: { team: 'ml' },
  slo: { latencyP99Ms: 250, successRate: 0.999 },
};

for (const backend of backends) {
  describe(`command API on ${backend.name}`, function () {
    this.timeout(60_000);
    let api: TestApi;

    before(async function () {
      if (backend.skipReason) this.skip();
      api = await backend.start();
    });
    after(async () => api?.stop());

    const created = async (path: string, body: unknown) => {
      const reply = await api.request<{ id: string }>('post', path, { as: 'admin', body });
      expect(reply.status, JSON.stringify(reply.body)).to.be.oneOf([201, 202]);
      return reply.body.id;
    };
    let workloads = 0;
    /** A workload of a name of its own: a namespace holds one workload of a name. */
    const uniqueWorkload = () => ({ ...workload, name: `${workload.name}-${(workloads += 1)}` });
    const fleet = async () => {
      const clusterId = await created('/clusters', cluster);
      const workloadId = await created('/workloads', uniqueWorkload());
      const deploymentId = await created('/deployments', { workloadId, clusterId, replicas: 2 });
      return { clusterId, workloadId, deploymentId };
    };

    describe('auth', () => {
      it('logs in, tells who the token belongs to, and refreshes once', async () => {
        const login = await api.request<{ accessToken: string; refreshToken: string; expiresIn: number }>('post', '/auth/login', {
          as: 'anonymous',
          body: { username: 'operator', password: 'operator-password-for-tests' },
        });
        expect(login.status).to.equal(200);
        expect(login.body.expiresIn).to.equal(900);
        const me = await api.request('get', '/auth/me', { headers: { authorization: `Bearer ${login.body.accessToken}` } });
        expect(me.body).to.include({ kind: 'user', name: 'operator', role: 'operator' });

        const refreshed = await api.request<{ accessToken: string }>('post', '/auth/refresh', {
          as: 'anonymous',
          body: { refreshToken: login.body.refreshToken },
        });
        expect(refreshed.status).to.equal(200);
        const again = await api.request('post', '/auth/refresh', { as: 'anonymous', body: { refreshToken: login.body.refreshToken } });
        expect(again.status).to.equal(401);
        // A refresh token is not an access token.
        const misuse = await api.request('get', '/auth/me', { headers: { authorization: `Bearer ${login.body.refreshToken}` } });
        expect(misuse.status).to.equal(401);
      });

      it('answers 401 alike for a wrong password and an unknown user', async () => {
        for (const body of [
          { username: 'operator', password: 'not-the-password' },
          { username: 'nobody', password: 'not-the-password' },
        ]) {
          const reply = await api.request('post', '/auth/login', { as: 'anonymous', body });
          expect(reply.status).to.equal(401);
          expect(reply.headers.get('content-type')).to.match(/application\/problem\+json/);
          expect(reply.body['detail']).to.equal('wrong username or password, or the user is disabled');
        }
      });

      it('refuses alg none, a foreign signature, an expired token, and a malformed header', async () => {
        const sub = api.principalIds.admin;
        const unsigned = new UnsecuredJWT({ typ: 'access' }).setSubject(sub).setJti(randomUUID()).setIssuer('sentinel').setAudience('sentinel-api').setExpirationTime('5m').encode();
        const foreign = await new SignJWT({ typ: 'access' })
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject(sub)
          .setJti(randomUUID())
          .setIssuer('sentinel')
          .setAudience('sentinel-api')
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode('another-secret-that-is-long-enough-to-sign'));
        const expired = await new SignJWT({ typ: 'access' })
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject(sub)
          .setJti(randomUUID())
          .setIssuer('sentinel')
          .setAudience('sentinel-api')
          .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
          .sign(new TextEncoder().encode(JWT_SECRET));
        for (const authorization of [`Bearer ${unsigned}`, `Bearer ${foreign}`, `Bearer ${expired}`, `Basic abc`, 'Bearer']) {
          const reply = await api.request('post', '/clusters', { as: 'anonymous', headers: { authorization }, body: cluster });
          expect(reply.status, authorization.slice(0, 30)).to.equal(401);
          expect(reply.headers.get('www-authenticate') ?? '').to.match(/^Bearer/);
        }
        const expiredReply = await api.request('get', '/auth/me', { as: 'anonymous', headers: { authorization: `Bearer ${expired}` } });
        expect(expiredReply.body['detail']).to.equal('the token has expired');
      });

      it('stops honouring a disabled user and a revoked service account at once', async () => {
        const user = await api.request<{ id: string }>('post', '/users', {
          body: { username: 'temp', password: 'temp-password-123', role: 'operator' },
        });
        const login = await api.request<{ accessToken: string; refreshToken: string }>('post', '/auth/login', {
          as: 'anonymous',
          body: { username: 'temp', password: 'temp-password-123' },
        });
        const bearer = { authorization: `Bearer ${login.body.accessToken}` };
        expect((await api.request('get', '/auth/me', { headers: bearer })).status).to.equal(200);
        expect((await api.request('patch', `/users/${user.body.id}`, { body: { disabled: true } })).status).to.equal(202);
        expect((await api.request('get', '/auth/me', { headers: bearer })).status).to.equal(401);
        expect((await api.request('post', '/auth/refresh', { as: 'anonymous', body: { refreshToken: login.body.refreshToken } })).status).to.equal(401);

        const account = await api.request<{ id: string; token: string }>('post', '/service-accounts', { body: { name: 'agent-1' } });
        const saBearer = { authorization: `Bearer ${account.body.token}` };
        expect((await api.request('get', '/auth/me', { headers: saBearer })).body).to.include({ role: 'system', kind: 'service' });
        expect((await api.request('delete', `/service-accounts/${account.body.id}`)).status).to.equal(202);
        expect((await api.request('get', '/auth/me', { headers: saBearer })).status).to.equal(401);
        const events = await api.stream(`serviceaccount-${account.body.id}`);
        expect(events.map((e) => e.type)).to.deep.equal(['ServiceAccountCreated', 'ServiceAccountRevoked']);
      });

      it('changes a role with immediate effect and records it without secrets', async () => {
        const user = await api.request<{ id: string }>('post', '/users', {
          body: { username: 'promoted', password: 'promoted-password', role: 'viewer' },
        });
        const login = await api.request<{ accessToken: string }>('post', '/auth/login', {
          as: 'anonymous',
          body: { username: 'promoted', password: 'promoted-password' },
        });
        const bearer = { authorization: `Bearer ${login.body.accessToken}` };
        expect((await api.request('post', '/workloads', { headers: bearer, body: workload })).status).to.equal(403);
        await api.request('patch', `/users/${user.body.id}`, { body: { role: 'operator' } });
        expect((await api.request('post', '/workloads', { headers: bearer, body: workload })).status).to.equal(201);
        // A new password, unlike a new role, ends the tokens issued before it.
        await api.request('patch', `/users/${user.body.id}`, { body: { password: 'a-new-password-1' } });
        expect((await api.request('post', '/workloads', { headers: bearer, body: workload })).status).to.equal(401);
        const events = await api.stream(`user-${user.body.id}`);
        expect(events.map((e) => e.data)).to.deep.equal([
          { userId: user.body.id, username: 'promoted', role: 'viewer' },
          { userId: user.body.id, role: 'operator' },
          { userId: user.body.id, passwordChanged: true },
        ]);
        expect(JSON.stringify(events)).not.to.include('password-');
      });

      it('refuses a taken username with 409 naming the field', async () => {
        const reply = await api.request('post', '/users', { body: { username: 'operator', password: 'whatever-password', role: 'viewer' } });
        expect(reply.status).to.equal(409);
        expect(reply.body['errors']).to.deep.equal([{ path: 'username', message: 'username "operator" is already taken' }]);
      });
    });

    describe('clusters', () => {
      it('registers a cluster with the event metadata of the request, keeping the kubeconfig out of the log', async () => {
        const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
        const reply = await api.request<{ id: string; revision: number; position: string }>('post', '/clusters', {
          body: cluster,
          headers: { 'x-correlation-id': 'change-4711', traceparent },
        });
        expect(reply.status).to.equal(201);
        expect(reply.headers.get('location')).to.equal(`/api/v1/clusters/${reply.body.id}`);
        expect(reply.body.revision).to.equal(0);
        expect(reply.body.position).to.be.a('string');

        const [event] = await api.stream(`cluster-${reply.body.id}`);
        expect(event!.type).to.equal('ClusterRegistered');
        expect(event!.position).to.equal(reply.body.position);
        expect(event!.metadata).to.deep.include({
          correlationId: 'change-4711',
          causationId: reply.headers.get('x-request-id'),
          actor: { id: api.principalIds.admin, kind: 'user' },
          traceparent,
          source: 'api',
        });
        const credentials = (event!.data['spec'] as { credentials: Record<string, string> }).credentials;
        expect(credentials['source']).to.equal('kubeconfig-base64');
        expect(credentials['secretRef']).to.match(/^sha256:[0-9a-f]{64}$/);
        expect(JSON.stringify(event)).not.to.include(cluster.credentials.data);
      });

      it('updates, cordons, uncordons and deregisters; then refuses changes with 422', async () => {
        const id = await created('/clusters', cluster);
        expect((await api.request('patch', `/clusters/${id}`, { body: { region: 'us-west-2' } })).body).to.include({ revision: 1 });
        expect((await api.request('post', `/clusters/${id}/cordon`, { body: { reason: 'maintenance' } })).body).to.include({ revision: 2 });
        // Cordoning again asks for what is already so: nothing is appended.
        expect((await api.request('post', `/clusters/${id}/cordon`)).body).to.include({ revision: 2 });
        expect((await api.request('post', `/clusters/${id}/uncordon`)).body).to.include({ revision: 3 });
        expect((await api.request('delete', `/clusters/${id}`)).body).to.include({ revision: 4 });
        const refused = await api.request('patch', `/clusters/${id}`, { body: { region: 'eu' } });
        expect(refused.status).to.equal(422);
        expect(refused.body['type']).to.equal('urn:sentinel:problem:invalid-transition');
        expect((await api.stream(`cluster-${id}`)).map((e) => e.type)).to.deep.equal([
          'ClusterRegistered',
          'ClusterUpdated',
          'ClusterCordoned',
          'ClusterUncordoned',
          'ClusterDeregistered',
        ]);
      });
    });

    describe('workloads and deployments', () => {
      it('walks a deployment through scale, update, restart, pause, resume, rollback and delete', async () => {
        const { workloadId, deploymentId } = await fleet();
        const post = (path: string, body?: unknown) => api.request('post', `/deployments/${deploymentId}${path}`, { body });

        expect((await post('/scale', { replicas: 4 })).status).to.equal(202);
        expect((await api.request('patch', `/workloads/${workloadId}`, { body: { image: 'registry.local/llama:1.1' } })).status).to.equal(202);
        // Create, scale and update each append the policy decision and the change: revisions 0–5.
        expect((await api.request('patch', `/deployments/${deploymentId}`)).body).to.include({ revision: 5 });
        expect((await post('/restart', { reason: 'pick up new config' })).status).to.equal(202);
        expect((await post('/pause')).status).to.equal(202);
        expect((await post('/resume')).status).to.equal(202);

        // Nothing has become available yet, so there is no revision to roll back to by default.
        const noTarget = await post('/rollback');
        expect(noTarget.status).to.equal(422);
        expect(noTarget.body['errors']).to.have.length.greaterThan(0);
        expect((await post('/rollback', { toRevision: 1 })).status).to.equal(202);

        expect((await api.request('delete', `/deployments/${deploymentId}`, { body: { reason: 'done' } })).status).to.equal(202);
        const afterDelete = await post('/scale', { replicas: 1 });
        expect(afterDelete.status).to.equal(422);

        const events = await api.stream(`deployment-${deploymentId}`);
        // Every change that moves the fleet carries its policy decision in the same append, the resume (which rolls
        // out what waited) included; a pause does not.
        expect(events.map((e) => e.type)).to.deep.equal([
          'PolicyEvaluated',
          'DeploymentCreated',
          'PolicyEvaluated',
          'DeploymentScaled',
          'PolicyEvaluated',
          'DeploymentUpdated',
          'PolicyEvaluated',
          'DeploymentRestartRequested',
          'DeploymentPaused',
          'PolicyEvaluated',
          'DeploymentResumed',
          'PolicyEvaluated',
          'DeploymentRollbackRequested',
          'PolicyEvaluated',
          'DeploymentDeleted',
        ]);
        const changes = events.filter((e) => e.type !== 'PolicyEvaluated');
        expect(changes[2]!.data).to.deep.include({ revision: 2, workloadRevision: 2 });
        expect(changes[6]!.data).to.deep.include({ toRevision: 1, workloadRevision: 1 });
        for (const [index, event] of events.entries()) {
          if (event.type !== 'PolicyEvaluated') continue;
          expect(event.data).to.deep.include({ verdict: 'allow', policySet: { stream: 'policyset-global', revision: -1 } });
          expect(events[index + 1]!.metadata.causationId).to.equal(event.metadata.causationId);
        }
      });

      it('refuses a placement on a cordoned cluster or one without the GPU SKU, naming the field', async () => {
        const { clusterId, workloadId } = await fleet();
        const cpuOnly = await created('/clusters', { ...cluster, name: 'cpu-only', gpuSkus: [] });
        const before = await api.head();
        const noSku = await api.request('post', '/deployments', { body: { workloadId, clusterId: cpuOnly, replicas: 1 } });
        expect(noSku.status).to.equal(422);
        expect(noSku.body['errors']).to.satisfy((errors: { path: string; message: string }[]) =>
          errors.some((e) => e.path === 'clusterId' && e.message.includes('nvidia-a100-80gb')),
        );

        await api.request('post', `/clusters/${clusterId}/cordon`);
        const cordoned = await api.request('post', '/deployments', { body: { workloadId, clusterId, replicas: 1 } });
        expect(cordoned.status).to.equal(422);
        expect((cordoned.body['errors'] as { path: string }[]).map((e) => e.path)).to.deep.equal(['clusterId']);

        const unknown = await api.request('post', '/deployments', { body: { workloadId: randomUUID(), clusterId, replicas: 1 } });
        expect((unknown.body['errors'] as { path: string }[]).map((e) => e.path)).to.include('workloadId');
        // The cordon is the only thing appended.
        const appended = await api.eventsSince(before);
        expect(appended.map((e) => e.type)).to.deep.equal(['ClusterCordoned']);
      });

      it('refuses a second workload of a name in a namespace with 409 naming the first, until the first is retired', async () => {
        const body = uniqueWorkload();
        const first = await created('/workloads', body);
        const before = await api.head();
        const again = await api.request<{ type: string; detail: string; errors: { path: string }[] }>('post', '/workloads', { body });
        expect(again.status, JSON.stringify(again.body)).to.equal(409);
        expect(again.body.type).to.equal('urn:sentinel:problem:name-taken');
        expect(again.body.detail).to.equal(`workload ${body.name} in namespace ml already exists as ${first}`);
        expect(again.body.errors.map((e) => e.path)).to.deep.equal(['name']);
        expect(await api.head(), 'a refused registration appends nothing').to.equal(before);
        // Another namespace is another object.
        await created('/workloads', { ...body, namespace: 'ml-staging' });

        expect((await api.request('delete', `/workloads/${first}`, { body: { reason: 'replaced' } })).status).to.equal(202);
        const replacement = await created('/workloads', body);
        const claim = (await api.stream(`claim-workload:ml/${body.name}`)).map((event) => event.data);
        expect(claim.at(-1)).to.deep.include({ ownerId: replacement, previousOwnerId: first });
      });

      it('refuses a second deployment of a workload on a cluster with 409 naming the first, until the first is deleted', async () => {
        const { clusterId, workloadId, deploymentId } = await fleet();
        const before = await api.head();
        const again = await api.request<{ detail: string; errors: { path: string }[] }>('post', '/deployments', { body: { workloadId, clusterId, replicas: 1 } });
        expect(again.status, JSON.stringify(again.body)).to.equal(409);
        expect(again.body.detail).to.equal(`a deployment of workload ${workloadId} on cluster ${clusterId} already exists as ${deploymentId}`);
        expect(again.body.errors.map((e) => e.path)).to.deep.equal(['workloadId']);
        expect(await api.head(), 'a refused placement appends nothing').to.equal(before);

        expect((await api.request('delete', `/deployments/${deploymentId}`, { body: { reason: 'moving' } })).status).to.equal(202);
        await created('/deployments', { workloadId, clusterId, replicas: 1 });
      });

      it('answers 404 for an id that names nothing', async () => {
        for (const id of [randomUUID(), 'not-a-uuid']) {
          const reply = await api.request('post', `/deployments/${id}/scale`, { body: { replicas: 1 } });
          expect(reply.status).to.equal(404);
          expect(reply.body['detail']).to.equal(`deployment ${id} does not exist`);
        }
      });
    });

    describe('action plans', () => {
      it('takes a plan from an operator and from InfraMind, and lets only InfraMind speak for InfraMind', async () => {
        const { deploymentId } = await fleet();
        const plan = { reason: 'traffic forecast', actions: [{ kind: 'scale', deploymentId, replicas: 6 }], ttlSeconds: 600 };
        const mine = await api.request<{ id: string }>('post', '/action-plans', { as: 'operator', body: plan });
        expect(mine.status).to.equal(202);
        expect(mine.headers.get('location')).to.equal(`/api/v1/action-plans/${mine.body.id}`);

        const pretending = await api.request('post', '/action-plans', { as: 'operator', body: { ...plan, source: 'inframind' } });
        expect(pretending.status).to.equal(422);
        expect(pretending.body['errors']).to.deep.equal([{ path: 'source', message: 'users submit with source "user"' }]);

        const inframind = await api.request<{ id: string }>('post', '/action-plans', { as: 'system', body: { ...plan, source: 'inframind' } });
        expect(inframind.status).to.equal(202);
        const [submitted] = await api.stream(`plan-${inframind.body.id}`);
        expect(submitted!.data).to.deep.include({ source: 'inframind', actor: { id: api.principalIds.system, kind: 'service' } });
        const ttl = Date.parse(submitted!.data['expiresAt'] as string) - Date.parse(submitted!.data['submittedAt'] as string);
        expect(ttl).to.equal(600_000);

        expect((await api.request('post', `/action-plans/${mine.body.id}/cancel`, { body: { reason: 'not needed' } })).status).to.equal(202);
        expect((await api.request('post', `/action-plans/${mine.body.id}/cancel`)).status).to.equal(422);
      });
    });

    describe('idempotency keys', () => {
      it('answers a retry with the first response and appends nothing', async () => {
        const body = uniqueWorkload();
        const key = randomUUID();
        const first = await api.request<{ id: string }>('post', '/workloads', { body, headers: { 'idempotency-key': key } });
        const head = await api.head();
        const second = await api.request<{ id: string }>('post', '/workloads', { body, headers: { 'idempotency-key': key } });
        expect(second.status).to.equal(first.status);
        expect(second.body).to.deep.equal(first.body);
        expect(second.headers.get('idempotent-replayed')).to.equal('true');
        expect(await api.head()).to.equal(head);
      });

      it('answers 422 when the key comes back with a different body, and keeps keys apart per principal', async () => {
        const body = uniqueWorkload();
        const key = randomUUID();
        await api.request('post', '/workloads', { body, headers: { 'idempotency-key': key } });
        const reused = await api.request('post', '/workloads', { body: { ...body, name: `${body.name}-other` }, headers: { 'idempotency-key': key } });
        expect(reused.status).to.equal(422);
        expect(reused.body['type']).to.equal('urn:sentinel:problem:idempotency-key-reused');
        const otherCaller = await api.request('post', '/workloads', { as: 'operator', body: { ...body, namespace: 'ml-operator' }, headers: { 'idempotency-key': key } });
        expect(otherCaller.status).to.equal(201);
        expect(otherCaller.headers.get('idempotent-replayed')).to.equal(null);
      });

      it('replays a refusal too, so a retry cannot turn a 422 into a 202 behind the caller’s back', async () => {
        const { deploymentId } = await fleet();
        const key = randomUUID();
        const refused = await api.request('post', `/deployments/${deploymentId}/rollback`, { headers: { 'idempotency-key': key } });
        expect(refused.status).to.equal(422);
        const replay = await api.request('post', `/deployments/${deploymentId}/rollback`, { headers: { 'idempotency-key': key } });
        expect(replay.status).to.equal(422);
        expect(replay.headers.get('idempotent-replayed')).to.equal('true');
      });

      it('runs concurrent requests with one key once', async () => {
        const body = uniqueWorkload();
        const key = randomUUID();
        const replies = await Promise.all(
          Array.from({ length: 8 }, () => api.request<{ id: string }>('post', '/workloads', { body, headers: { 'idempotency-key': key } })),
        );
        const ok = replies.filter((r) => r.status === 201);
        expect(ok.length).to.be.greaterThan(0);
        expect(new Set(ok.map((r) => r.body.id)).size).to.equal(1);
        for (const reply of replies.filter((r) => r.status !== 201)) {
          expect(reply.status).to.equal(409);
          expect(reply.headers.get('retry-after')).to.match(/^\d+$/);
        }
        expect(await api.stream(`workload-${ok[0]!.body.id}`)).to.have.length(1);
      });

      it('refuses a malformed key', async () => {
        const reply = await api.request('post', '/workloads', { body: workload, headers: { 'idempotency-key': 'x'.repeat(300) } });
        expect(reply.status).to.equal(400);
      });
    });

    describe('concurrent writers on one stream', () => {
      it('retries conflicts and never loses or invents a change', async () => {
        const { deploymentId } = await fleet();
        const replies = await Promise.all(
          Array.from({ length: 12 }, (_, i) => api.request('post', `/deployments/${deploymentId}/scale`, { body: { replicas: i + 10 } })),
        );
        const accepted = replies.filter((r) => r.status === 202);
        for (const reply of replies.filter((r) => r.status !== 202)) {
          expect(reply.status).to.equal(409);
          expect(reply.body['currentRevision']).to.be.a('number');
        }
        const scaled = (await api.stream(`deployment-${deploymentId}`)).filter((e) => e.type === 'DeploymentScaled');
        expect(scaled).to.have.length(accepted.length);
        expect(new Set(accepted.map((r) => r.body['revision'])).size).to.equal(accepted.length);
      });
    });

    describe('malformed requests', () => {
      it('names every bad field with its path and appends nothing', async () => {
        const head = await api.head();
        const reply = await api.request('post', '/workloads', {
          body: { ...workload, type: 'serving', resources: { cpu: 'lots', memory: '1Gi', gpu: { count: 0, sku: 'x' } }, colour: 'blue' },
        });
        expect(reply.status).to.equal(400);
        const paths = (reply.body['errors'] as { path: string }[]).map((e) => e.path);
        expect(paths).to.include.members(['type', 'resources.cpu', 'resources.gpu.count', 'colour']);
        expect(await api.head()).to.equal(head);
      });

      it('says which fields are required', async () => {
        const reply = await api.request('post', '/deployments', { body: {} });
        expect(reply.body['errors']).to.deep.include({ path: 'workloadId', message: 'required: a UUID' });
        const login = await api.request('post', '/auth/login', { as: 'anonymous', body: { username: 'x' } });
        expect(login.body['errors']).to.deep.equal([{ path: 'password', message: 'required: string' }]);
      });

      it('answers 400 for broken JSON, 415 for another media type, 413 for a body over the limit', async () => {
        const broken = await api.request('post', '/workloads', { raw: '{"name": ', headers: { 'content-type': 'application/json' } });
        expect(broken.status).to.equal(400);
        const text = await api.request('post', '/workloads', { raw: 'name=x', headers: { 'content-type': 'text/plain' } });
        expect(text.status).to.equal(415);
        const huge = await api.request('post', '/workloads', { body: { ...workload, env: { BIG: 'x'.repeat(1_100_000) } } });
        expect(huge.status).to.equal(413);
        for (const reply of [broken, text, huge]) expect(reply.headers.get('content-type')).to.match(/application\/problem\+json/);
      });

      it('refuses text no store can keep (NUL, unpaired surrogates) with 400 naming the field', async () => {
        const head = await api.head();
        for (const bad of ['a\u0000b', 'x\ud800', '\udfffy']) {
          const reply = await api.request('post', '/workloads', { body: { ...workload, env: { NOTE: bad } } });
          expect(reply.status).to.equal(400);
          expect(reply.body['errors']).to.deep.equal([
            { path: 'env.NOTE', message: 'text may not contain NUL characters or unpaired UTF-16 surrogates' },
          ]);
        }
        const login = await api.request('post', '/auth/login', { as: 'anonymous', body: { username: '\u0000', password: 'x' } });
        expect(login.status).to.equal(400);
        expect(await api.head()).to.equal(head);
      });

      it('answers 400 for a compressed body that does not decompress', async () => {
        const reply = await api.request('post', '/workloads', {
          raw: '\u0000not gzip',
          headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        });
        expect(reply.status).to.equal(400);
      });

      it('refuses a body on a route that takes none', async () => {
        const id = await created('/clusters', cluster);
        const reply = await api.request('post', `/clusters/${id}/uncordon`, { body: { now: true } });
        expect(reply.status).to.equal(400);
      });
    });

    describe('OpenAPI', () => {
      it('serves an OpenAPI 3.1 document with every command route and its body schema', async () => {
        const reply = await api.request<{ openapi: string; paths: Record<string, Record<string, { requestBody?: unknown; responses: object }>> }>(
          'get',
          '/openapi.json',
          { as: 'anonymous' },
        );
        expect(reply.status).to.equal(200);
        expect(reply.body.openapi).to.equal('3.1.0');
        const operations = Object.entries(reply.body.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m} ${path}`));
        expect(operations).to.include.members([
          'post /auth/login',
          'post /clusters',
          'post /deployments/{id}/scale',
          'patch /deployments/{id}',
          'post /action-plans/{id}/cancel',
          'delete /service-accounts/{id}',
        ]);
        const workloadSchema = reply.body.paths['/workloads']!['post']!.requestBody as {
          content: { 'application/json': { schema: { required: string[]; additionalProperties: boolean } } };
        };
        expect(workloadSchema.content['application/json'].schema.required).to.include.members(['name', 'namespace', 'type', 'image', 'resources']);
        expect(workloadSchema.content['application/json'].schema.additionalProperties).to.equal(false);
        expect(JSON.stringify(reply.body)).not.to.include('#/$defs/');
      });
    });
  });
}
