// Small formatting helpers shared by the views.
import { t } from './i18n.js';

/** HTML-escape a value for template strings. */
export function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** The wall-clock time written in an ISO 8601 string (the gateway's own zone), as HH:MM:SS. */
export function clockTime(iso) {
  const m = /T(\d{2}:\d{2}:\d{2})/.exec(iso || '');
  return m ? m[1] : '';
}

/** MM-DD HH:MM from an ISO string, for times that may be on another day. */
export function dayTime(iso) {
  const m = /^\d{4}-(\d{2})-(\d{2})T(\d{2}:\d{2})/.exec(iso || '');
  return m ? `${m[1]}-${m[2]} ${m[3]}` : '';
}

// Every time on the screen is shown in the gateway's zone (the plant's), whatever zone the kiosk's
// browser was set up with: alert times come as ISO strings with the gateway's offset, and the
// offset of the `connection` message's timestamp tells how to show the screen's own clock alike.
let zoneOffsetMinutes = null;

/** Learn the gateway's UTC offset from one of its ISO timestamps. */
export function learnZone(iso) {
  const m = /(Z|([+-])(\d{2}):?(\d{2}))$/.exec(iso || '');
  if (!m) return;
  zoneOffsetMinutes = m[1] === 'Z' ? 0 : (m[2] === '-' ? -1 : 1) * (Number(m[3]) * 60 + Number(m[4]));
}

/** HH:MM:SS of a Date, in the gateway's zone once known. */
export function localClock(date) {
  if (!date) return '';
  if (zoneOffsetMinutes === null) return date.toTimeString().slice(0, 8);
  return new Date(date.getTime() + zoneOffsetMinutes * 60000).toISOString().slice(11, 19);
}

/** Milliseconds since epoch of an ISO string, or null. */
export function epochMs(iso) {
  const ms = Date.parse(iso || '');
  return Number.isFinite(ms) ? ms : null;
}

/** "3 min ago" style age of an ISO time. */
export function ago(iso, now = Date.now()) {
  const ms = epochMs(iso);
  if (ms === null) return '';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return t('ago_s', { n: s });
  if (s < 3600) return t('ago_m', { n: Math.floor(s / 60) });
  if (s < 86400) return t('ago_h', { n: Math.floor(s / 3600) });
  return t('ago_d', { n: Math.floor(s / 86400) });
}

/** A measured number with sensible decimals (4 significant after the point at most). */
export function num(value, digits = 4) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return '—';
  const v = Number(value);
  const abs = Math.abs(v);
  const decimals = abs >= 1000 ? 1 : abs >= 100 ? 2 : abs >= 1 ? digits - 1 : digits;
  return v.toFixed(decimals).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}
