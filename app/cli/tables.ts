// Plain-text tables and the short values in their cells, for a terminal.

/** Columns padded to their widest cell, two spaces apart; `numeric` columns align right. */
export function table(header: readonly string[], rows: readonly (readonly string[])[], numeric: readonly boolean[] = []): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (values: readonly string[]) =>
    `${header
      .map((_, i) => {
        const value = values[i] ?? '';
        return numeric[i] ? value.padStart(widths[i]!) : value.padEnd(widths[i]!);
      })
      .join('  ')
      .trimEnd()}\n`;
  return [header, ...rows].map(line).join('');
}

/** `45s`, `12m`, `3h`, `5d`: how long ago an ISO time was, as kubectl shows age. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  const then = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(then)) return '-';
  const seconds = Math.max(0, Math.floor((now - then) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** At most `max` characters, the cut marked with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function count(value: number): string {
  return value.toLocaleString('en-US');
}

/** `a=b, c=d`, or `-` when there are none. */
export function labelList(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {});
  return entries.length === 0 ? '-' : entries.map(([key, value]) => `${key}=${value}`).join(', ');
}
