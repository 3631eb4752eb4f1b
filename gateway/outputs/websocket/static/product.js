// The product view: live control chart and dispersion chart of one characteristic, its capability
// and recent rule violations, over the product endpoint /ws/spc/product/{id}/.
import { t } from './i18n.js';
import { esc, clockTime, num } from './format.js';
import { GatewayConnection } from './connection.js';
import { ControlChart } from './chart.js';
import { defaultChart, dispersionLimits, subgroupsOf } from './spc.js';
import { chartOptions, chartPoints, kindOf, pointOf, rateOf, titleKey } from './chart_kinds.js';
import { CapabilityHistogram } from './histogram.js';
import { capabilityPanel, ppmNote } from './capability_panel.js';

export const HISTORY_POINTS = 500; // subgroups fetched and drawn
const MAX_MEASUREMENTS = 5000; // the contract's ceiling for get_measurements
const MAX_VIOLATIONS_SHOWN = 8;
const MAX_KEPT_POINTS = 2 * HISTORY_POINTS; // per characteristic, older points are dropped
const DEFAULT_MIN_CPK = 1.33;
const MAX_VALUES = 1000; // measurements kept for the histogram

export class ProductView {
  constructor(root, { token, pingMs, onConnectionState, onSelect = () => {} }) {
    this.root = root;
    this.onSelect = onSelect;
    this.token = token;
    this.pingMs = pingMs;
    this.onConnectionState = onConnectionState;
    this.products = new Map(); // id -> {id, code, name, characteristics: Map name -> settings}
    this.productId = null;
    this.characteristic = null;
    this.connection = null;
    this.data = new Map(); // `${product}/${characteristic}` -> series state
    this.el = (sel) => root.querySelector(sel);
    this.location = new ControlChart(this.el('.chart-location canvas'));
    this.dispersion = new ControlChart(this.el('.chart-dispersion canvas'), { zones: false, lowerBoundZero: true });
    this.histogram = new CapabilityHistogram(this.el('.pv-hist canvas'));
    root.addEventListener('click', (event) => {
      const product = event.target.closest('[data-product]');
      const characteristic = event.target.closest('[data-characteristic]');
      if (product) this.show(Number(product.dataset.product), null);
      else if (characteristic) this.show(this.productId, characteristic.dataset.characteristic);
    });
  }

  /** Products from the gateway's /api (optional): [{id, code, name, characteristics: [...]}]. */
  setCatalog(products) {
    for (const p of products || []) {
      this.noteProduct(p);
      for (const c of p.characteristics || []) this.noteCharacteristic(p.id, c.name, c);
    }
    this.renderChooser();
  }

  /** Learn of a product from any message that names it. */
  noteProduct({ id, code, name }) {
    if (id === undefined || id === null) return;
    const known = this.products.get(id);
    if (known) {
      known.code = known.code || code;
      known.name = known.name || name;
      return;
    }
    this.products.set(id, { id, code: code || `#${id}`, name: name || '', characteristics: new Map() });
    this.renderChooser();
  }

  noteCharacteristic(productId, name, settings = null) {
    if (!name) return;
    if (!this.products.has(productId)) this.noteProduct({ id: productId });
    const product = this.products.get(productId);
    if (!product.characteristics.has(name) || settings) {
      const previous = product.characteristics.get(name) || {};
      product.characteristics.set(name, { name, ...previous, ...(settings || {}) });
      if (productId === this.productId) this.renderChooser();
    }
  }

  /** Open a product (and characteristic; null = its first). */
  show(productId, characteristic) {
    if (productId === null || productId === undefined || !this.products.has(productId)) {
      this.productId = null;
      this._disconnect();
      this.renderChooser();
      this.render();
      return;
    }
    const product = this.products.get(productId);
    const name = characteristic || (productId === this.productId ? this.characteristic : null) || product.characteristics.keys().next().value || null;
    const productChanged = productId !== this.productId;
    this.productId = productId;
    this.characteristic = name;
    if (productChanged) this._connect(productId);
    else this._requestHistory();
    this.renderChooser();
    this.render();
    this.onSelect();
  }

  /** Ask for the chart's history and limits again (after new limits were calculated). */
  refresh() {
    this._requestHistory();
  }

  _connect(productId) {
    this._disconnect();
    const connection = new GatewayConnection(`/ws/spc/product/${encodeURIComponent(productId)}/`, {
      token: this.token,
      pingMs: this.pingMs,
      name: `product${productId}`,
    });
    connection.addEventListener('message', (event) => this._message(event.detail));
    connection.addEventListener('connected', () => this._requestHistory());
    connection.addEventListener('state', () => {
      this.onConnectionState(connection);
      this.renderStale();
    });
    this.connection = connection;
    connection.start();
    this._loadCapability(productId);
  }

  /** The latest capability per characteristic from the read API, until a live one arrives. */
  async _loadCapability(productId) {
    try {
      const query = this.token ? `?token=${encodeURIComponent(this.token)}` : '';
      const response = await fetch(`/api/spc/products/${encodeURIComponent(productId)}/capability/${query}`);
      if (!response.ok) return;
      const body = await response.json();
      const list = Array.isArray(body) ? body : body.capability || body.results || [];
      // a short-run characteristic has a result per part number: the newest is the one its last event showed
      const newest = new Map();
      for (const cap of list) {
        if (!cap || !cap.characteristic) continue;
        const seen = newest.get(cap.characteristic);
        if (!seen || Number(cap.id) > Number(seen.id)) newest.set(cap.characteristic, cap);
      }
      for (const [characteristic, cap] of newest) {
        const s = this._series(productId, characteristic);
        if (!s.capability) s.capability = cap; // a live one that came first is newer
      }
      if (productId === this.productId) this.render();
    } catch {
      /* optional: capability also arrives live */
    }
  }

  _disconnect() {
    if (this.connection) this.connection.stop();
    this.connection = null;
  }

  _series(productId, characteristic) {
    const key = `${productId}/${characteristic}`;
    let s = this.data.get(key);
    if (!s) {
      s = { points: new Map(), rules: new Map(), outOfSpec: new Set(), limits: null, spec: {}, last: null,
        capability: null, violations: [], loading: false, loaded: false, n: null, values: [] };
      this.data.set(key, s);
    }
    return s;
  }

  _settings() {
    const product = this.products.get(this.productId);
    return (product && product.characteristics.get(this.characteristic)) || {};
  }

  _requestHistory() {
    if (!this.connection || this.productId === null) return;
    const settings = this._settings();
    const n = Number(settings.subgroup_size) || 1;
    const message = { type: 'get_measurements', product_id: this.productId, limit: Math.min(MAX_MEASUREMENTS, HISTORY_POINTS * Math.max(n, 1) + n) };
    if (this.characteristic) message.characteristic = this.characteristic;
    if (this.characteristic) this._series(this.productId, this.characteristic).loading = true;
    this.connection.send(message);
    this.render();
  }

  _message(msg) {
    const body = msg[msg.type] || msg;
    const productId = body.product_id ?? msg.product_id;
    if (productId !== this.productId) return;
    const characteristic = body.characteristic ?? msg.characteristic;
    if (characteristic) this.noteCharacteristic(productId, characteristic);
    if (!this.characteristic && characteristic) this.characteristic = characteristic;
    if (!characteristic) return;
    const s = this._series(productId, characteristic);
    switch (msg.type) {
      case 'measurements':
        this._history(s, msg);
        break;
      case 'subgroup':
        this._subgroup(s, body);
        break;
      case 'measurement':
        s.last = body;
        s.values.push(Number(body.measurement_value));
        if (s.values.length > MAX_VALUES) s.values.splice(0, s.values.length - MAX_VALUES);
        if (body.is_within_spec === false) s.outOfSpec.add(body.subgroup_number);
        // lean frames: a point of one reading comes in its measurement's frame, not as a `subgroup`
        if (msg.subgroup && msg.subgroup.characteristic === characteristic) this._subgroup(s, msg.subgroup);
        break;
      case 'violation':
        this._mark(s, body.subgroup_number, body.rule);
        this._violation(s, body);
        break;
      case 'capability':
        s.capability = body;
        break;
      default:
        return;
    }
    if (characteristic === this.characteristic) this.render();
  }

  _violation(s, v) {
    // A rule that keeps firing sends its first violation, then an update (`continuing`, `count`) at
    // most once a second: the update replaces its run's line instead of adding one per reading.
    const chart = (x) => x.chart || 'location';
    const same = v.continuing ? s.violations.findIndex((o) => o.rule === v.rule && chart(o) === chart(v)) : -1;
    if (same >= 0) s.violations.splice(same, 1);
    s.violations.unshift(v);
    s.violations.length = Math.min(s.violations.length, MAX_VIOLATIONS_SHOWN);
  }

  _mark(s, subgroupNumber, rule) {
    if (subgroupNumber === undefined || subgroupNumber === null || rule === undefined || rule === null) return;
    const rules = s.rules.get(subgroupNumber) || new Set();
    rules.add(Number(rule));
    s.rules.set(subgroupNumber, rules);
  }

  _history(s, msg) {
    const settings = this._settings();
    const limits = msg.limits || {};
    s.limits = limits;
    s.spec = limits.spec || { lsl: limits.lsl, usl: limits.usl, target: limits.target };
    if (settings.spec && !s.spec.lsl && !s.spec.usl) s.spec = settings.spec;
    const measurements = msg.measurements || [];
    s.values = measurements.slice(-MAX_VALUES).map((m) => Number(m.measurement_value));
    const n = Number(settings.subgroup_size) || largestGroup(measurements);
    s.n = n;
    const groups = subgroupsOf(measurements, n);
    const historyEnd = groups.length ? groups[groups.length - 1].x : -Infinity;
    const live = [...s.points.values()].filter((p) => p.x > historyEnd);
    s.points.clear();
    const charted = new Map((msg.subgroups || []).map((sub) => [sub.subgroup_number, sub]));
    for (const g of groups.slice(-HISTORY_POINTS)) {
      const sub = charted.get(g.x);
      if (sub) {
        // the point as the gateway charted it: its own limits (short subgroups) and the rules it broke
        s.points.set(g.x, pointOf(sub, g.x));
        for (const rule of sub.violations || []) this._mark(s, g.x, rule);
      } else {
        s.points.set(g.x, pointOf({ mean: g.mean, n: g.n, range: g.range, stdev: g.stdev,
          center: limits.center, ucl: limits.ucl, lcl: limits.lcl }, g.x));
        // an older gateway sends no charted points: test 1 is still plain to see from the limits
        if (Number.isFinite(limits.ucl) && (g.mean > limits.ucl || g.mean < limits.lcl)) this._mark(s, g.x, 1);
      }
      if (g.outOfSpec) s.outOfSpec.add(g.x);
    }
    for (const p of live) s.points.set(p.x, p);
    s.loading = false;
    s.loaded = true;
    if (!s.last && measurements.length) s.last = measurements[measurements.length - 1];
  }

  _subgroup(s, sub) {
    s.points.set(sub.subgroup_number, pointOf(sub));
    s.n = sub.n || s.n;
    for (const rule of sub.violations || []) this._mark(s, sub.subgroup_number, rule);
    if (s.points.size > MAX_KEPT_POINTS) {
      const oldest = [...s.points.keys()].sort((a, b) => a - b).slice(0, s.points.size - MAX_KEPT_POINTS);
      for (const x of oldest) s.points.delete(x);
    }
    if (Number.isFinite(sub.ucl)) s.limits = { ...(s.limits || {}), center: sub.center, ucl: sub.ucl, lcl: sub.lcl };
  }

  renderChooser() {
    const chips = [...this.products.values()].sort((a, b) => a.id - b.id).map((p) =>
      `<button class="chip${p.id === this.productId ? ' on' : ''}" data-product="${esc(p.id)}" title="${esc(p.code)} ${esc(p.name)}"><b>${esc(p.code)}</b><small>${esc(p.name)}</small></button>`).join('');
    this.el('.pv-products').innerHTML = chips || `<span class="muted">${esc(t('pv_no_products'))}</span>`;
    const product = this.products.get(this.productId);
    this.el('.pv-chars').innerHTML = product
      ? [...product.characteristics.keys()].map((c) =>
        `<button class="chip char${c === this.characteristic ? ' on' : ''}" data-characteristic="${esc(c)}" title="${esc(c)}"><span>${esc(c)}</span></button>`).join('')
      : '';
  }

  renderStale() {
    const live = this.connection && this.connection.state === 'live';
    this.root.classList.toggle('stale', Boolean(this.connection) && !live);
  }

  /** Draw everything for the selected characteristic. */
  render() {
    const empty = this.el('.pv-empty');
    const body = this.el('.pv-main');
    if (this.productId === null || !this.characteristic) {
      body.hidden = true;
      empty.hidden = false;
      empty.textContent = this.products.size ? t('pv_choose') : t('pv_no_products');
      return;
    }
    body.hidden = false;
    empty.hidden = true;
    const s = this._series(this.productId, this.characteristic);
    const settings = this._settings();
    const n = Number(settings.subgroup_size) || s.n || 1;
    const sorted = [...s.points.values()].sort((a, b) => a.x - b.x).slice(-HISTORY_POINTS);
    const kind = kindOf(settings.chart, sorted);
    const chart = settings.chart || (kind === 'shewhart' ? defaultChart(n) : kind);
    const spec = { lsl: settings.spec?.lsl ?? s.spec?.lsl, usl: settings.spec?.usl ?? s.spec?.usl, target: settings.spec?.target ?? s.spec?.target };
    // spec limits hold for single parts: not on a chart of sums, counts or weighted means
    const drawnSpec = kind === 'shewhart' ? spec : {};
    this.location.set(chartPoints(kind, sorted, s.rules, s.outOfSpec), drawnSpec, chartOptions(kind));
    // EWMA, CUSUM and attribute charts have no dispersion chart: the location chart takes the height
    this.el('.pv-charts').classList.toggle('single', kind !== 'shewhart');
    this.dispersion.set(kind === 'shewhart' ? this._dispersionPoints(sorted, chart, n, s.limits) : [], {});
    const unit = settings.unit ? ` ${settings.unit}` : '';
    this.el('.chart-location h3').textContent = `${t(titleKey(chart, kind))} · ${this.characteristic}${kind === 'attribute' ? '' : unit}`;
    this.el('.chart-dispersion h3').textContent = chart === 'imr' ? t('pv_dispersion_mr') : chart === 'xbar_s' ? t('pv_dispersion_s') : t('pv_dispersion_r');
    const last = sorted[sorted.length - 1];
    const legend = kind === 'shewhart' || !last ? '' : ` · ${t(`pv_legend_${kind}`, { h: num(last.h ?? last.ucl), n: last.n ?? '—' })}`;
    this.el('.chart-location .chart-sub').textContent = s.loading && !s.loaded ? t('pv_loading')
      : sorted.length ? `${kind === 'attribute' ? '' : `n = ${n} · `}${t('pv_points', { n: sorted.length })}${legend}` : t('pv_no_data');
    this._renderSide(s, kind === 'shewhart' || kind === 'ewma' ? spec : {}, settings, unit, kind);
    this._renderHistogram(s, spec, kind);
  }

  _dispersionPoints(sorted, chart, n, limits) {
    const points = [];
    let previous = null;
    for (const p of sorted) {
      let y;
      if (chart === 'imr') y = Number.isFinite(p.range) ? p.range : previous && Number.isFinite(previous.mean) && previous.x === p.x - 1 ? Math.abs(p.mean - previous.mean) : null;
      else y = chart === 'xbar_s' ? p.stdev : p.range;
      let lim = null;
      if (limits && Number.isFinite(limits.dispersion_ucl) && p === sorted[sorted.length - 1]) {
        lim = { center: limits.dispersion_center, ucl: limits.dispersion_ucl, lcl: limits.dispersion_lcl };
      }
      lim = lim || dispersionLimits(chart, p.n || n, p.center, p.ucl, limits?.sigma);
      const beyond = lim && Number.isFinite(y) && (y > lim.ucl || (lim.lcl > 0 && y < lim.lcl));
      points.push({ x: p.x, y: Number.isFinite(y) ? y : null, center: lim?.center, ucl: lim?.ucl, lcl: lim?.lcl, rules: beyond ? [1] : [] });
      previous = p;
    }
    return points;
  }

  /** The measurements' histogram and the fitted distribution (not for counts: no distribution of parts). */
  _renderHistogram(s, spec, kind) {
    const box = this.el('.pv-hist');
    box.hidden = kind === 'attribute' || s.values.filter((v) => Number.isFinite(v)).length < 2;
    if (box.hidden) return;
    const distribution = s.capability?.distribution;
    const name = distribution?.name || 'normal';
    const ppm = ppmNote(s.capability); // expected_ppm is {below, above, total}: the total is shown
    box.querySelector('h4').innerHTML = `${esc(t('pv_hist', { name: t(`dist_${name}`) }))}${ppm ? `<small>${esc(ppm)}</small>` : ''}`;
    this.histogram.draw(s.values, distribution, spec, { bars: 'rgba(124,196,255,0.45)', curve: '#f4f7fb',
      spec: '#ffb020', text: '#9fb0c6' });
  }

  _renderSide(s, spec, settings, unit, kind) {
    const last = s.last;
    const lastEl = this.el('.pv-last');
    if (last) {
      const bad = last.is_within_spec === false ? 'bad' : last.is_within_control === false ? 'warn' : 'ok';
      const verdict = last.is_within_spec === false ? t('pv_out_spec') : last.is_within_control === false ? t('pv_out_control')
        : last.is_within_spec === true ? t('pv_in_spec') : last.is_within_control === true ? t('pv_in_control') : '';
      // a count reading shows what was found in how many (a fraction of units keeps its decimals)
      const shown = Number.isFinite(last.count) ? `${last.count} / ${num(last.sample_size ?? 1)}` : num(last.measurement_value);
      lastEl.className = `pv-last ${bad}`;
      lastEl.innerHTML = `<small>${esc(t('pv_last_value'))} · ${esc(clockTime(last.measured_at))}</small>
        <div class="big">${esc(shown)}<span class="unit">${esc(unit)}</span></div><b>${esc(verdict)}</b>`;
    } else {
      lastEl.className = 'pv-last';
      lastEl.innerHTML = `<small>${esc(t('pv_last_value'))}</small><div class="big">—</div>`;
    }
    const minCpk = Number(settings.min_cpk ?? settings.capability?.min_cpk) || DEFAULT_MIN_CPK;
    this.el('.pv-cap').innerHTML = capabilityPanel(s.capability, { attribute: kind === 'attribute', rate: rateOf(settings.chart), minCpk });
    const l = s.limits || {};
    // CUSUM's limits are +H and -H; a floored attribute LCL is no limit (as on the chart)
    const names = kind === 'cusum' ? { ucl: 'H', center: 'CL', lcl: '−H' } : { ucl: 'UCL', center: 'CL', lcl: 'LCL' };
    if (kind === 'attribute' && !(l.lcl > 0)) names.lcl = null;
    const row = (name, value, cls) => (name && Number.isFinite(value) ? `<tr class="${cls}"><th>${name}</th><td>${esc(num(value))}</td></tr>` : '');
    this.el('.pv-limits').innerHTML = `<h4>${esc(t('pv_limits'))}</h4><table>
      ${row('USL', spec.usl, 'spec')}${row(names.ucl, l.ucl, 'limit')}${row(names.center, l.center, 'center')}${row(names.lcl, l.lcl, 'limit')}${row('LSL', spec.lsl, 'spec')}${row('T', spec.target, 'spec')}</table>`;
    const violations = s.violations.map((v) => `<li><span class="rule-no">${esc(v.rule)}</span><span>${esc(ruleName(v))}</span>
      <small>${esc(t('pv_subgroup', { n: v.subgroup_number }))}${v.count > 1 ? ` · ${esc(t('pv_still_holds', { n: v.count }))}` : ''} · ${esc(clockTime(v.detected_at))}</small></li>`).join('');
    this.el('.pv-viol').innerHTML = `<h4>${esc(t('pv_violations'))}</h4>${violations ? `<ul>${violations}</ul>` : `<p class="muted">${esc(t('pv_no_violations'))}</p>`}`;
  }
}

function ruleName(v) {
  // The gateway names the rule in its own convention (Western Electric numbers differ from Nelson's).
  if (v.rule_name) return v.rule_name;
  const key = `rule_name_${v.rule}`;
  const text = t(key);
  return text === key ? '' : text;
}

function largestGroup(measurements) {
  const counts = new Map();
  for (const m of measurements) counts.set(m.subgroup_number, (counts.get(m.subgroup_number) || 0) + 1);
  return Math.max(1, ...counts.values());
}
