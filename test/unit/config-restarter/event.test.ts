import { readFileSync } from 'node:fs';
import { DecodeError, readCloudEvent, toNotice } from '../../../functions/config-restarter/src/event.js';
import type { WireRequest } from '../../../cluster/apiserver-event.js';
import { apiServerSourceRequest } from '../../../cluster/apiserver-event.js';

const fixture = (name: string): WireRequest =>
  JSON.parse(
    readFileSync(new URL(`../../fixtures/events/${name}.json`, import.meta.url), 'utf8'),
  ) as WireRequest;
const decode = (request: WireRequest): ReturnType<typeof toNotice> =>
  toNotice(readCloudEvent(request.headers, request.body));
const ref = { kind: 'ConfigMap', namespace: 'helloworld', name: 'helloworld-config-test' };

describe('decoding ApiServerSource events', () => {
  it.each([
    ['ref-update', 'update', 'reference'],
    ['ref-add', 'add', 'reference'],
    ['ref-delete', 'delete', 'reference'],
    ['resource-update', 'update', 'resource'],
  ])('%s', (name, action, mode) => {
    expect(decode(fixture(name))).toMatchObject({ type: 'change', action, mode, ref });
  });

  it('decodes a Secret reference', () => {
    expect(decode(fixture('secret-ref-update'))).toMatchObject({
      type: 'change',
      ref: { kind: 'Secret', namespace: 'helloworld', name: 'helloworld-credentials' },
    });
  });

  it('decodes the PingSource event as a resync', () => {
    expect(decode(fixture('ping-resync'))).toMatchObject({
      type: 'resync',
      event: { type: 'dev.knative.sources.ping' },
    });
  });

  it('decodes structured mode', () => {
    const binary = fixture('ref-update');
    const structured = {
      specversion: '1.0',
      id: 'x-1',
      type: binary.headers['ce-type'],
      source: binary.headers['ce-source'],
      kind: 'ConfigMap',
      name: ref.name,
      namespace: ref.namespace,
      datacontenttype: 'application/json',
      data: JSON.parse(binary.body) as unknown,
    };
    const notice = toNotice(
      readCloudEvent({ 'content-type': 'application/cloudevents+json' }, JSON.stringify(structured)),
    );
    expect(notice).toMatchObject({ type: 'change', action: 'update', ref, event: { id: 'x-1' } });
  });

  it('falls back to the data when the extensions are missing', () => {
    const request = fixture('resource-update');
    for (const header of ['ce-kind', 'ce-name', 'ce-namespace', 'ce-apiversion'])
      delete request.headers[header];
    expect(decode(request)).toMatchObject({ type: 'change', ref });
  });

  it.each([
    ['another kind', { 'ce-kind': 'Deployment' }, 'Deployment', 'kind Deployment'],
    ['another event type', { 'ce-type': 'com.example.other' }, undefined, 'not handled'],
  ])('ignores %s', (_name, headers, kind, reason) => {
    const request = fixture('ref-update');
    Object.assign(request.headers, headers);
    if (kind) request.body = JSON.stringify({ ...(JSON.parse(request.body) as object), kind });
    const notice = decode(request);
    expect(notice.type).toBe('ignored');
    expect(notice.type === 'ignored' && notice.reason).toContain(reason);
  });

  const workloadEvent = (action: 'update' | 'delete', apiVersion: string, kind: string) =>
    decode(
      apiServerSourceRequest({
        action,
        mode: 'Reference',
        object: { apiVersion, kind, metadata: { name: 'w', namespace: 'helloworld' } },
      }),
    );

  it.each([
    ['apps/v1', 'Deployment'],
    ['apps/v1', 'StatefulSet'],
    ['apps/v1', 'DaemonSet'],
    ['serving.knative.dev/v1', 'Service'],
  ])('decodes an update of a followed %s %s as a rollout notice', (apiVersion, kind) => {
    const notice = decode(
      apiServerSourceRequest({
        action: 'update',
        mode: 'Reference',
        object: { apiVersion, kind, metadata: { name: 'w', namespace: 'helloworld' } },
      }),
    );
    expect(notice).toMatchObject({
      type: 'rollout',
      ref: { kind: { kind }, namespace: 'helloworld', name: 'w' },
    });
    expect(notice.type === 'rollout' && `${notice.ref.kind.group}/${notice.ref.kind.version}`).toBe(
      apiVersion,
    );
  });

  it.each([
    ['a core Service (not a Knative one)', 'update', 'v1', 'Service', 'kind Service is not'],
    ['a CronJob (its rollouts are not followed)', 'update', 'batch/v1', 'CronJob', 'kind CronJob is not'],
    ['a deleted Deployment', 'delete', 'apps/v1', 'Deployment', 'was deleted'],
  ] as const)('ignores %s', (_name, action, apiVersion, kind, reason) => {
    const notice = workloadEvent(action, apiVersion, kind);
    expect(notice.type).toBe('ignored');
    expect(notice.type === 'ignored' && notice.reason).toContain(reason);
  });

  it('refuses a workload event with an invalid name', () => {
    const request = apiServerSourceRequest({
      action: 'update',
      mode: 'Reference',
      object: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'Not_Valid', namespace: 'helloworld' },
      },
    });
    expect(() => decode(request)).toThrow(DecodeError);
  });

  it.each<[string, (r: WireRequest) => void, string]>([
    [
      'no CloudEvent at all',
      (r) => {
        r.headers = { 'content-type': 'application/json' };
      },
      'not a CloudEvent',
    ],
    [
      'a missing ce-source',
      (r) => {
        delete r.headers['ce-source'];
      },
      'invalid CloudEvent',
    ],
    [
      'a bad specversion',
      (r) => {
        r.headers['ce-specversion'] = '0.1';
      },
      'CloudEvent',
    ],
    [
      'a body that is not JSON',
      (r) => {
        r.body = '{nope';
      },
      '',
    ],
    [
      'data that is an array',
      (r) => {
        r.body = '[1,2]';
        delete r.headers['ce-name'];
      },
      'JSON object',
    ],
    [
      'an extension contradicting the data',
      (r) => {
        r.headers['ce-name'] = 'other';
      },
      'contradicts',
    ],
    [
      'no namespace anywhere',
      (r) => {
        delete r.headers['ce-namespace'];
        r.body = JSON.stringify({ kind: 'ConfigMap', name: 'helloworld-config-test' });
      },
      'no namespace',
    ],
    [
      'an invalid object name',
      (r) => {
        r.headers['ce-name'] = 'Not_Valid';
        r.body = JSON.stringify({ kind: 'ConfigMap', namespace: 'helloworld', name: 'Not_Valid' });
      },
      'not a valid ConfigMap name',
    ],
    [
      'an invalid namespace',
      (r) => {
        r.headers['ce-namespace'] = 'UPPER';
        r.body = JSON.stringify({ kind: 'ConfigMap', namespace: 'UPPER', name: 'helloworld-config-test' });
      },
      'not a valid namespace',
    ],
    [
      'a batch',
      (r) => {
        r.headers = { 'content-type': 'application/cloudevents-batch+json' };
        r.body = '[]';
      },
      'batched',
    ],
  ])('refuses %s with a DecodeError', (_name, mutate, message) => {
    const request = fixture('ref-update');
    mutate(request);
    expect(() => decode(request)).toThrow(DecodeError);
    expect(() => decode(request)).toThrow(message);
  });
});

describe('the send-event wire format', () => {
  it('matches the adapter example of a Reference-mode update', () => {
    const request = apiServerSourceRequest({
      action: 'update',
      mode: 'Reference',
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-config', namespace: 'demo' } },
      id: '5508cafb-3332-4709-a1b1-a8657111d82c',
    });
    expect(request.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-type': 'dev.knative.apiserver.ref.update',
      'ce-source': 'https://10.96.0.1:443',
      'ce-subject': '/apis/v1/namespaces/demo/configmaps/app-config',
      'ce-id': '5508cafb-3332-4709-a1b1-a8657111d82c',
      'ce-kind': 'ConfigMap',
      'ce-apiversion': 'v1',
      'ce-name': 'app-config',
      'ce-namespace': 'demo',
      'Content-Type': 'application/json',
      'Kn-Namespace': 'demo',
    });
    expect(JSON.parse(request.body)).toEqual({
      kind: 'ConfigMap',
      namespace: 'demo',
      name: 'app-config',
      apiVersion: 'v1',
    });
  });

  it('puts the whole object into a Resource-mode event', () => {
    const object = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'a', namespace: 'b' },
      data: { k: 'v' },
    };
    const request = apiServerSourceRequest({ action: 'add', mode: 'Resource', object });
    expect(request.headers['ce-type']).toBe('dev.knative.apiserver.resource.add');
    expect(JSON.parse(request.body)).toEqual(object);
  });
});
