// How each kind of chart turns the gateway's points into what the control chart draws. The gateway
// sends per point what its chart plots (docs/protocol.md, `subgroup`): `value` (the mean; EWMA's z),
// CUSUM's `cusum_upper`, `cusum_lower` and `h`, an attribute sample's `count` and `n`, a short-run
// chart's `part`. The page names the charts here and in product.js only.

const ATTRIBUTE = new Set(['p', 'np', 'c', 'u', 'laney_p', 'laney_u']);

function num0(v) {
  return v === null || v === undefined || !Number.isFinite(Number(v)) ? null : Number(v);
}

/** 'shewhart' | 'ewma' | 'cusum' | 'attribute': from the configured chart, else from what a point carries. */
export function kindOf(chart, points) {
  if (chart === 'ewma' || chart === 'cusum') return chart;
  if (ATTRIBUTE.has(chart)) return 'attribute';
  if (chart) return 'shewhart';
  const sample = points.find((p) => p.cusumUpper !== null || p.count !== null || p.value !== p.mean);
  if (!sample) return 'shewhart';
  return sample.cusumUpper !== null ? 'cusum' : sample.count !== null ? 'attribute' : 'ewma';
}

/** The rate an attribute chart's capability gives: 'p' (p-bar, ppm, process Z), 'u' (u-bar, DPU), else null. */
export function rateOf(chart) {
  if (chart === 'p' || chart === 'np' || chart === 'laney_p') return 'p';
  if (chart === 'c' || chart === 'u' || chart === 'laney_u') return 'u';
  return null;
}

/** A point as the gateway charted it (a live `subgroup` event or a `subgroups` history entry). */
export function pointOf(sub, x = sub.subgroup_number) {
  const mean = num0(sub.mean);
  return {
    x, mean, value: 'value' in sub ? num0(sub.value) : mean, n: sub.n, range: sub.range, stdev: sub.stdev,
    center: num0(sub.center), ucl: num0(sub.ucl), lcl: num0(sub.lcl),
    cusumUpper: num0(sub.cusum_upper), cusumLower: num0(sub.cusum_lower), h: num0(sub.h),
    count: sub.count ?? null, part: sub.part ?? null,
  };
}

/** The control chart's points for a kind; rules: subgroup number -> rule numbers, outOfSpec: a Set. */
export function chartPoints(kind, points, rules, outOfSpec) {
  return points.map((p) => {
    const broken = [...(rules.get(p.x) || [])].sort((a, b) => a - b);
    const base = { x: p.x, part: p.part, outOfSpec: outOfSpec.has(p.x) };
    if (kind === 'cusum') {
      // C+ above the axis, C- below it (drawn negative), against +H and -H; a signal marks the sum beyond
      const h = p.h ?? p.ucl;
      const lowerBeyond = broken.length && Number.isFinite(h) && p.cusumLower > h && !(p.cusumUpper > h);
      return { ...base, y: p.cusumUpper, y2: p.cusumLower === null ? null : -p.cusumLower,
        center: Number.isFinite(h) ? 0 : null, ucl: h, lcl: Number.isFinite(h) ? -h : null,
        rules: lowerBeyond ? [] : broken, rules2: lowerBeyond ? broken : [] };
    }
    if (kind === 'ewma') {
      return { ...base, y: p.value, raw: p.mean, center: p.center, ucl: p.ucl, lcl: p.lcl, rules: broken };
    }
    if (kind === 'attribute') {
      // a lower limit floored at 0 is not a limit: no line there
      return { ...base, y: p.value, center: p.center, ucl: p.ucl, lcl: p.lcl > 0 ? p.lcl : null, rules: broken };
    }
    return { ...base, y: p.value ?? p.mean, center: p.center, ucl: p.ucl, lcl: p.lcl, rules: broken };
  });
}

/** The i18n key of the location chart's title. */
export function titleKey(chart, kind) {
  if (kind === 'attribute') return `pv_location_${ATTRIBUTE.has(chart) ? chart : 'p'}`;
  if (kind === 'ewma' || kind === 'cusum') return `pv_location_${kind}`;
  return chart === 'imr' ? 'pv_location_imr' : 'pv_location_xbar';
}

/** Chart options: sigma zones only on Shewhart charts; CUSUM's limits are named H. */
export function chartOptions(kind) {
  if (kind === 'cusum') return { zones: false, labels: { ucl: 'H', center: 'CL', lcl: '−H' } };
  return { zones: kind === 'shewhart' };
}
