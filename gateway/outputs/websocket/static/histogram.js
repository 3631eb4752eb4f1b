// The capability view's histogram of the latest measurements with the fitted distribution over it: the
// one the gateway fitted (`capability.distribution`: normal, lognormal, weibull or folded normal, with
// their parameters), or a normal of the values' mean and standard deviation when it sends none. The
// density is scaled to the bars: expected count in a bin = values x bin width x pdf.
import { num } from './format.js';

const SQRT_2PI = Math.sqrt(2 * Math.PI);
const phi = (z) => Math.exp(-0.5 * z * z) / SQRT_2PI;

/** The density of a fitted distribution at x, or null when its parameters are unusable. */
export function density(name, p, x) {
  const ok = (...v) => v.every((a) => Number.isFinite(a));
  switch (name) {
    case 'normal':
      return ok(p.mean, p.sigma) && p.sigma > 0 ? phi((x - p.mean) / p.sigma) / p.sigma : null;
    case 'lognormal': // mu and sigma of ln x
      if (!ok(p.mu, p.sigma) || !(p.sigma > 0)) return null;
      return x > 0 ? phi((Math.log(x) - p.mu) / p.sigma) / (p.sigma * x) : 0;
    case 'weibull':
      if (!ok(p.shape, p.scale) || !(p.shape > 0) || !(p.scale > 0)) return null;
      if (x < 0) return 0;
      return (p.shape / p.scale) * (x / p.scale) ** (p.shape - 1) * Math.exp(-((x / p.scale) ** p.shape));
    case 'folded_normal': // |X| with X normal (mu, sigma)
      if (!ok(p.mu, p.sigma) || !(p.sigma > 0)) return null;
      return x < 0 ? 0 : (phi((x - p.mu) / p.sigma) + phi((x + p.mu) / p.sigma)) / p.sigma;
    default:
      return null;
  }
}

/** {name, parameters} to draw: the gateway's fit, else a normal of the values. */
export function fitted(distribution, values) {
  if (distribution && distribution.name && distribution.parameters) {
    return { name: distribution.name, parameters: distribution.parameters };
  }
  const n = values.length;
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const sigma = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : NaN;
  return { name: 'normal', parameters: { mean, sigma } };
}

export class CapabilityHistogram {
  constructor(canvas) {
    this.canvas = canvas;
    this.drawn = null; // bins, values, the curve's name and its scaled peak (tests read it)
  }

  /** values: the latest measurements; distribution: capability.distribution or undefined; spec: {lsl, usl}. */
  draw(values, distribution, spec, colors) {
    const canvas = this.canvas;
    const finiteValues = values.filter((v) => Number.isFinite(v));
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    this.drawn = { values: finiteValues.length, bins: 0, curve: null, peak: null, tallest: 0 };
    if (finiteValues.length < 2 || w < 20 || h < 20) return;
    const fit = fitted(distribution, finiteValues);
    let lo = Math.min(...finiteValues);
    let hi = Math.max(...finiteValues);
    for (const v of [spec.lsl, spec.usl]) {
      if (Number.isFinite(v) && v > lo - (hi - lo) && v < hi + (hi - lo)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    if (!(hi > lo)) {
      lo -= 0.5;
      hi += 0.5;
    }
    // about sqrt(n) bins (Excel's and many SPC packages' rule), 6 to 30
    const bins = Math.max(6, Math.min(30, Math.round(Math.sqrt(finiteValues.length))));
    const width = (hi - lo) / bins;
    const counts = new Array(bins).fill(0);
    for (const v of finiteValues) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))] += 1;
    // the curve as expected counts per bin
    const steps = 80;
    const curve = [];
    for (let i = 0; i <= steps; i++) {
      const x = lo + ((hi - lo) * i) / steps;
      const f = density(fit.name, fit.parameters, x);
      curve.push(f === null ? null : finiteValues.length * width * f);
    }
    const tallest = Math.max(...counts);
    const peak = Math.max(0, ...curve.filter((c) => c !== null));
    const top = Math.max(tallest, Math.min(peak, tallest * 3)) * 1.1;
    const pad = { left: 4, right: 4, top: 4, bottom: 14 };
    const pw = w - pad.left - pad.right;
    const ph = h - pad.top - pad.bottom;
    const xOf = (x) => pad.left + ((x - lo) / (hi - lo)) * pw;
    const yOf = (c) => pad.top + ph - (c / top) * ph;
    ctx.fillStyle = colors.bars;
    counts.forEach((c, i) => {
      if (!c) return;
      const x0 = xOf(lo + i * width);
      ctx.fillRect(x0 + 0.5, yOf(c), Math.max(1, pw / bins - 1), pad.top + ph - yOf(c));
    });
    if (curve.some((c) => c !== null)) {
      ctx.strokeStyle = colors.curve;
      ctx.lineWidth = 2;
      ctx.beginPath();
      let started = false;
      curve.forEach((c, i) => {
        if (c === null) {
          started = false;
          return;
        }
        const x = xOf(lo + ((hi - lo) * i) / steps);
        const y = yOf(Math.min(c, top));
        if (started) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        started = true;
      });
      ctx.stroke();
    }
    ctx.strokeStyle = colors.spec;
    ctx.lineWidth = 2;
    ctx.fillStyle = colors.spec;
    ctx.font = '11px sans-serif';
    ctx.textBaseline = 'bottom';
    for (const [key, name] of [['lsl', 'LSL'], ['usl', 'USL']]) {
      const v = spec[key];
      if (!Number.isFinite(v) || v < lo || v > hi) continue;
      ctx.beginPath();
      ctx.moveTo(xOf(v), pad.top);
      ctx.lineTo(xOf(v), pad.top + ph);
      ctx.stroke();
      ctx.textAlign = key === 'lsl' ? 'left' : 'right';
      ctx.fillText(name, xOf(v) + (key === 'lsl' ? 3 : -3), h);
    }
    ctx.fillStyle = colors.text;
    ctx.textAlign = 'center';
    ctx.fillText(num(lo + (hi - lo) / 2), pad.left + pw / 2, h);
    this.drawn = { values: finiteValues.length, bins, curve: fit.name, peak, tallest };
  }
}
