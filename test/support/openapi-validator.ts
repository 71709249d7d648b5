import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

/** The parts of an OpenAPI 3.0 document that a response is checked against. */
type SchemaObject = Record<string, unknown>;
interface MediaTypeObject {
  schema?: SchemaObject;
}
interface ResponseObject {
  content?: Record<string, MediaTypeObject>;
}
interface OperationObject {
  operationId?: string;
  responses: Record<string, ResponseObject>;
}
export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, OperationObject>>;
  components?: { schemas?: Record<string, SchemaObject> };
}

/** What the validator reads of a response, whoever made the request. */
export interface ObservedResponse {
  method: string;
  /** The request path, with or without its query string. */
  path: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body as text (undefined when there was none to read). */
  text: string | undefined;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const PROBLEM = 'application/problem+json';
const COMPONENTS_ID = 'openapi-components.json';
const SCHEMA_REF = /^#\/components\/schemas\/(.+)$/;

interface Route {
  method: string;
  template: string;
  pattern: RegExp;
  /** Literal segments: a more specific template wins over a parameterised one. */
  literals: number;
  operation: OperationObject;
}

/**
 * An OpenAPI 3.0 Schema Object as the JSON Schema that ajv reads: `nullable`
 * adds null to the `type` beside it (and to its `enum`) and, as OpenAPI 3.0.3
 * says, does nothing without one; the boolean `exclusiveMinimum`/`Maximum` of
 * draft 4 become numbers; component references point into one shared schema.
 */
function toJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toJsonSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const source = schema as SchemaObject;
  const out: SchemaObject = {};
  for (const [key, value] of Object.entries(source)) {
    switch (key) {
      case 'nullable':
      case 'example':
      case 'xml':
      case 'externalDocs':
        break;
      case '$ref': {
        const match = SCHEMA_REF.exec(String(value));
        if (!match) throw new Error(`unsupported $ref ${String(value)}`);
        out.$ref = `${COMPONENTS_ID}#/definitions/${match[1]}`;
        break;
      }
      case 'properties':
      case 'patternProperties':
        out[key] = Object.fromEntries(
          Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, toJsonSchema(v)]),
        );
        break;
      case 'exclusiveMinimum':
      case 'exclusiveMaximum': {
        const bound = key === 'exclusiveMinimum' ? 'minimum' : 'maximum';
        if (value === true && typeof source[bound] === 'number') out[key] = source[bound];
        else if (typeof value === 'number') out[key] = value;
        break;
      }
      case 'enum':
      case 'default':
      case 'required':
      case 'const':
        out[key] = value;
        break;
      default:
        out[key] = toJsonSchema(value);
    }
  }
  if (source.exclusiveMinimum === true) delete out.minimum;
  if (source.exclusiveMaximum === true) delete out.maximum;
  if (source.nullable === true && typeof source.type === 'string') {
    out.type = [source.type, 'null'];
    const values = source.enum as unknown[] | undefined;
    if (Array.isArray(values) && !values.includes(null)) out.enum = [...values, null];
  }
  return out;
}

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };

function createAjv(doc: OpenApiDocument): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, validateFormats: true });
  addFormats(ajv);
  ajv.addFormat('int32', {
    type: 'number',
    validate: (n: number) => Number.isInteger(n) && n >= INT32.min && n <= INT32.max,
  });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addSchema({
    $id: COMPONENTS_ID,
    definitions: Object.fromEntries(
      Object.entries(doc.components?.schemas ?? {}).map(([name, s]) => [name, toJsonSchema(s)]),
    ),
  });
  return ajv;
}

const mediaTypeOf = (header: string | string[] | undefined) =>
  (Array.isArray(header) ? header[0] : (header ?? '')).split(';', 1)[0].trim().toLowerCase();
const isJson = (mediaType: string) => mediaType === 'application/json' || mediaType.endsWith('+json');
const preview = (text: string | undefined, max = 400) =>
  text === undefined
    ? '(no body)'
    : text.length > max
      ? `${text.slice(0, max)}… (${text.length} chars)`
      : text;

/**
 * Checks responses against an OpenAPI 3.0 document as a consumer's generated
 * client would read it: the status is documented for the operation, the
 * Content-Type is one the response documents, and the body matches its schema.
 * A request that matches no documented operation (an unknown route) is held
 * to the one thing the document still promises for it: a problem+json error
 * matches the problem schema.
 */
export class ResponseValidator {
  private readonly routes: Route[];
  private readonly ajv: Ajv;
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly problemSchema: string | undefined;

  constructor(private readonly doc: OpenApiDocument) {
    this.ajv = createAjv(doc);
    this.routes = Object.entries(doc.paths)
      .flatMap(([template, item]) =>
        Object.entries(item)
          .filter(([method]) => METHODS.includes(method))
          .map(([method, operation]) => {
            const segments = template.split('/');
            const pattern = segments
              .map((s) => (/^\{\w+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
              .join('/');
            return {
              method,
              template,
              pattern: new RegExp(`^${pattern}$`),
              literals: segments.filter((s) => !s.startsWith('{')).length,
              operation,
            };
          }),
      )
      .sort((a, b) => b.literals - a.literals);
    const problemRefs = new Set(
      Object.values(doc.paths).flatMap((item) =>
        Object.values(item).flatMap((op) =>
          Object.values(op.responses ?? {}).flatMap((r) => {
            const schema = r.content?.[PROBLEM]?.schema;
            const ref = schema?.$ref ?? (schema?.allOf as SchemaObject[] | undefined)?.[0]?.$ref;
            return typeof ref === 'string' ? [ref] : [];
          }),
        ),
      ),
    );
    this.problemSchema = problemRefs.size === 1 ? [...problemRefs][0] : undefined;
  }

  /** Why the response breaks the document, or undefined when it keeps to it. */
  check(res: ObservedResponse): string | undefined {
    const method = res.method.toLowerCase();
    const path = res.path.split('?', 1)[0];
    const route = this.routes.find((r) => r.method === method && r.pattern.test(path));
    const mediaType = mediaTypeOf(res.headers['content-type']);
    if (!route) {
      if (mediaType !== PROBLEM || !this.problemSchema || method === 'head') return undefined;
      const where = `${res.method.toUpperCase()} ${path} (no documented operation) answered ${res.status} ${mediaType}`;
      return this.checkBody(`problem:${this.problemSchema}`, { $ref: this.problemSchema }, res, where);
    }
    const op = route.operation;
    const name = `${op.operationId ?? '(no operationId)'} (${route.method.toUpperCase()} ${route.template})`;
    const status = String(res.status);
    const documented =
      op.responses[status] ??
      op.responses[`${status[0]}XX`] ??
      op.responses[`${status[0]}xx`] ??
      op.responses.default;
    if (!documented) {
      return (
        `${name} answered ${status}, which the document does not list ` +
        `(it lists ${Object.keys(op.responses).join(', ')}); body: ${preview(res.text)}`
      );
    }
    const content = documented.content ?? {};
    const where = `${name} answered ${status} ${mediaType || '(no Content-Type)'}`;
    if (Object.keys(content).length === 0) {
      if (res.text)
        return `${where} with a body, but the document gives ${status} no content: ${preview(res.text)}`;
      return undefined;
    }
    const documentedType = Object.keys(content).find((t) => t.toLowerCase() === mediaType);
    if (!documentedType) {
      return `${where}, but the document gives ${status} only ${Object.keys(content).join(', ')}`;
    }
    const schema = content[documentedType].schema;
    if (!schema || method === 'head') return undefined;
    return this.checkBody(
      `${route.method} ${route.template} ${status} ${documentedType}`,
      schema,
      res,
      where,
    );
  }

  private checkBody(
    key: string,
    schema: SchemaObject,
    res: ObservedResponse,
    where: string,
  ): string | undefined {
    let validate = this.compiled.get(key);
    if (!validate) {
      validate = this.ajv.compile(toJsonSchema(schema) as SchemaObject);
      this.compiled.set(key, validate);
    }
    let body: unknown = res.text ?? '';
    if (isJson(mediaTypeOf(res.headers['content-type']))) {
      try {
        body = JSON.parse(res.text ?? '');
      } catch {
        return `${where} with a body that is not JSON: ${preview(res.text)}`;
      }
    }
    if (validate(body)) return undefined;
    const errors = this.ajv.errorsText(validate.errors, { dataVar: 'response.body', separator: '; ' });
    return `${where}: ${errors}; body: ${preview(res.text)}`;
  }
}

const validators = new Map<string, ResponseValidator>();

/** One validator per distinct document text, shared by every app a test process boots. */
export function responseValidatorFor(documentText: string): ResponseValidator {
  let validator = validators.get(documentText);
  if (!validator) {
    validator = new ResponseValidator(JSON.parse(documentText) as OpenApiDocument);
    validators.set(documentText, validator);
  }
  return validator;
}
