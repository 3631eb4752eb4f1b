// A control chart on a canvas: stepped center line and control limits (a new limits version shows
// as a step), spec limits, sigma zones, points that broke a rule in red with the rule numbers.
// One redraw per animation frame at most; 500 points draw in about a millisecond.
// EWMA, CUSUM, attribute and short-run charts add their marks through chart_marks.js.
import { num } from './format.js';
import { changeovers, drawChangeovers, drawFaint, drawSecond, partOf, traceSeries } from './chart_marks.js';

const PAD = { left: 78, right: 132, top: 30, bottom: 34 };
const MAX_POINTS = 500; // points drawn; older ones scroll off to the left

/** About `count` round tick values (1, 2 or 5 times a power of ten apart) between lo and hi. */
export function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toFixed(12)));
  return ticks;
}

function cssVar(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

export class ControlChart {
  constructor(canvas, { zones = true, lowerBoundZero = false } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.zones = zones;
    this.lowerBoundZero = lowerBoundZero;
    this.points = [];
    this.spec = {};
    this.hover = null;
    this.options = {};
    this.drawn = null; // what the last draw put on the canvas, in numbers (tests and diagnostics read it)
    this.pending = false;
    this.stats = { draws: 0, lastMs: 0, maxMs: 0, totalMs: 0 };
    new ResizeObserver(() => this.requestDraw()).observe(canvas);
    const pick = (event) => {
      const rect = canvas.getBoundingClientRect();
      this.hover = this._indexAt(event.clientX - rect.left);
      this.requestDraw();
    };
    canvas.addEventListener('pointermove', pick);
    canvas.addEventListener('pointerdown', pick);
    canvas.addEventListener('pointerleave', () => {
      this.hover = null;
      this.requestDraw();
    });
  }

  /** points: [{x, y, center, ucl, lcl, rules: number[], outOfSpec}] oldest first; spec: {lsl, usl, target}.
   * A point may also have y2 (a second series: CUSUM's C- drawn negative) with rules2, raw (a faint
   * series: EWMA's subgroup means) and part (short-run: the part number). A null lcl draws no line.
   * options: {zones, labels: {ucl, center, lcl}} (the limit names on the right). */
  set(points, spec = {}, options = {}) {
    this.points = points.length > MAX_POINTS ? points.slice(points.length - MAX_POINTS) : points;
    this.spec = spec || {};
    this.options = options || {};
    this.requestDraw();
  }

  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  _layout() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { w, h, pw: Math.max(10, w - PAD.left - PAD.right), ph: Math.max(10, h - PAD.top - PAD.bottom) };
  }

  _xOf(i, pw) {
    const n = this.points.length;
    return PAD.left + (n <= 1 ? pw / 2 : (i * pw) / (n - 1));
  }

  _indexAt(px) {
    const n = this.points.length;
    if (!n) return null;
    const pw = Math.max(10, this.canvas.clientWidth - PAD.left - PAD.right);
    const i = Math.round(((px - PAD.left) / pw) * (n - 1));
    return Math.min(n - 1, Math.max(0, i));
  }

  _range() {
    let lo = Infinity;
    let hi = -Infinity;
    const take = (v) => {
      if (v !== null && v !== undefined && Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    };
    for (const p of this.points) {
      take(p.y);
      take(p.y2);
      take(p.raw);
      take(p.ucl);
      take(p.lcl);
      take(p.center);
    }
    if (!Number.isFinite(lo)) return null;
    // Spec limits are shown when they are not so far away that they squash the process into a line.
    const span = Math.max(hi - lo, 1e-9);
    for (const v of [this.spec.lsl, this.spec.usl, this.spec.target]) {
      if (v !== null && v !== undefined && v >= lo - 1.5 * span && v <= hi + 1.5 * span) take(v);
    }
    const pad = Math.max((hi - lo) * 0.08, Math.abs(hi) * 1e-6, 1e-9);
    lo -= pad;
    hi += pad * 2; // room above for the rule numbers
    if (this.lowerBoundZero && lo < 0) lo = 0;
    return { lo, hi };
  }

  draw() {
    const t0 = performance.now();
    const ctx = this.ctx;
    const { w, h, pw, ph } = this._layout();
    ctx.clearRect(0, 0, w, h);
    // Type scales with the page's root size, so the chart reads from as far away as the rest.
    const rootPx = parseFloat(getComputedStyle(document.documentElement).fontSize) || 18;
    const font = `${Math.round(rootPx * 0.85)}px ${cssVar('--chart-family', 'system-ui, sans-serif')}`;
    const C = {
      grid: cssVar('--chart-grid', '#263040'),
      text: cssVar('--chart-text', '#9fb0c4'),
      series: cssVar('--chart-series', '#7cc4ff'),
      center: cssVar('--chart-center', '#3ddc84'),
      limit: cssVar('--chart-limit', '#ff5a4f'),
      spec: cssVar('--chart-spec', '#ffb020'),
      bad: cssVar('--chart-bad', '#ff3b30'),
      series2: cssVar('--chart-series-2', '#d59bff'),
      part: cssVar('--chart-part', '#e8e8e8'),
      zoneA: cssVar('--chart-zone-a', 'rgba(255,90,79,0.07)'),
      zoneB: cssVar('--chart-zone-b', 'rgba(255,176,32,0.05)'),
    };
    ctx.font = font;
    const range = this._range();
    const n = this.points.length;
    const drawn = { points: n, series: 0, series2: 0, raw: 0, center: null, ucl: null, lcl: null,
      changeovers: [], parts: [], labels: [] };
    this.drawn = drawn;
    if (!range || n === 0) {
      this._recordTime(t0);
      return;
    }
    const y = (v) => PAD.top + ph - ((v - range.lo) / (range.hi - range.lo)) * ph;

    // Horizontal grid with value labels.
    ctx.strokeStyle = C.grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = C.text;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    // one value label per ~36 px at most: a short dispersion chart on a 600-pixel panel gets two, not a pile
    let lastLabel = -Infinity;
    for (const v of niceTicks(range.lo, range.hi, Math.max(2, Math.min(6, Math.floor(ph / 36))))) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(PAD.left, yy);
      ctx.lineTo(PAD.left + pw, yy);
      ctx.stroke();
      if (Math.abs(yy - lastLabel) < 18) continue; // labels closer than a line of text would overprint
      ctx.fillText(num(v), PAD.left - 8, yy);
      lastLabel = yy;
    }
    // Subgroup numbers along the bottom.
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(pw / 90))));
    for (let i = 0; i < n; i += every) ctx.fillText(String(this.points[i].x), this._xOf(i, pw), PAD.top + ph + 8);

    const step = n <= 1 ? pw : pw / (n - 1);
    // a limit line, stepped where it changes; returns its segments (runs of points that have it) and
    // its steps (a new value from one point to the next: a limits version, or a limit per point)
    const stepped = (value) => {
      ctx.beginPath();
      let drawing = false;
      let previous = null;
      const line = { segments: 0, steps: 0 };
      for (let i = 0; i < n; i++) {
        const v = value(this.points[i]);
        if (v === null || v === undefined || !Number.isFinite(v)) {
          drawing = false;
          continue;
        }
        if (!drawing) line.segments += 1;
        else if (v !== previous) line.steps += 1;
        previous = v;
        const x0 = Math.max(PAD.left, this._xOf(i, pw) - step / 2);
        const x1 = Math.min(PAD.left + pw, this._xOf(i, pw) + step / 2);
        if (drawing) ctx.lineTo(x0, y(v));
        else ctx.moveTo(x0, y(v));
        ctx.lineTo(x1, y(v));
        drawing = true;
      }
      ctx.stroke();
      return line;
    };
    const band = (from, to, fill) => {
      ctx.fillStyle = fill;
      for (let i = 0; i < n; i++) {
        const p = this.points[i];
        if (![p.center, p.ucl, p.lcl].every(Number.isFinite)) continue;
        const x0 = Math.max(PAD.left, this._xOf(i, pw) - step / 2);
        const x1 = Math.min(PAD.left + pw, this._xOf(i, pw) + step / 2);
        for (const side of [[p.ucl - p.center], [p.lcl - p.center]]) {
          const a = y(p.center + (side[0] * from) / 3);
          const b = y(p.center + (side[0] * to) / 3);
          ctx.fillRect(x0, Math.min(a, b), x1 - x0 + 0.5, Math.abs(b - a));
        }
      }
    };
    if (this.options.zones ?? this.zones) {
      band(2, 3, C.zoneA);
      band(1, 2, C.zoneB);
    }

    // Center and control limits, stepped at every limits version.
    ctx.lineWidth = 2;
    ctx.strokeStyle = C.center;
    ctx.setLineDash([]);
    drawn.center = stepped((p) => p.center);
    ctx.strokeStyle = C.limit;
    ctx.setLineDash([10, 6]);
    drawn.ucl = stepped((p) => p.ucl);
    drawn.lcl = stepped((p) => p.lcl);
    ctx.setLineDash([]);
    const xOf = (i) => this._xOf(i, pw);
    const geometry = { ctx, xOf, y, top: PAD.top, bottom: PAD.top + ph, step, left: PAD.left, right: PAD.left + pw };
    drawn.raw = drawFaint(geometry, this.points, C.series);
    const parts = changeovers(this.points);
    drawChangeovers(geometry, parts, C.part);
    drawn.changeovers = parts.filter((c) => c.index > 0).map((c) => this.points[c.index].x);
    drawn.parts = parts.map((c) => c.part);

    // Spec limits across the whole chart (or an arrow at the edge when off the scale).
    const labels = [];
    const last = this.points[n - 1];
    for (const [key, name] of [['usl', 'USL'], ['lsl', 'LSL'], ['target', 'T']]) {
      const v = this.spec[key];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      if (v < range.lo || v > range.hi) {
        labels.push({ y: v > range.hi ? PAD.top + 8 : PAD.top + ph - 8, text: `${name} ${num(v)} ${v > range.hi ? '↑' : '↓'}`, color: C.spec });
        continue;
      }
      ctx.strokeStyle = C.spec;
      ctx.lineWidth = key === 'target' ? 1.5 : 2.5;
      ctx.setLineDash(key === 'target' ? [3, 5] : []);
      ctx.beginPath();
      ctx.moveTo(PAD.left, y(v));
      ctx.lineTo(PAD.left + pw, y(v));
      ctx.stroke();
      ctx.setLineDash([]);
      labels.push({ y: y(v), text: `${name} ${num(v)}`, color: C.spec });
    }
    const names = { ucl: 'UCL', center: 'CL', lcl: 'LCL', ...(this.options.labels || {}) };
    if (Number.isFinite(last.ucl)) labels.push({ y: y(last.ucl), text: `${names.ucl} ${num(last.ucl)}`, color: C.limit });
    if (Number.isFinite(last.center)) labels.push({ y: y(last.center), text: `${names.center} ${num(last.center)}`, color: C.center });
    if (Number.isFinite(last.lcl)) labels.push({ y: y(last.lcl), text: `${names.lcl} ${num(last.lcl)}`, color: C.limit });

    // The series.
    ctx.strokeStyle = C.series;
    ctx.lineWidth = 2;
    drawn.series += traceSeries(geometry, this.points, 'y');
    ctx.stroke();
    const r = n > 250 ? 2.5 : n > 100 ? 3.5 : 4.5;
    ctx.fillStyle = C.series;
    ctx.beginPath();
    for (let i = 0; i < n; i++) {
      const p = this.points[i];
      if (!Number.isFinite(p.y) || (p.rules && p.rules.length)) continue;
      ctx.moveTo(this._xOf(i, pw) + r, y(p.y));
      ctx.arc(this._xOf(i, pw), y(p.y), r, 0, Math.PI * 2);
    }
    ctx.fill();
    // Out of spec: an amber ring, whatever else it is.
    ctx.strokeStyle = C.spec;
    ctx.lineWidth = 2.5;
    for (let i = 0; i < n; i++) {
      const p = this.points[i];
      if (!p.outOfSpec || !Number.isFinite(p.y)) continue;
      ctx.beginPath();
      ctx.arc(this._xOf(i, pw), y(p.y), r + 5, 0, Math.PI * 2);
      ctx.stroke();
    }
    // Rule breakers: red, bigger, with their rule numbers.
    ctx.textAlign = 'center';
    ctx.font = `bold ${font}`;
    let labelEnd = -Infinity;
    for (let i = 0; i < n; i++) {
      const p = this.points[i];
      if (!p.rules || !p.rules.length || !Number.isFinite(p.y)) continue;
      const px = this._xOf(i, pw);
      const py = y(p.y);
      ctx.fillStyle = C.bad;
      ctx.beginPath();
      ctx.arc(px, py, r + 2.5, 0, Math.PI * 2);
      ctx.fill();
      // In a run of red points the numbers would pile up: label a point when there is room.
      const text = p.rules.join(',');
      const width = ctx.measureText(text).width;
      if (px - width / 2 < labelEnd + 3) continue;
      labelEnd = px + width / 2;
      ctx.textBaseline = 'bottom';
      ctx.fillText(text, px, Math.max(PAD.top - 4, py - r - 5));
    }
    ctx.font = font;
    drawn.series2 = drawSecond(geometry, this.points, C, r);
    // The newest point stands out.
    if (Number.isFinite(last.y)) {
      ctx.strokeStyle = '#ffffff';
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(this._xOf(n - 1, pw), y(last.y), r + 3, 0, Math.PI * 2);
      ctx.stroke();
    }
    this._drawLabels(labels, C, PAD.left + pw + 8, h);
    drawn.labels = labels.map((l) => l.text);
    if (this.hover !== null && this.hover < n) this._drawHover(this.hover, pw, y, C);
    this._recordTime(t0);
  }

  _drawLabels(labels, C, x, h) {
    labels.sort((a, b) => a.y - b.y);
    const gap = 19;
    for (let i = 1; i < labels.length; i++) labels[i].y = Math.max(labels[i].y, labels[i - 1].y + gap);
    const overflow = labels.length ? labels[labels.length - 1].y - (h - 10) : 0;
    if (overflow > 0) for (const l of labels) l.y -= overflow;
    this.ctx.textAlign = 'left';
    this.ctx.textBaseline = 'middle';
    for (const l of labels) {
      this.ctx.fillStyle = l.color;
      this.ctx.fillText(l.text, x, l.y);
    }
  }

  _drawHover(i, pw, y, C) {
    const ctx = this.ctx;
    const p = this.points[i];
    const px = this._xOf(i, pw);
    ctx.strokeStyle = C.text;
    ctx.lineWidth = 1;
    ctx.setLineDash([2, 4]);
    ctx.beginPath();
    ctx.moveTo(px, PAD.top);
    ctx.lineTo(px, PAD.top + (this.canvas.clientHeight - PAD.top - PAD.bottom));
    ctx.stroke();
    ctx.setLineDash([]);
    const second = Number.isFinite(p.y2) ? ` / ${num(p.y2)}` : '';
    const rules = [...(p.rules || []), ...(p.rules2 || [])];
    const text = `#${p.x}${partOf(p)}  ${num(p.y)}${second}${rules.length ? `  R${rules.join(',')}` : ''}`;
    if (this.drawn) this.drawn.hover = text;
    const tw = ctx.measureText(text).width + 16;
    const bx = Math.min(px + 10, PAD.left + pw - tw);
    ctx.fillStyle = 'rgba(10,14,20,0.92)';
    ctx.fillRect(bx, PAD.top + 2, tw, 26);
    ctx.fillStyle = '#ffffff';
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText(text, bx + 8, PAD.top + 15);
  }

  _recordTime(t0) {
    const ms = performance.now() - t0;
    this.stats.draws += 1;
    this.stats.lastMs = ms;
    this.stats.totalMs += ms;
    this.stats.maxMs = Math.max(this.stats.maxMs, ms);
  }
}
