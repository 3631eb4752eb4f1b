// The andon and interlock outputs (config `outputs:`), one small lamp each in the alarm view's summary.
// Their state comes from GET /api/spc/outputs/ (the `outputs` section of /healthz, answered 200 even while
// a source is down), read every few seconds: a lamp shows what the gateway last wrote to the PLC, and
// blinks yellow while the writes fail (OUTPUT_FAILED).
import { t } from './i18n.js';
import { esc } from './format.js';

export const OUTPUTS_POLL_MS = 2000;

export class OutputLamps {
  constructor(tile, list, token, isLive) {
    this.tile = tile;
    this.token = token;
    this.isLive = isLive; // asked only while the feed is live: a gateway away would fill the console
    this.absent = false; // a gateway without outputs support (404): not asked again
    this.list = list;
    this.outputs = null; // name -> stats, as /healthz last said; null: not read yet
  }

  start() {
    this.poll();
    setInterval(() => this.poll(), OUTPUTS_POLL_MS);
  }

  async poll() {
    if (this.absent || !this.isLive()) return;
    try {
      const query = this.token ? `?token=${encodeURIComponent(this.token)}` : '';
      const response = await fetch(`/api/spc/outputs/${query}`, {
        cache: 'no-store', headers: this.token ? { Authorization: `Bearer ${this.token}` } : {},
      });
      if (response.status === 404) {
        this.absent = true;
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      this.outputs = body && typeof body.outputs === 'object' ? body.outputs : null;
    } catch {
      this.outputs = this.outputs && Object.fromEntries(
        Object.keys(this.outputs).map((name) => [name, { state: null }])); // unknown until it answers
    }
    this.render();
  }

  render() {
    const names = this.outputs ? Object.keys(this.outputs) : [];
    this.tile.hidden = names.length === 0;
    this.tile.parentElement.classList.toggle('with-outputs', names.length > 0);
    this.list.innerHTML = names.map((name) => {
      const o = this.outputs[name] || {};
      const state = o.failing ? 'failing' : o.state === 'on' ? 'on' : o.state === 'off' ? 'off' : 'unknown';
      const label = t(`output_${state}`);
      return `<span class="lamp lamp-${state}" title="${esc(name)}: ${esc(label)}" data-output="${esc(name)}">`
        + `<i aria-hidden="true"></i><span class="lamp-name">${esc(name)}</span>`
        + '</span>';
    }).join('');
  }
}
