import { BackendSrv, BackendSrvRequest, FetchError, FetchResponse } from '@grafana/runtime';
import { Observable } from 'rxjs';

/** FetchBackendSrv is Grafana's BackendSrv reduced to what a data source
 * plugin uses, over the browser's fetch to the page's own origin: there a
 * test host answers /api/ds/query, resources and health as Grafana does. */
export class FetchBackendSrv implements BackendSrv {
  fetch<T>(options: BackendSrvRequest): Observable<FetchResponse<T>> {
    return new Observable<FetchResponse<T>>((subscriber) => {
      const abort = new AbortController();
      send<T>(options, abort.signal).then(
        (res) => {
          subscriber.next(res);
          subscriber.complete();
        },
        (err) => subscriber.error(err)
      );
      return () => abort.abort();
    });
  }

  async request<T = unknown>(options: BackendSrvRequest): Promise<T> {
    return (await send<T>(options)).data;
  }

  async datasourceRequest<T = unknown>(options: BackendSrvRequest): Promise<FetchResponse<T>> {
    return send<T>(options);
  }

  get<T = unknown>(url: string, params?: Record<string, unknown>, requestId?: string, options?: Partial<BackendSrvRequest>): Promise<T> {
    return this.request<T>({ ...options, url, params, requestId, method: 'GET' });
  }

  delete<T = unknown>(url: string, data?: unknown, options?: Partial<BackendSrvRequest>): Promise<T> {
    return this.request<T>({ ...options, url, data, method: 'DELETE' });
  }

  post<T = unknown>(url: string, data?: unknown, options?: Partial<BackendSrvRequest>): Promise<T> {
    return this.request<T>({ ...options, url, data, method: 'POST' });
  }

  patch<T = unknown>(url: string, data?: unknown, options?: Partial<BackendSrvRequest>): Promise<T> {
    return this.request<T>({ ...options, url, data, method: 'PATCH' });
  }

  put<T = unknown>(url: string, data?: unknown, options?: Partial<BackendSrvRequest>): Promise<T> {
    return this.request<T>({ ...options, url, data, method: 'PUT' });
  }

  chunked(): Observable<FetchResponse<Uint8Array | undefined>> {
    throw new Error('the harness does not stream chunked responses');
  }
}

/** requestUrl is the request's URL with its params as a query string
 * (undefined and null params left out, arrays repeated). */
export function requestUrl(options: BackendSrvRequest): string {
  const q = new URLSearchParams();
  const params = (options.params ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(params)) {
    if (v == null) {
      continue;
    }
    for (const one of Array.isArray(v) ? v : [v]) {
      q.append(k, String(one));
    }
  }
  const qs = q.toString();
  if (!qs) {
    return options.url;
  }
  return options.url + (options.url.includes('?') ? '&' : '?') + qs;
}

async function send<T>(options: BackendSrvRequest, signal?: AbortSignal): Promise<FetchResponse<T>> {
  const method = (options.method ?? 'GET').toUpperCase();
  const headers = new Headers(options.headers as Record<string, string> | undefined);
  let body: string | undefined;
  if (options.data !== undefined && method !== 'GET' && method !== 'HEAD') {
    body = typeof options.data === 'string' ? options.data : JSON.stringify(options.data);
    if (!headers.has('Content-Type')) {
      headers.set('Content-Type', 'application/json');
    }
  }
  const res = await fetch(requestUrl(options), { method, headers, body, signal });
  const text = await res.text();
  let data: unknown = text;
  if ((res.headers.get('Content-Type') ?? '').includes('json') && text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const d = data as { message?: string; error?: string } | string;
    const message = typeof d === 'string' ? d : (d?.message ?? d?.error ?? res.statusText);
    const err: FetchError = { status: res.status, statusText: res.statusText, data, message, config: options };
    throw err;
  }
  return {
    data: data as T,
    status: res.status,
    statusText: res.statusText,
    ok: res.ok,
    headers: res.headers,
    redirected: res.redirected,
    type: res.type,
    url: res.url,
    config: options,
  };
}
