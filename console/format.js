// Pure formatting helpers (no DOM): durations, countdowns, times.

/** `1:05`, `12:00:03`, or `45 s` style text for a duration in ms (rounded down to seconds, never negative). */
export function duration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  if (hours > 0) return `${hours}:${two(minutes)}:${two(seconds)}`;
  return `${minutes}:${two(seconds)}`;
}

/** Text of a countdown to `deadlineIso` at `now` (ms): `0:42 left`, or `overdue 0:03`. */
export function countdown(deadlineIso, now) {
  const at = Date.parse(deadlineIso);
  if (Number.isNaN(at)) return '';
  const left = at - now;
  return left >= 0 ? `${duration(left)} left` : `overdue ${duration(-left)}`;
}

/** A time as `HH:MM:SS` (local), with the date when it is not today. */
export function time(iso, now = Date.now()) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const clock = date.toLocaleTimeString([], { hour12: false });
  return date.toDateString() === new Date(now).toDateString() ? clock : `${date.toISOString().slice(0, 10)} ${clock}`;
}

/** What an API error body says, whatever its shape: problem+json (detail, title) or `{ error }`. */
export function errorText(status, body) {
  const said = body && typeof body === 'object' ? (body.detail ?? body.title ?? body.error) : undefined;
  return said ? `${status}: ${said}` : `HTTP ${status}`;
}
