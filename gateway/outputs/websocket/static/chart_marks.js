// What the newer charts add to a control chart (chart.js): EWMA's raw subgroup means drawn faint under
// its z line, CUSUM's second sum (C-, drawn negative) and the part number of a short-run chart, with a
// vertical line where the part changes. Each draw function returns what it drew, in numbers.

const finite = (v) => v !== null && v !== undefined && Number.isFinite(v);

/** " · A-100" for a point of a short-run chart, "" otherwise (the tooltip's part). */
export function partOf(point) {
  return point.part ? ` · ${point.part}` : '';
}

/** A new path through the points' `key` values, broken where a value is missing (the caller strokes
 * it). Returns the points it passes through. */
export function traceSeries({ ctx, xOf, y }, points, key) {
  let count = 0;
  let started = false;
  ctx.beginPath();
  for (let i = 0; i < points.length; i++) {
    const v = points[i][key];
    if (!finite(v)) {
      started = false;
      continue;
    }
    if (started) ctx.lineTo(xOf(i), y(v));
    else ctx.moveTo(xOf(i), y(v));
    started = true;
    count += 1;
  }
  return count;
}

/** The faint series (`raw`): thin line and small dots. Returns the points drawn. */
export function drawFaint({ ctx, xOf, y }, points, color) {
  ctx.save();
  ctx.globalAlpha = 0.35;
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = 1;
  const count = traceSeries({ ctx, xOf, y }, points, 'raw');
  ctx.stroke();
  ctx.beginPath();
  for (let i = 0; i < points.length; i++) {
    const v = points[i].raw;
    if (!finite(v)) continue;
    ctx.moveTo(xOf(i) + 2, y(v));
    ctx.arc(xOf(i), y(v), 2, 0, Math.PI * 2);
  }
  ctx.fill();
  ctx.restore();
  return count;
}

/** The second series (`y2`) in its own colour, its rule breakers (`rules2`) red. Returns the points drawn. */
export function drawSecond({ ctx, xOf, y }, points, C, r) {
  ctx.strokeStyle = C.series2;
  ctx.fillStyle = C.series2;
  ctx.lineWidth = 2;
  const count = traceSeries({ ctx, xOf, y }, points, 'y2');
  ctx.stroke();
  for (let i = 0; i < points.length; i++) {
    const p = points[i];
    if (!finite(p.y2)) continue;
    const bad = p.rules2 && p.rules2.length;
    ctx.fillStyle = bad ? C.bad : C.series2;
    ctx.beginPath();
    ctx.arc(xOf(i), y(p.y2), bad ? r + 2.5 : r, 0, Math.PI * 2);
    ctx.fill();
  }
  return count;
}

/** Where the part changes: [{index, part}], the first point's part first. Points without a part (an older
 * gateway, or a characteristic with one part) give none; a point whose part is unknown keeps the run. */
export function changeovers(points) {
  const runs = [];
  let current = null;
  for (let i = 0; i < points.length; i++) {
    const part = points[i].part;
    if (part === null || part === undefined || part === '' || part === current) continue;
    runs.push({ index: i, part: String(part) });
    current = part;
  }
  return runs;
}

/** A vertical line before each new part and the part's name at the foot of the plot, beside it (the top
 * holds the rule numbers and the tooltip). */
export function drawChangeovers({ ctx, xOf, top, bottom, step, left, right }, runs, color) {
  if (!runs.length) return;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, right - left, bottom - top); // a long part number stops at the plot's edge
  ctx.clip();
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = 1.5;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'bottom';
  let labelEnd = -Infinity;
  for (const { index, part } of runs) {
    const x = index === 0 ? xOf(0) - step / 2 : (xOf(index - 1) + xOf(index)) / 2;
    if (index > 0) {
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, bottom);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    const lx = Math.max(x + 4, left + 4, labelEnd + 6); // a quick back-and-forth must not print names over each other
    const name = part.length > 20 ? `${part.slice(0, 19)}…` : part;
    const width = ctx.measureText(name).width;
    const height = parseFloat(ctx.font) || 14;
    ctx.fillStyle = 'rgba(10,14,20,0.85)'; // legible over a limit line
    ctx.fillRect(lx - 3, bottom - height - 6, width + 6, height + 4);
    ctx.fillStyle = color;
    ctx.fillText(name, lx, bottom - 3);
    labelEnd = lx + width;
  }
  ctx.restore();
}
