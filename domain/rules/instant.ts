// Times the rules read, each parsed once: every rule of a decision reads the change's time, and a freeze window's
// bounds are read again in every decision; parsing an ISO 8601 string costs more than the rest of a rule.
const parsed = new Map<string, number>();

/** `Date.parse(text)`, remembered: milliseconds since the epoch, NaN where `text` is not a time. */
export function instant(text: string): number {
  let ms = parsed.get(text);
  if (ms === undefined) {
    if (parsed.size >= 10_000) parsed.clear();
    ms = Date.parse(text);
    parsed.set(text, ms);
  }
  return ms;
}
