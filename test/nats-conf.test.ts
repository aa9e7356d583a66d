import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NATS_USERS, Subjects, inboxPrefixFor, subjectMatches, type SubjectSpec } from '@homelab/bus';

// nats.conf lists each identity's subjects by hand; the subject map is where subjects are declared.
// This keeps the two in step: a new API subject that an identity cannot use fails here, not in a lab.

const conf = readFileSync(new URL('../nats.conf', import.meta.url), 'utf8');

/** The text of one user's block (up to the next user). */
function userBlock(user: string): string {
  const start = conf.indexOf(`user: ${user},`);
  const next = conf.indexOf('user: ', start + 1);
  return conf.slice(start, next < 0 ? undefined : next);
}

/** The `allow` list of `publish` or `subscribe` in the block of one user (its permissions may be a variable, as the scripts'). */
function allowed(user: string, verb: 'publish' | 'subscribe'): string[] {
  const start = conf.indexOf(`user: ${user},`);
  expect(start, `user ${user} in nats.conf`).toBeGreaterThanOrEqual(0);
  const next = conf.indexOf('user: ', start + 1);
  let block = conf.slice(start, next < 0 ? undefined : next);
  const variable = /permissions:\s*\$(\w+)/.exec(block)?.[1];
  if (variable) {
    const at = conf.indexOf(`\n${variable}: {`);
    expect(at, `${variable} in nats.conf`).toBeGreaterThanOrEqual(0);
    block = conf.slice(at, conf.indexOf('\n}', at + 1));
  }
  const list = new RegExp(`${verb}:\\s*\\{\\s*allow:\\s*\\[([^\\]]*)\\]`, 's').exec(block)?.[1] ?? '';
  return [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
}

const inferenceSubjects = Object.values(Subjects as Record<string, SubjectSpec>).filter((s) => s.kind === 'request' && s.dialect).map((s) => s.subject);

describe('nats.conf against the subject map', () => {
  it('every inference subject: the ingress and scripts may request it, the router serves it, nobody else may serve it', () => {
    expect(inferenceSubjects.length).toBeGreaterThan(5);
    for (const subject of inferenceSubjects) {
      for (const [user, verb] of [['ingress', 'publish'], ['router', 'subscribe'], ['admin', 'publish']] as const) {
        expect(allowed(user, verb).some((p) => subjectMatches(p, subject)), `${user} may ${verb} ${subject}`).toBe(true);
      }
      for (const user of ['worker-vllm', 'health', 'media', 'telemetry', 'ingress']) {
        expect(allowed(user, 'subscribe').some((p) => subjectMatches(p, subject)), `${user} must not serve ${subject}`).toBe(false);
      }
    }
  });

  it('stored responses: the ingress and scripts ask, the router serves; the router and the workers alone use the bucket', () => {
    const stored = [Subjects.responsesGet, Subjects.responsesDelete, Subjects.responsesInputItems].map((s) => s.subject);
    for (const subject of stored) {
      for (const [user, verb] of [['ingress', 'publish'], ['scripts', 'publish'], ['admin', 'publish'], ['router', 'subscribe']] as const) {
        expect(allowed(user, verb).some((p) => subjectMatches(p, subject)), `${user} may ${verb} ${subject}`).toBe(true);
      }
    }
    const bucket = ['$KV.responses.resp_1', '$JS.API.DIRECT.GET.KV_responses.$KV.responses.resp_1', '$JS.API.STREAM.INFO.KV_responses', '$JS.API.STREAM.CREATE.KV_responses'];
    for (const user of ['router', 'worker-vllm', 'worker-ollama', 'worker-cloud']) {
      for (const subject of bucket) expect(allowed(user, 'publish').some((p) => subjectMatches(p, subject)), `${user} may publish ${subject}`).toBe(true);
    }
    for (const user of ['ingress', 'scripts', 'health', 'media', 'telemetry', 'worker-comfyui']) {
      for (const subject of bucket.slice(0, 2)) expect(allowed(user, 'publish').some((p) => subjectMatches(p, subject)), `${user} must not publish ${subject}`).toBe(false);
    }
  });

  it('the router may reach every worker operation', () => {
    for (const operation of ['generate', 'embed', 'count_tokens', 'models']) {
      expect(allowed('router', 'publish').some((p) => subjectMatches(p, `worker.vllm.${operation}`)), operation).toBe(true);
    }
  });

  // nats-server 2.9 scans a table of every reply subject sent to a user with allow_responses on each
  // message once it holds 4,096 (nats.conf, REPLIES): the users on the inference path list inboxes instead.
  it('the router, the inference workers and telemetry answer without allow_responses, to every identity\'s inbox', () => {
    for (const user of ['router', 'worker-vllm', 'worker-ollama', 'worker-cloud', 'telemetry']) {
      expect(userBlock(user), `${user} has allow_responses`).not.toMatch(/^\s*allow_responses:/m);
      for (const requester of NATS_USERS) {
        const inbox = `${inboxPrefixFor(requester)}.abc.1`;
        expect(allowed(user, 'publish').some((p) => subjectMatches(p, inbox)), `${user} may answer ${requester} (${inbox})`).toBe(true);
      }
    }
  });
});
