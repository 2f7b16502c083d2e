import {
  AdHocVariableFilter,
  CoreApp,
  CustomVariableSupport,
  DataFrame,
  DataQueryRequest,
  DataQueryResponse,
  DataSourceInstanceSettings,
  MetricFindValue,
  ScopedVars,
} from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv, HealthStatus } from '@grafana/runtime';
import { lastValueFrom, Observable } from 'rxjs';
import { map } from 'rxjs/operators';

import { VariableQueryEditor } from './components/VariableQueryEditor';
import { healthText, isHealthDetails } from './health';
import { FieldTypes, interpolateFilter, Templates, withAdhoc } from './interpolate';
import { DEFAULT_QUERY, PodwireOptions, PodwireQuery } from './types';

/** DataSource is the Podwire data source: queries run in the Go backend;
 * this class expands variables and ad-hoc filters and calls its resources. */
export class DataSource extends DataSourceWithBackend<PodwireQuery, PodwireOptions> {
  private keyTypes: FieldTypes = {};

  constructor(
    instanceSettings: DataSourceInstanceSettings<PodwireOptions>,
    private readonly templates: Templates = getTemplateSrv()
  ) {
    super(instanceSettings);
    this.variables = new PodwireVariableSupport(this);
  }

  getDefaultQuery(_app: CoreApp): Partial<PodwireQuery> {
    return DEFAULT_QUERY;
  }

  /** filterQuery skips hidden queries and those that cannot answer yet. */
  filterQuery(query: PodwireQuery): boolean {
    if (query.hide) {
      return false;
    }
    switch (query.queryType) {
      case 'entry':
        return Boolean(query.entryId?.trim());
      case 'values':
        return Boolean(query.field?.trim());
      default:
        return true;
    }
  }

  applyTemplateVariables(query: PodwireQuery, scopedVars: ScopedVars, filters?: AdHocVariableFilter[]): PodwireQuery {
    const filter = interpolateFilter(query.filter ?? '', this.templates, scopedVars);
    const out: PodwireQuery = { ...query, filter: withAdhoc(filter, query.queryType === 'entry' ? [] : filters, this.keyTypes) };
    if (query.entryId) {
      out.entryId = this.templates.replace(query.entryId, scopedVars);
    }
    if (query.field) {
      out.field = this.templates.replace(query.field, scopedVars);
    }
    if (query.groupBy) {
      out.groupBy = this.templates.replace(query.groupBy, scopedVars);
    }
    return out;
  }

  /** testDatasource runs CheckHealth and puts a line per agent into the
   * details Grafana shows under "Save & test". */
  async testDatasource() {
    // The base class drops the details of a healthy answer; ask ourselves
    // so "Save & test" always lists the agents.
    const res = await this.callHealthCheck();
    const details = isHealthDetails(res.details) ? { ...res.details, ...healthText(res.details) } : res.details;
    return { status: res.status === HealthStatus.OK ? 'success' : 'error', message: res.message, details };
  }

  /** interpolateFilter expands dashboard variables in a filter as a query
   * would (the editor validates what will run). */
  interpolateFilter(filter: string, scopedVars?: ScopedVars): string {
    return interpolateFilter(filter, this.templates, scopedVars);
  }

  /** getTagKeys lists the filter's fields for ad-hoc filters. */
  async getTagKeys(): Promise<MetricFindValue[]> {
    const keys = await this.getResource<Array<{ text: string; type?: string }>>('tag-keys');
    const types: FieldTypes = {};
    for (const k of keys ?? []) {
      types[k.text] = k.type;
    }
    this.keyTypes = types;
    return (keys ?? []).map((k) => ({ text: k.text }));
  }

  /** getTagValues lists values seen for one ad-hoc key. */
  async getTagValues(options: { key: string }): Promise<MetricFindValue[]> {
    const values = await this.getResource<Array<{ text: string }>>('tag-values', { key: options.key });
    return (values ?? []).map((v) => ({ text: v.text }));
  }

  /** metricFindQuery answers a values query: {field, filter}, or a bare
   * field name as a string. */
  async metricFindQuery(query: PodwireQuery | string, options?: { scopedVars?: ScopedVars; range?: DataQueryRequest['range'] }): Promise<MetricFindValue[]> {
    const q: PodwireQuery = typeof query === 'string' ? { refId: 'values', queryType: 'values', field: query } : { ...query, queryType: 'values' };
    const request = {
      targets: [{ ...q, refId: q.refId || 'values' }],
      range: options?.range,
      scopedVars: options?.scopedVars ?? {},
    } as unknown as DataQueryRequest<PodwireQuery>;
    const rsp = await lastValueFrom(this.query(request));
    return framesToValues(rsp.data as DataFrame[]);
  }
}

/** framesToValues turns a values frame (one string field) into variable options. */
export function framesToValues(frames: DataFrame[] | undefined): MetricFindValue[] {
  const out: MetricFindValue[] = [];
  const seen = new Set<string>();
  for (const frame of frames ?? []) {
    const field = frame.fields.find((f) => f.name === 'value') ?? frame.fields.find((f) => f.type === 'string');
    if (!field) {
      continue;
    }
    for (let i = 0; i < field.values.length; i++) {
      const v = field.values[i];
      if (v == null || v === '' || seen.has(String(v))) {
        continue;
      }
      seen.add(String(v));
      out.push({ text: String(v), value: String(v) });
    }
  }
  return out;
}

/** PodwireVariableSupport runs variable queries as `values` queries with
 * their own editor. */
export class PodwireVariableSupport extends CustomVariableSupport<DataSource, PodwireQuery, PodwireQuery> {
  editor = VariableQueryEditor;

  constructor(private readonly ds: DataSource) {
    super();
  }

  query(request: DataQueryRequest<PodwireQuery>): Observable<DataQueryResponse> {
    const targets = request.targets.map((t) => ({ ...t, queryType: 'values' as const, refId: t.refId || 'values' }));
    return this.ds.query({ ...request, targets }).pipe(
      map((rsp) => ({ ...rsp, data: framesToValues(rsp.data as DataFrame[]) as unknown as DataFrame[] }))
    );
  }
}
