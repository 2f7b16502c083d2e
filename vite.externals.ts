/** Modules Grafana shares with plugins at run time (through SystemJS): the
 * plugin's module.js imports them and never bundles them. */
export const externals = [
  'react',
  'react-dom',
  '@grafana/data',
  '@grafana/ui',
  '@grafana/runtime',
  '@grafana/schema',
  '@grafana/e2e-selectors',
  '@emotion/css',
  '@emotion/react',
  'rxjs',
  'rxjs/operators',
  'lodash',
];

/** isExternal says whether an import is left to Grafana. */
export function isExternal(id: string): boolean {
  return externals.some((e) => id === e || id.startsWith(e + '/'));
}
