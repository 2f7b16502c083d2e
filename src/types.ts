import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/** QueryType is what a query answers with (docs/plugin.md, "Query"). */
export type QueryType = 'traffic' | 'logs' | 'serviceMap' | 'metrics' | 'entry' | 'values';

/** PodwireQuery is the query model the backend reads. */
export interface PodwireQuery extends DataQuery {
  queryType?: QueryType;
  filter?: string;
  limit?: number;
  groupBy?: string;
  entryId?: string;
  field?: string;
  live?: boolean;
  /** metric picks one series per group of a metrics query (alert rules). */
  metric?: string;
}

/** PodwireOptions is the data source's jsonData. */
export interface PodwireOptions extends DataSourceJsonData {
  agents?: string[];
  agentsDnsName?: string;
  dnsCacheSeconds?: number;
  timeoutSeconds?: number;
  tls?: boolean;
  tlsSkipVerify?: boolean;
  tlsServerName?: string;
  tlsAuth?: boolean;
}

/** PodwireSecureJsonData is what Grafana stores encrypted and never sends back. */
export interface PodwireSecureJsonData {
  tlsCACert?: string;
  tlsClientCert?: string;
  tlsClientKey?: string;
  token?: string;
}

export const DEFAULT_LIMIT = 1000;
export const MAX_LIMIT = 50000;

export const DEFAULT_QUERY: Partial<PodwireQuery> = {
  queryType: 'traffic',
  filter: '',
  limit: DEFAULT_LIMIT,
};

/** Query types a user picks in the query editor (values is for variables). */
export const QUERY_TYPES: Array<{ value: QueryType; label: string; description: string }> = [
  { value: 'traffic', label: 'Traffic', description: 'A table of requests, newest first' },
  { value: 'logs', label: 'Logs', description: 'One log line per request' },
  { value: 'serviceMap', label: 'Service map', description: 'Node Graph of who calls whom' },
  { value: 'metrics', label: 'Metrics', description: 'Requests/s, failed/s and latency percentiles per group' },
  { value: 'entry', label: 'Entry', description: 'One request with its headers and bodies' },
];

export const MAP_GROUPS = ['workload', 'service', 'namespace', 'pod'];
export const METRICS_GROUPS = [...MAP_GROUPS, 'node', 'protocol', 'method', 'path', 'status', 'none'];

/** METRICS are what a metrics query can be narrowed to (the series' field names). */
export const METRICS = [
  { value: 'all', label: 'All' },
  { value: 'requestsPerSecond', label: 'Requests/s' },
  { value: 'failedPerSecond', label: 'Failed/s' },
  { value: 'latencyP50', label: 'p50 latency' },
  { value: 'latencyP95', label: 'p95 latency' },
  { value: 'latencyP99', label: 'p99 latency' },
];

/** VALUE_FIELDS are the fields a variable query lists values of. */
export const VALUE_FIELDS = ['namespace', 'workload', 'service', 'pod', 'protocol'];

/** FieldInfo is one name of the filter language (GET /fields). */
export interface FieldInfo {
  name: string;
  type: string;
  doc?: string;
  example?: string;
}

/** ValidateResult is POST /validate's answer. */
export interface ValidateResult {
  ok: boolean;
  error?: string;
  line?: number;
  column?: number;
  offset?: number;
}

/** CompleteResult is GET /complete's answer. */
export interface CompleteResult {
  values: Array<{ value: string; count?: number }>;
}

/** ResourceApi is what editors and the entry viewer need from a data source:
 * DataSourceWithBackend has it, and a test harness can provide it over HTTP. */
export interface ResourceApi {
  getResource<T = unknown>(path: string, params?: Record<string, unknown>): Promise<T>;
  postResource<T = unknown>(path: string, data?: unknown): Promise<T>;
}

/** Endpoint is one side of an entry (agent API, protojson names). */
export interface Endpoint {
  ip?: string;
  port?: number;
  pod?: string;
  namespace?: string;
  workload?: string;
  workloadKind?: string;
  service?: string;
  node?: string;
  process?: string;
}

/** Message is a request or a response of an entry. */
export interface EntryMessage {
  headers?: Record<string, string>;
  body?: string;
  bodyBytes?: string | number;
  truncated?: boolean;
  bodyEncoding?: string;
  headerList?: Array<{ name: string; value: string }>;
  trailers?: Record<string, string>;
  start?: string;
  end?: string;
}

/** Entry is GET /entries/{id}'s answer: the agent API's Entry as protojson. */
export interface Entry {
  id: string;
  time?: string;
  protocol?: string;
  httpVersion?: string;
  src?: Endpoint;
  dst?: Endpoint;
  method?: string;
  path?: string;
  status?: number;
  failed?: boolean;
  latencyMs?: number;
  request?: EntryMessage;
  response?: EntryMessage;
  node?: string;
  incomplete?: boolean;
  notes?: string[];
  connId?: string | number;
}
