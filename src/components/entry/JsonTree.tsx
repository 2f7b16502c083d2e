import { css, cx } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { useStyles2 } from '@grafana/ui';
import React, { useMemo, useState } from 'react';

/** PAGE is how many children of an object or array are shown at first,
 * and how many more each "show more" adds. */
export const PAGE = 100;
/** ROW_BUDGET bounds the rows shown unfolded at first: levels are unfolded
 * breadth-first while they fit, the rest stays folded. */
export const ROW_BUDGET = 400;
const LONG_STRING = 400;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isContainer(v: Json): v is Json[] | { [k: string]: Json } {
  return v !== null && typeof v === 'object';
}

function childCount(v: Json): number {
  if (Array.isArray(v)) {
    return v.length;
  }
  return isContainer(v) ? Object.keys(v).length : 0;
}

/** initialOpen picks the containers unfolded at first (by path),
 * breadth-first, while the rows they show fit in budget. */
export function initialOpen(root: Json, budget = ROW_BUDGET): Set<string> {
  const open = new Set<string>();
  if (!isContainer(root)) {
    return open;
  }
  let rows = 1;
  let level: Array<[string, Json]> = [['$', root]];
  while (level.length) {
    const next: Array<[string, Json]> = [];
    for (const [path, v] of level) {
      const n = Math.min(childCount(v), PAGE);
      if (rows + n > budget) {
        return open;
      }
      open.add(path);
      rows += n;
      const entries: Array<[string, Json]> = Array.isArray(v)
        ? v.slice(0, PAGE).map((c, i) => [`${path}[${i}]`, c])
        : Object.entries(v as Record<string, Json>)
            .slice(0, PAGE)
            .map(([k, c]) => [`${path}.${k}`, c]);
      for (const e of entries) {
        if (isContainer(e[1]) && childCount(e[1]) > 0) {
          next.push(e);
        }
      }
    }
    level = next;
  }
  return open;
}

interface NodeProps {
  name?: string;
  value: Json;
  path: string;
  open: Set<string>;
  last: boolean;
}

function JsonNode({ name, value, path, open, last }: NodeProps) {
  const styles = useStyles2(getStyles);
  const [expanded, setExpanded] = useState(() => open.has(path));
  const [shown, setShown] = useState(PAGE);
  const comma = last ? '' : ',';
  const label = name !== undefined ? <span className={styles.key}>{JSON.stringify(name)}: </span> : null;

  if (!isContainer(value)) {
    return (
      <div className={styles.row}>
        {label}
        <Scalar value={value} />
        {comma}
      </div>
    );
  }
  const isArray = Array.isArray(value);
  const n = childCount(value);
  const [o, c] = isArray ? ['[', ']'] : ['{', '}'];
  if (n === 0) {
    return (
      <div className={styles.row}>
        {label}
        {o}
        {c}
        {comma}
      </div>
    );
  }
  if (!expanded) {
    return (
      <div className={styles.row}>
        <button type="button" className={styles.toggle} aria-expanded={false} aria-label={`Unfold ${name ?? 'value'}`} onClick={() => setExpanded(true)}>
          ▸
        </button>
        {label}
        <span className={styles.folded} onClick={() => setExpanded(true)}>
          {o} … {c}
        </span>
        <span className={styles.count}>
          {' '}
          {n} {isArray ? (n === 1 ? 'item' : 'items') : n === 1 ? 'key' : 'keys'}
        </span>
        {comma}
      </div>
    );
  }
  const keys = isArray ? null : Object.keys(value);
  const upto = Math.min(n, shown);
  const children: React.ReactNode[] = [];
  for (let i = 0; i < upto; i++) {
    const k = keys ? keys[i] : undefined;
    const child = keys ? (value as Record<string, Json>)[k!] : (value as Json[])[i];
    const childPath = keys ? `${path}.${k}` : `${path}[${i}]`;
    children.push(<JsonNode key={childPath} name={k} value={child} path={childPath} open={open} last={i === n - 1} />);
  }
  return (
    <div className={styles.row}>
      <button type="button" className={styles.toggle} aria-expanded={true} aria-label={`Fold ${name ?? 'value'}`} onClick={() => setExpanded(false)}>
        ▾
      </button>
      {label}
      {o}
      <div className={styles.children}>
        {children}
        {upto < n && (
          <button type="button" className={styles.more} onClick={() => setShown(shown + PAGE * 10)}>
            show {Math.min(PAGE * 10, n - upto)} more of {n - upto}
          </button>
        )}
      </div>
      {c}
      {comma}
    </div>
  );
}

function Scalar({ value }: { value: Json }) {
  const styles = useStyles2(getStyles);
  const [full, setFull] = useState(false);
  if (typeof value === 'string') {
    const s = JSON.stringify(value);
    if (s.length > LONG_STRING && !full) {
      return (
        <span className={styles.string}>
          {s.slice(0, LONG_STRING)}
          <button type="button" className={styles.more} onClick={() => setFull(true)}>
            … {s.length - LONG_STRING} more characters
          </button>
        </span>
      );
    }
    return <span className={styles.string}>{s}</span>;
  }
  if (typeof value === 'number') {
    return <span className={styles.number}>{String(value)}</span>;
  }
  return <span className={styles.literal}>{String(value)}</span>;
}

/** JsonTree shows a parsed JSON value folded and paged, so that only what
 * is unfolded is rendered: a body of megabytes shows at once. */
export function JsonTree({ value, className }: { value: unknown; className?: string }) {
  const styles = useStyles2(getStyles);
  const open = useMemo(() => initialOpen(value as Json), [value]);
  return (
    <div className={cx(styles.tree, className)} data-testid="podwire-json-tree">
      <JsonNode value={value as Json} path="$" open={open} last={true} />
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  tree: css({ fontFamily: theme.typography.fontFamilyMonospace, fontSize: theme.typography.bodySmall.fontSize, lineHeight: '18px' }),
  row: css({ position: 'relative', paddingLeft: 14, whiteSpace: 'pre-wrap', wordBreak: 'break-all' }),
  children: css({ paddingLeft: theme.spacing(1), borderLeft: `1px dotted ${theme.colors.border.weak}` }),
  toggle: css({
    position: 'absolute',
    left: 0,
    width: 14,
    padding: 0,
    border: 'none',
    background: 'none',
    color: theme.colors.text.secondary,
    cursor: 'pointer',
    font: 'inherit',
  }),
  key: css({ color: theme.colors.primary.text }),
  string: css({ color: theme.visualization.getColorByName('green') }),
  number: css({ color: theme.visualization.getColorByName('orange') }),
  literal: css({ color: theme.visualization.getColorByName('purple') }),
  folded: css({ cursor: 'pointer', color: theme.colors.text.secondary }),
  count: css({ color: theme.colors.text.disabled }),
  more: css({
    border: 'none',
    background: 'none',
    padding: 0,
    color: theme.colors.text.link,
    cursor: 'pointer',
    font: 'inherit',
  }),
});
