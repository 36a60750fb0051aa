/**
 * Generates the OpenAPI 3.1 document of the server API from the route table and the TypeBox
 * schemas the server validates with (OpenAPI 3.1 schemas are JSON Schema, which TypeBox emits).
 * Schemas with an `$id` become named components referenced with `$ref`. Webhook events are listed
 * under `webhooks`.
 */
import type { TSchema } from '@sinclair/typebox';
import { ApiErrorSchema, WEBHOOK_EVENT_TYPES, WebhookEventSchemas, WebhookHeader } from '@backchannel/server-sdk';
import { OPENAPI_PATH, type Route } from './routes.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Collects `$id` schemas into `components` and replaces them with references. */
class Components {
  readonly schemas: Record<string, Json> = {};

  ref(schema: TSchema): Json {
    return this.#lift(JSON.parse(JSON.stringify(schema)) as Json);
  }

  #lift(node: Json): Json {
    if (Array.isArray(node)) return node.map((n) => this.#lift(n));
    if (node === null || typeof node !== 'object') return node;
    const { $id, ...rest } = node;
    const body: Record<string, Json> = {};
    for (const [k, v] of Object.entries(rest)) body[k] = this.#lift(v);
    if (typeof $id !== 'string') return body;
    this.schemas[$id] ??= body;
    return { $ref: `#/components/schemas/${$id}` };
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Invalid request (`bad-message`, `invalid-argument`, …); the message names the field.',
  401: 'Missing or invalid token (`token-*` codes).',
  403: 'The token has no admin grant (`permission-denied`).',
  404: 'Unknown room, call or participant (`room-not-found`, `call-not-found`, `participant-not-found`).',
  413: 'Body or message too large (`message-too-large`).',
  429: 'Rate limit of the API key exceeded (`rate-limited`); retry after `Retry-After` seconds.',
  503: 'The server is shutting down (`server-shutdown`), or in a cluster a node the request needs did not answer (`cluster-unavailable`; retry).',
};

/** Builds the document; `version` is the server version. */
export function buildOpenApi(routes: readonly Route[], version: string): Record<string, Json> {
  const c = new Components();
  const error = c.ref(ApiErrorSchema);
  const errorResponse = (status: number): Json => {
    const r: Record<string, Json> = { description: STATUS_TEXT[status] ?? 'Error.', content: { 'application/json': { schema: error } } };
    if (status === 429) r.headers = { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } } };
    return r;
  };
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes) {
    const responses: Record<string, Json> = {};
    if (route.response) responses['200'] = { description: 'OK', content: { 'application/json': { schema: c.ref(route.response) } } };
    else responses['204'] = { description: 'Done.' };
    for (const status of [...new Set([400, 401, 403, 429, 503, ...(route.errors ?? [])])].sort()) responses[String(status)] = errorResponse(status);
    const op: Record<string, Json> = { operationId: route.operationId, summary: route.summary, responses };
    const parameters: Json[] = Object.entries(route.params ?? {}).map(([name, description]) => ({ name, in: 'path', required: true, description, schema: { type: 'string' } }));
    for (const [name, { description, schema }] of Object.entries(route.query ?? {})) parameters.push({ name, in: 'query', required: false, description, schema: schema as Json });
    if (parameters.length > 0) op.parameters = parameters;
    if (route.body) op.requestBody = { required: !route.bodyOptional, content: { 'application/json': { schema: c.ref(route.body) } } };
    (paths[route.path] ??= {})[route.method.toLowerCase()] = op;
  }
  paths[OPENAPI_PATH] = {
    get: {
      operationId: 'getOpenApi',
      summary: 'This document (no authentication).',
      security: [],
      responses: { '200': { description: 'The OpenAPI document.', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
  };
  const webhooks: Record<string, Json> = {};
  const signatureHeaders: Json = [
    { name: WebhookHeader.Signature, in: 'header', required: true, description: '`v1=` + hex HMAC-SHA256 of `${timestamp}.${body}` with the API secret.', schema: { type: 'string' } },
    { name: WebhookHeader.Timestamp, in: 'header', required: true, description: 'Unix time of the attempt, seconds.', schema: { type: 'string' } },
    { name: WebhookHeader.EventId, in: 'header', required: true, description: 'Event id (de-duplicate on it).', schema: { type: 'string' } },
    { name: WebhookHeader.EventType, in: 'header', required: true, schema: { type: 'string' } },
    { name: WebhookHeader.KeyId, in: 'header', required: true, description: 'API key whose secret signed the request.', schema: { type: 'string' } },
    { name: WebhookHeader.Attempt, in: 'header', required: true, description: 'Delivery attempt, from 1.', schema: { type: 'string' } },
  ];
  for (const type of WEBHOOK_EVENT_TYPES) {
    webhooks[type] = {
      post: {
        operationId: `webhook.${type}`,
        summary: WebhookEventSchemas[type].description ?? type,
        parameters: signatureHeaders,
        requestBody: { required: true, content: { 'application/json': { schema: c.ref(WebhookEventSchemas[type]) } } },
        responses: { '2XX': { description: 'Accepted. Any other answer (or none within the timeout) is retried.' } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Backchannel server API',
      version,
      description: 'Manage conferences, calls and participants and send app control messages. Every call needs `Authorization: Bearer <JWT>` signed with an API secret and carrying the admin grant.',
    },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    paths: paths as Record<string, Json>,
    webhooks,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'HS256 JWT, key id = API key, grants claim `bc` with `admin: true`.' } },
      schemas: c.schemas,
    },
  };
}
