import { css, cx } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { useStyles2 } from '@grafana/ui';
import React, { useCallback, useEffect, useMemo, useRef, useState } from 'react';

import { celEscape } from '../interpolate';
import { CompleteResult, FieldInfo, ResourceApi, ValidateResult } from '../types';
import { byteOffsetToIndex, completionContext, CompletionContext, errorMessage, matchFields, positionToIndex } from './filterText';

export interface FilterFieldProps {
  api: ResourceApi;
  value: string;
  onChange: (value: string) => void;
  /** onRun runs the query: on blur and on Shift+Enter / Ctrl+Enter. */
  onRun?: () => void;
  /** interpolate expands template variables before validation. */
  interpolate?: (filter: string) => string;
  placeholder?: string;
  /** validateDelayMs is the pause in typing before /validate is called. */
  validateDelayMs?: number;
}

/** FilterError is a validation error placed in the text. */
export interface FilterError {
  message: string;
  line?: number;
  column?: number;
  /** index is where the error is in the filter as typed, when known. */
  index?: number;
}

interface Suggestion {
  label: string;
  insert: string;
  detail?: string;
  doc?: string;
}

const MAX_SUGGESTIONS = 50;

// fieldsCache holds each data source's /fields answer: the list is fixed
// for a plugin version.
const fieldsCache = new WeakMap<object, Promise<FieldInfo[]>>();

function loadFields(api: ResourceApi): Promise<FieldInfo[]> {
  let p = fieldsCache.get(api);
  if (!p) {
    p = api.getResource<FieldInfo[]>('fields').then((f) => (Array.isArray(f) ? f : []));
    p.catch(() => fieldsCache.delete(api));
    fieldsCache.set(api, p);
  }
  return p;
}

/** FilterField is the filter's code field: a textarea with the validation
 * error marked at its position and completion of field names (/fields) and
 * values (/complete). */
export function FilterField(props: FilterFieldProps) {
  const { api, value, onChange, onRun, interpolate, placeholder, validateDelayMs = 300 } = props;
  const styles = useStyles2(getStyles);
  const textRef = useRef<HTMLTextAreaElement>(null);
  const backRef = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<FilterError | null>(null);
  const [validateFailure, setValidateFailure] = useState<string | null>(null);
  const [suggestions, setSuggestions] = useState<Suggestion[]>([]);
  const [context, setContext] = useState<CompletionContext>({ kind: 'none' });
  const [selected, setSelected] = useState(0);
  const seq = useRef(0);
  const completeSeq = useRef(0);
  const cursor = useRef<number | null>(null);
  // The latest interpolate, read when validating: a new function each
  // render must not start a new validation.
  const interpolateRef = useRef(interpolate);
  interpolateRef.current = interpolate;

  // Validation, debounced: the last answer for the current text wins.
  useEffect(() => {
    const id = ++seq.current;
    if (!value.trim()) {
      setError(null);
      setValidateFailure(null);
      return;
    }
    const timer = setTimeout(async () => {
      let sent = value;
      try {
        const expand = interpolateRef.current;
        sent = expand ? expand(value) : value;
      } catch (e) {
        setError({ message: e instanceof Error ? e.message : String(e) });
        return;
      }
      try {
        const res = await api.postResource<ValidateResult>('validate', { filter: sent });
        if (id !== seq.current) {
          return;
        }
        setValidateFailure(null);
        setError(res && res.ok === false ? placeError(value, sent, res) : null);
      } catch (e) {
        if (id === seq.current) {
          setError(null);
          setValidateFailure(describeFailure(e));
        }
      }
    }, validateDelayMs);
    return () => clearTimeout(timer);
  }, [api, value, validateDelayMs]);

  const closeCompletion = useCallback(() => {
    completeSeq.current++;
    setSuggestions([]);
    setContext({ kind: 'none' });
  }, []);

  const openCompletion = useCallback(
    async (text: string, pos: number, explicit: boolean) => {
      const ctx = completionContext(text, pos);
      const id = ++completeSeq.current;
      if (ctx.kind === 'none' || (ctx.kind === 'field' && !ctx.prefix && !explicit)) {
        setSuggestions([]);
        setContext({ kind: 'none' });
        return;
      }
      let list: Suggestion[] = [];
      try {
        if (ctx.kind === 'field') {
          const fields = await loadFields(api);
          list = matchFields(fields, ctx.prefix)
            .filter((f) => f.name !== ctx.prefix || explicit)
            .slice(0, MAX_SUGGESTIONS)
            .map((f) => ({ label: f.name, insert: f.name, detail: f.type, doc: f.doc ?? f.example }));
        } else {
          const res = await api.getResource<CompleteResult>('complete', { field: ctx.field, prefix: ctx.prefix });
          list = (res?.values ?? []).slice(0, MAX_SUGGESTIONS).map((v) => ({
            label: v.value,
            insert: celEscape(v.value),
            detail: v.count != null ? String(v.count) : undefined,
          }));
        }
      } catch {
        list = [];
      }
      if (id !== completeSeq.current) {
        return;
      }
      setContext(list.length ? ctx : { kind: 'none' });
      setSuggestions(list);
      setSelected(0);
    },
    [api]
  );

  const accept = useCallback(
    (s: Suggestion) => {
      if (context.kind === 'none') {
        return;
      }
      let insert = s.insert;
      if (context.kind === 'value' && !context.closed) {
        insert += '"';
      }
      const next = value.slice(0, context.from) + insert + value.slice(context.to);
      const caret = context.from + insert.length + (context.kind === 'value' && context.closed ? 1 : 0);
      cursor.current = caret;
      closeCompletion();
      onChange(next);
    },
    [context, value, onChange, closeCompletion]
  );

  // Put the caret after an accepted suggestion once React wrote the text.
  useEffect(() => {
    const el = textRef.current;
    if (el && cursor.current != null) {
      el.focus();
      el.setSelectionRange(cursor.current, cursor.current);
      cursor.current = null;
    }
  }, [value]);

  const onKeyDown = (e: React.KeyboardEvent<HTMLTextAreaElement>) => {
    if (suggestions.length) {
      if (e.key === 'ArrowDown') {
        e.preventDefault();
        setSelected((selected + 1) % suggestions.length);
        return;
      }
      if (e.key === 'ArrowUp') {
        e.preventDefault();
        setSelected((selected - 1 + suggestions.length) % suggestions.length);
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') {
        if (!(e.key === 'Enter' && (e.shiftKey || e.ctrlKey || e.metaKey))) {
          e.preventDefault();
          accept(suggestions[selected]);
          return;
        }
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        closeCompletion();
        return;
      }
    }
    if (e.key === ' ' && e.ctrlKey) {
      e.preventDefault();
      const el = e.currentTarget;
      openCompletion(el.value, el.selectionStart ?? el.value.length, true);
      return;
    }
    if (e.key === 'Enter' && (e.shiftKey || e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      closeCompletion();
      onRun?.();
    }
  };

  const onInput = (e: React.ChangeEvent<HTMLTextAreaElement>) => {
    const el = e.currentTarget;
    onChange(el.value);
    openCompletion(el.value, el.selectionStart ?? el.value.length, false);
  };

  const syncScroll = () => {
    if (backRef.current && textRef.current) {
      backRef.current.scrollTop = textRef.current.scrollTop;
      backRef.current.scrollLeft = textRef.current.scrollLeft;
    }
  };

  const goToError = () => {
    const el = textRef.current;
    if (el && error?.index != null) {
      el.focus();
      el.setSelectionRange(error.index, Math.min(error.index + 1, value.length));
    }
  };

  const rows = Math.min(10, Math.max(2, value.split('\n').length));
  const backdrop = useMemo(() => renderBackdrop(value, error?.index, styles.mark), [value, error?.index, styles.mark]);

  return (
    <div className={styles.wrap}>
      <div className={styles.editor}>
        <div ref={backRef} className={cx(styles.text, styles.backdrop)} aria-hidden="true">
          {backdrop}
        </div>
        <textarea
          ref={textRef}
          data-testid="podwire-filter-input"
          aria-label="Filter"
          aria-invalid={error ? true : undefined}
          aria-autocomplete="list"
          aria-expanded={suggestions.length > 0}
          className={cx(styles.text, styles.input, error && styles.inputError)}
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
          rows={rows}
          value={value}
          placeholder={placeholder ?? 'CEL filter, e.g. http && status >= 500 (Ctrl+Space: completion, Shift+Enter: run)'}
          onChange={onInput}
          onKeyDown={onKeyDown}
          onScroll={syncScroll}
          onBlur={() => {
            // Let a click on a suggestion land before closing the list.
            setTimeout(closeCompletion, 150);
            onRun?.();
          }}
        />
        {suggestions.length > 0 && (
          <ul className={styles.menu} role="listbox" data-testid="podwire-completion" aria-label="Completion">
            {suggestions.map((s, i) => (
              <li
                key={s.label}
                role="option"
                aria-selected={i === selected}
                data-testid="podwire-completion-item"
                className={cx(styles.item, i === selected && styles.itemSelected)}
                onMouseDown={(e) => {
                  e.preventDefault();
                  accept(s);
                }}
                onMouseEnter={() => setSelected(i)}
                title={s.doc}
              >
                <span className={styles.label}>{s.label}</span>
                {s.detail && <span className={styles.detail}>{s.detail}</span>}
              </li>
            ))}
          </ul>
        )}
      </div>
      {error && (
        <div className={styles.error} role="alert" data-testid="podwire-filter-error" onClick={goToError}>
          {error.line != null && error.column != null && (
            <span className={styles.where}>
              line {error.line}, column {error.column}:{' '}
            </span>
          )}
          {error.message}
          {error.index != null && <pre className={styles.caret}>{caretLines(value, error.index)}</pre>}
        </div>
      )}
      {validateFailure && !error && (
        <div className={styles.warning} data-testid="podwire-filter-warning">
          Could not validate the filter: {validateFailure}
        </div>
      )}
    </div>
  );
}

/** placeError places a validation error in the filter as typed: exact when
 * variables did not change the text before the error. */
export function placeError(typed: string, sent: string, res: ValidateResult): FilterError {
  const message = errorMessage(res.error ?? 'invalid filter');
  let index: number | undefined;
  if (res.line != null && res.column != null) {
    index = positionToIndex(sent, res.line, res.column);
  } else if (res.offset != null) {
    index = byteOffsetToIndex(sent, res.offset);
  }
  if (index != null && typed !== sent) {
    let same = 0;
    while (same < typed.length && same < sent.length && typed[same] === sent[same]) {
      same++;
    }
    if (index >= same) {
      // The error is in or after text that variables produced: say so
      // rather than point at the wrong place.
      return { message: `${message} (in the filter with variables expanded: ${sent})` };
    }
  }
  return { message, line: res.line, column: res.column, index };
}

function renderBackdrop(value: string, index: number | undefined, markClass: string) {
  // A trailing newline needs a character after it to take room.
  if (index == null || index > value.length) {
    return value + '\n';
  }
  const end = index < value.length && value[index] !== '\n' ? index + 1 : index;
  return (
    <>
      {value.slice(0, index)}
      <mark className={markClass} data-testid="podwire-filter-error-mark">
        {value.slice(index, end) || ' '}
      </mark>
      {value.slice(end)}
      {'\n'}
    </>
  );
}

/** caretLines is the error's line of the filter and a caret under it. */
export function caretLines(value: string, index: number): string {
  const start = value.lastIndexOf('\n', index - 1) + 1;
  let end = value.indexOf('\n', index);
  if (end < 0) {
    end = value.length;
  }
  const line = value.slice(start, end);
  const col = Array.from(value.slice(start, index)).length;
  return `${line}\n${' '.repeat(col)}^`;
}

function describeFailure(e: unknown): string {
  if (e && typeof e === 'object') {
    const o = e as { data?: { message?: string; error?: string }; message?: string; statusText?: string; status?: number };
    return o.data?.error ?? o.data?.message ?? o.message ?? o.statusText ?? String(o.status ?? 'request failed');
  }
  return String(e);
}

const getStyles = (theme: GrafanaTheme2) => {
  const font = css({
    fontFamily: theme.typography.fontFamilyMonospace,
    fontSize: theme.typography.bodySmall.fontSize,
    lineHeight: '20px',
    padding: theme.spacing(0.5, 1),
    margin: 0,
    border: `1px solid transparent`,
    whiteSpace: 'pre-wrap',
    overflowWrap: 'break-word',
    wordBreak: 'break-all',
    letterSpacing: 'normal',
    boxSizing: 'border-box',
  });
  return {
    wrap: css({ width: '100%', position: 'relative' }),
    editor: css({ position: 'relative', width: '100%' }),
    text: font,
    backdrop: css({
      position: 'absolute',
      inset: 0,
      overflow: 'hidden',
      color: 'transparent',
      pointerEvents: 'none',
      background: theme.components.input.background,
      borderRadius: theme.shape.radius.default,
    }),
    input: css({
      position: 'relative',
      display: 'block',
      width: '100%',
      resize: 'vertical',
      background: 'transparent',
      color: theme.components.input.text,
      borderColor: theme.components.input.borderColor,
      borderRadius: theme.shape.radius.default,
      '&:focus': { outline: `2px solid ${theme.colors.primary.main}`, outlineOffset: '-1px' },
    }),
    inputError: css({ borderColor: theme.colors.error.border }),
    mark: css({
      color: 'transparent',
      background: theme.colors.error.transparent,
      textDecoration: `underline wavy ${theme.colors.error.main}`,
      textDecorationSkipInk: 'none',
    }),
    menu: css({
      position: 'absolute',
      zIndex: theme.zIndex.dropdown,
      left: 0,
      top: '100%',
      minWidth: 280,
      maxHeight: 260,
      overflowY: 'auto',
      listStyle: 'none',
      margin: 0,
      padding: theme.spacing(0.5, 0),
      background: theme.colors.background.elevated,
      boxShadow: theme.shadows.z3,
      border: `1px solid ${theme.colors.border.weak}`,
      borderRadius: theme.shape.radius.default,
    }),
    item: css({
      display: 'flex',
      justifyContent: 'space-between',
      gap: theme.spacing(2),
      padding: theme.spacing(0.25, 1),
      cursor: 'pointer',
      fontFamily: theme.typography.fontFamilyMonospace,
      fontSize: theme.typography.bodySmall.fontSize,
    }),
    itemSelected: css({ background: theme.colors.action.selected }),
    label: css({ whiteSpace: 'nowrap' }),
    detail: css({ color: theme.colors.text.secondary }),
    error: css({
      marginTop: theme.spacing(0.5),
      color: theme.colors.error.text,
      fontSize: theme.typography.bodySmall.fontSize,
      cursor: 'pointer',
    }),
    where: css({ fontWeight: theme.typography.fontWeightMedium }),
    caret: css({
      margin: theme.spacing(0.5, 0, 0),
      padding: theme.spacing(0.5),
      background: 'transparent',
      border: 'none',
      color: theme.colors.error.text,
      fontSize: theme.typography.bodySmall.fontSize,
    }),
    warning: css({ marginTop: theme.spacing(0.5), color: theme.colors.warning.text, fontSize: theme.typography.bodySmall.fontSize }),
  };
};
