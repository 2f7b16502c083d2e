import { ScopedVars } from '@grafana/data';

import { Templates } from '../interpolate';
import { ResourceApi } from '../types';

/** fakeTemplates replaces $name, ${name} and ${name:format} from vars the
 * way Grafana's template service does: a format function gets the value
 * (an array for multi-value variables); scoped variables win. */
export function fakeTemplates(vars: Record<string, string | string[]>): Templates {
  return {
    replace(target?: string, scopedVars?: ScopedVars, format?: string | Function): string {
      if (!target) {
        return '';
      }
      return target.replace(/\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]/g, (all, a, b, fmt, c) => {
        const name = a ?? b ?? c;
        const scoped = scopedVars?.[name]?.value as string | string[] | undefined;
        const value = scoped ?? vars[name];
        if (value === undefined) {
          return all;
        }
        // Grafana inserts a custom All value as it is, without formatting.
        if (value === '__all__') {
          return value;
        }
        const f = fmt ?? format;
        if (typeof f === 'function') {
          return f(value);
        }
        if (f === 'raw' || f === undefined) {
          return Array.isArray(value) ? value.join(',') : value;
        }
        if (f === 'csv') {
          return Array.isArray(value) ? value.join(',') : value;
        }
        return String(value);
      });
    },
  };
}

/** Call is one request a FakeApi answered. */
export interface Call {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  params?: Record<string, unknown>;
}

/** fakeApi answers resource calls from functions, and records them. */
export function fakeApi(handlers: {
  get?: (path: string, params?: Record<string, unknown>) => unknown;
  post?: (path: string, body?: unknown) => unknown;
}): ResourceApi & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    async getResource<T>(path: string, params?: Record<string, unknown>): Promise<T> {
      calls.push({ method: 'GET', path, params });
      if (!handlers.get) {
        throw new Error(`unexpected GET ${path}`);
      }
      return (await handlers.get(path, params)) as T;
    },
    async postResource<T>(path: string, body?: unknown): Promise<T> {
      calls.push({ method: 'POST', path, body });
      if (!handlers.post) {
        throw new Error(`unexpected POST ${path}`);
      }
      return (await handlers.post(path, body)) as T;
    },
  };
}
