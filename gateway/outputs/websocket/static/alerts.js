// The alarm book (what alerts exist, in what state) and the alarm list view.
import { t, language } from './i18n.js';
import { esc, clockTime, dayTime, ago, epochMs, num } from './format.js';

/** An alert's title or message in the page's language: the gateway sends every language in `texts` for
 * the alerts it raises; alerts from people or other systems have only their own words. */
export function alertText(alert, field) {
  return alert.texts?.[language()]?.[field] ?? alert[field] ?? '';
}

// Which chart type (xbar_r | xbar_s | imr) a product's characteristic is drawn on, when the page knows it
// (app.js sets it from the catalog); the card then names the chart exactly (MR, R, S, I, X̄).
let chartTypeOf = () => null;
export function setChartTypeLookup(lookup) {
  chartTypeOf = lookup;
}

/** The chart an alert's value and limit belong to (`chart`: location | dispersion), in words. */
export function chartName(alert) {
  if (alert.chart !== 'location' && alert.chart !== 'dispersion') return '';
  const type = chartTypeOf(alert.product_id, alert.characteristic);
  if (alert.chart === 'location') {
    if (type === 'imr') return t('chart_named', { name: t('pv_location_imr') });
    if (type === 'xbar_r' || type === 'xbar_s') return t('chart_named', { name: t('pv_location_xbar') });
    return t('chart_location');
  }
  if (type === 'imr') return t('chart_named', { name: t('pv_dispersion_mr') });
  if (type === 'xbar_r') return t('chart_named', { name: t('pv_dispersion_r') });
  if (type === 'xbar_s') return t('chart_named', { name: t('pv_dispersion_s') });
  return t('chart_dispersion');
}

export const MAX_ALERTS = 2000; // alerts held in the page at most; resolved ones are dropped first
export const FLOOD_WINDOW_MS = 10 * 60 * 1000;
export const FLOOD_THRESHOLD = 10; // more than this many new alerts in the window is a flood (EEMUA 191)
const UNRESOLVED = new Set(['OPEN', 'ACKNOWLEDGED', 'SHELVED']);
export const PRIORITY_LETTER = { 5: 'C', 4: 'H', 3: 'M', 2: 'L', 1: 'I' };

/** Clamp a protocol priority to the 1..5 scale the screen draws. */
export function priorityLevel(priority) {
  const p = Math.round(Number(priority));
  return Number.isFinite(p) ? Math.min(5, Math.max(1, p)) : 3;
}

/** The badge that shows a priority by colour, shape and letter together. */
export function priorityBadge(priority) {
  const p = priorityLevel(priority);
  return `<span class="badge p${p}" role="img" aria-label="${esc(t(`priority_${p}`))}"><b>${PRIORITY_LETTER[p]}</b></span>`;
}

export class AlertBook extends EventTarget {
  constructor() {
    super();
    this.alerts = new Map();
    this.arrivals = new Map(); // id -> ms the page first saw it (created_at may be missing)
  }

  /** Insert or update one alert; tells whether it is new to this page. */
  upsert(alert) {
    if (!alert || alert.id === undefined || alert.id === null) return { isNew: false, alert: null };
    const previous = this.alerts.get(alert.id);
    const merged = previous ? { ...previous, ...alert } : { ...alert };
    this.alerts.set(alert.id, merged);
    if (!previous) this.arrivals.set(alert.id, Date.now());
    this._trim();
    this._changed();
    return { isNew: !previous, previous, alert: merged };
  }

  /** The snapshot after `connection`: the gateway's view of the unresolved alerts replaces ours. */
  replaceUnresolved(list) {
    const ids = new Set(list.map((a) => a.id));
    for (const [id, alert] of this.alerts) {
      if (UNRESOLVED.has(alert.status) && !ids.has(id)) this.alerts.delete(id);
    }
    this._bulk(list);
  }

  /** A full reload (the gap was older than the gateway keeps): start again from the list. */
  replaceAll(list) {
    this.alerts.clear();
    this._bulk(list);
  }

  /** Merge a `get_alerts` page without dropping anything. */
  merge(list) {
    this._bulk(list);
  }

  _bulk(list) {
    for (const alert of list) {
      if (alert && alert.id !== undefined && alert.id !== null) {
        this.alerts.set(alert.id, { ...(this.alerts.get(alert.id) || {}), ...alert });
        if (!this.arrivals.has(alert.id)) this.arrivals.set(alert.id, Date.now());
      }
    }
    this._trim();
    this._changed();
  }

  get(id) {
    return this.alerts.get(id);
  }

  counts() {
    const counts = { OPEN: 0, ACKNOWLEDGED: 0, SHELVED: 0, RESOLVED: 0 };
    for (const alert of this.alerts.values()) if (alert.status in counts) counts[alert.status] += 1;
    return counts;
  }

  /** Alerts raised in the last 10 minutes (for the flood indicator). */
  recentCount(now = Date.now()) {
    let n = 0;
    for (const alert of this.alerts.values()) {
      const at = epochMs(alert.created_at) ?? this.arrivals.get(alert.id);
      if (at !== undefined && now - at <= FLOOD_WINDOW_MS) n += 1;
    }
    return n;
  }

  /** Unacknowledged alerts (for the horn): the highest priority among them, 0 when none. */
  highestUnacked() {
    let highest = 0;
    for (const alert of this.alerts.values()) {
      if (alert.status === 'OPEN') highest = Math.max(highest, priorityLevel(alert.priority));
    }
    return highest;
  }

  /** Products seen in alerts: id -> {id, code, name}. */
  products() {
    const products = new Map();
    for (const alert of this.alerts.values()) {
      if (alert.product_id !== undefined && alert.product_id !== null && !products.has(alert.product_id)) {
        products.set(alert.product_id, { id: alert.product_id, code: alert.product_code, name: alert.product_name });
      }
    }
    return products;
  }

  /** The alerts a list tab shows, in display order. */
  visible({ tab = 'active', productId = null, sort = 'priority' } = {}) {
    const wanted = tab === 'shelved' ? ['SHELVED'] : tab === 'resolved' ? ['RESOLVED'] : ['OPEN', 'ACKNOWLEDGED'];
    const list = [...this.alerts.values()].filter(
      (a) => wanted.includes(a.status) && (productId === null || a.product_id === productId),
    );
    const created = (a) => epochMs(a.created_at) ?? this.arrivals.get(a.id) ?? 0;
    list.sort((a, b) => {
      if (sort === 'priority' && tab === 'active') {
        const unacked = (b.status === 'OPEN') - (a.status === 'OPEN');
        if (unacked) return unacked;
        const prio = priorityLevel(b.priority) - priorityLevel(a.priority);
        if (prio) return prio;
      }
      return created(b) - created(a) || Number(b.id) - Number(a.id);
    });
    return list;
  }

  _trim() {
    if (this.alerts.size <= MAX_ALERTS) return;
    const byAge = [...this.alerts.values()].sort((a, b) => Number(a.id) - Number(b.id));
    for (const alert of byAge) {
      if (this.alerts.size <= MAX_ALERTS) break;
      if (alert.status === 'RESOLVED') this.alerts.delete(alert.id);
    }
    for (const alert of byAge) {
      if (this.alerts.size <= MAX_ALERTS) break;
      this.alerts.delete(alert.id);
    }
  }

  _changed() {
    this.dispatchEvent(new Event('change'));
  }
}

function alertMeta(alert) {
  const parts = [];
  if (alert.characteristic) parts.push(`<span class="char">${esc(alert.characteristic)}</span>`);
  if (alert.alert_type) parts.push(esc(TEXT_OR(`type_${alert.alert_type}`, alert.alert_type)));
  if (alert.rule !== undefined && alert.rule !== null) parts.push(`<b class="rule">${esc(t('rule_n', { n: alert.rule }))}</b>`);
  // One alert counts repeats on both charts: say whose value this is (a moving range under a message
  // about the individual value would otherwise read as a wrong number).
  const chart = chartName(alert);
  const chartHtml = chart ? `<b class="chart-name">${esc(chart)}</b>` : '';
  if (alert.value !== undefined && alert.value !== null) {
    const hasLimit = alert.limit !== undefined && alert.limit !== null;
    const value = esc(hasLimit ? t('value_limit', { value: num(alert.value), limit: num(alert.limit) }) : t('value_only', { value: num(alert.value) }));
    parts.push(chart ? `${chartHtml}: ${value}` : value);
  } else if (chart) {
    parts.push(chartHtml);
  }
  if (alert.status === 'SHELVED' && alert.shelved_until) {
    const left = Math.max(0, Math.ceil(((epochMs(alert.shelved_until) ?? 0) - Date.now()) / 60000));
    parts.push(`<b>${esc(t('shelved_until', { time: dayTime(alert.shelved_until) }))}</b> · ${esc(t('minutes_left', { m: left }))}`);
  }
  if (alert.acknowledged_by) {
    parts.push(esc(t('acked_by', { who: alert.acknowledged_by, time: clockTime(alert.acknowledged_at) })));
  }
  if (alert.comment) parts.push(`“${esc(alert.comment)}”`);
  return parts.join('<i class="sep">·</i>');
}

function TEXT_OR(key, fallback) {
  const text = t(key);
  return text === key ? fallback : text;
}

/** The alarm list: keyed rows, so an update never restarts the flashing or loses the selection. */
export class AlertListView {
  constructor(container, { onSelect, onQuickAck }) {
    this.container = container;
    this.onSelect = onSelect;
    this.onQuickAck = onQuickAck;
    this.rows = new Map();
    this.selectedId = null;
    this.canAct = true;
    container.addEventListener('click', (event) => {
      const ack = event.target.closest('button[data-ack]');
      const row = event.target.closest('.alert-row');
      if (!row) return;
      const id = row.dataset.id;
      const key = [...this.rows.keys()].find((k) => String(k) === id);
      if (ack) {
        event.stopPropagation();
        this.onQuickAck(key);
      } else {
        this.onSelect(this.selectedId === key ? null : key);
      }
    });
  }

  render(alerts, emptyText) {
    const wanted = new Set(alerts.map((a) => a.id));
    for (const [id, row] of this.rows) {
      if (!wanted.has(id)) {
        row.el.remove();
        this.rows.delete(id);
      }
    }
    let empty = this.container.querySelector('.list-empty');
    if (alerts.length === 0) {
      if (!empty) {
        empty = document.createElement('div');
        empty.className = 'list-empty';
        this.container.append(empty);
      }
      empty.innerHTML = `<span class="ok-mark">✓</span><b>${esc(emptyText)}</b><small>${esc(t('list_empty_hint'))}</small>`;
      return;
    }
    if (empty) empty.remove();
    const now = Date.now();
    let previous = null;
    for (const alert of alerts) {
      let row = this.rows.get(alert.id);
      const html = this._rowHtml(alert);
      if (!row) {
        const el = document.createElement('div');
        el.setAttribute('role', 'row');
        row = { el, html: '' };
        this.rows.set(alert.id, row);
      }
      const p = priorityLevel(alert.priority);
      const cls = `alert-row p${p} s-${String(alert.status).toLowerCase()}${alert.id === this.selectedId ? ' selected' : ''}`;
      if (row.el.className !== cls) row.el.className = cls;
      row.el.dataset.id = String(alert.id);
      if (row.html !== html) {
        row.el.innerHTML = html;
        row.html = html;
      }
      // The age changes every second; it is set apart so the row's buttons are not rebuilt under a finger.
      const age = ago(alert.created_at, now);
      const ageEl = row.el.querySelector('.ago');
      if (ageEl && ageEl.textContent !== age) ageEl.textContent = age;
      const expectedPosition = previous ? previous.nextSibling : this.container.firstChild;
      if (expectedPosition !== row.el) this.container.insertBefore(row.el, expectedPosition);
      previous = row.el;
    }
  }

  _rowHtml(alert) {
    const p = priorityLevel(alert.priority);
    const status = String(alert.status || 'OPEN');
    const ackButton =
      status === 'OPEN' && this.canAct
        ? `<button class="btn btn-ack" data-ack="1">${esc(t('act_ack'))}</button>`
        : '';
    const occurrences = Number(alert.occurrences) > 1 ? `<span class="occ">${esc(t('occurrences', { n: alert.occurrences }))}</span>` : '';
    return `
      <div class="c-prio">${priorityBadge(p)}<small>${esc(t(`priority_${p}`))}</small></div>
      <div class="c-state"><span class="state-label">${esc(TEXT_OR(`state_${status}`, status))}</span>
        <span class="time">${esc(clockTime(alert.created_at))}</span><small class="ago"></small></div>
      <div class="c-what">
        <div class="l1"><span class="code">${esc(alert.product_code ?? '')}</span><span class="title">${esc(alertText(alert, 'title'))}</span>${occurrences}<span class="aid">#${esc(alert.id)}</span></div>
        <div class="l2">${esc(alertText(alert, 'message'))}</div>
        <div class="l3">${alertMeta(alert)}</div>
      </div>
      <div class="c-act">${ackButton}</div>`;
  }
}
