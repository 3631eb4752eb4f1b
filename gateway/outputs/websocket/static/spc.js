// The little SPC the screen needs to draw what the gateway computed: subgroup statistics of a
// history, and the dispersion chart's limits from the location chart's limits.

// d2 and d3 (ranges of normal samples), n = 2..25, from the standard tables (ASTM E2587).
const D2 = [0, 0, 1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.97, 3.078, 3.173, 3.258, 3.336,
  3.407, 3.472, 3.532, 3.588, 3.64, 3.689, 3.735, 3.778, 3.819, 3.858, 3.895, 3.931];
const D3 = [0, 0, 0.853, 0.888, 0.88, 0.864, 0.848, 0.833, 0.82, 0.808, 0.797, 0.787, 0.778, 0.77,
  0.763, 0.756, 0.75, 0.744, 0.739, 0.733, 0.729, 0.724, 0.72, 0.716, 0.712, 0.708];

function logGamma(x) {
  // Lanczos approximation (g = 7), accurate to ~1e-15 for x > 0.5.
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7];
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** c4(n): the bias of the sample standard deviation. */
export function c4(n) {
  if (n < 2) return 1;
  return Math.sqrt(2 / (n - 1)) * Math.exp(logGamma(n / 2) - logGamma((n - 1) / 2));
}

/** The chart type the gateway would use when the configuration is not known to the page. */
export function defaultChart(n) {
  return n <= 1 ? 'imr' : n > 10 ? 'xbar_s' : 'xbar_r';
}

/** Limits of the dispersion chart (R, S or MR) from the location chart's limits for subgroups of n. */
export function dispersionLimits(chart, n, center, ucl, sigmaGiven = null) {
  let sigma = sigmaGiven;
  if (!Number.isFinite(sigma)) {
    if (!Number.isFinite(center) || !Number.isFinite(ucl)) return null;
    sigma = ((ucl - center) / 3) * Math.sqrt(Math.max(1, n));
  }
  if (chart === 'imr') {
    return { center: D2[2] * sigma, ucl: (D2[2] + 3 * D3[2]) * sigma, lcl: 0 };
  }
  if (chart === 'xbar_s') {
    const k = c4(n);
    const spread = 3 * Math.sqrt(Math.max(0, 1 - k * k));
    return { center: k * sigma, ucl: (k + spread) * sigma, lcl: Math.max(0, k - spread) * sigma };
  }
  const m = Math.min(25, Math.max(2, n));
  return { center: D2[m] * sigma, ucl: (D2[m] + 3 * D3[m]) * sigma, lcl: Math.max(0, D2[m] - 3 * D3[m]) * sigma };
}

/** Group a measurement history (oldest first) into subgroups: [{x, n, mean, range, stdev, outOfSpec, values}]. */
export function subgroupsOf(measurements, subgroupSize) {
  const groups = new Map();
  for (const m of measurements) {
    // short-run: a reading of unknown part is stored but belongs to no point (it carries the number of
    // the point before it, or 0 before the first)
    if (m.part_unknown) continue;
    const key = m.subgroup_number ?? m.sample_number ?? m.id;
    let g = groups.get(key);
    if (!g) {
      g = { x: key, values: [], outOfSpec: false, outOfControl: false };
      groups.set(key, g);
    }
    g.values.push(Number(m.measurement_value));
    if (m.is_within_spec === false) g.outOfSpec = true;
    if (m.is_within_control === false) g.outOfControl = true;
  }
  const list = [...groups.values()].sort((a, b) => a.x - b.x);
  // The newest subgroup may still be filling: it is not a point on the chart yet.
  if (subgroupSize > 1 && list.length && list[list.length - 1].values.length < subgroupSize) list.pop();
  for (const g of list) {
    const v = g.values;
    g.n = v.length;
    g.mean = v.reduce((s, x) => s + x, 0) / v.length;
    g.range = v.length > 1 ? Math.max(...v) - Math.min(...v) : null;
    g.stdev = v.length > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - g.mean) ** 2, 0) / (v.length - 1)) : null;
  }
  return list;
}
