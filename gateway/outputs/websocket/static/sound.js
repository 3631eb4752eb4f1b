// The horn: tones made with WebAudio (no sound files), by priority, until silenced.
// Browsers only allow audio after a user gesture, so an operator taps "enable sound" once.
// Silencing stops the horn without acknowledging anything; a new alert sounds it again.

const PATTERNS = {
  // [frequency Hz, duration s, gap s] ... ; repeat: seconds between repetitions (0 = once)
  5: { tones: [[880, 0.18, 0.06], [660, 0.18, 0.06], [880, 0.18, 0.06], [660, 0.18, 0.3]], repeat: 2.5 },
  4: { tones: [[740, 0.22, 0.12], [740, 0.22, 0.3]], repeat: 5 },
  3: { tones: [[620, 0.3, 0.3]], repeat: 0 },
  2: { tones: [[520, 0.16, 0.08], [660, 0.2, 0.3]], repeat: 0 },
  1: { tones: [[520, 0.12, 0.3]], repeat: 0 },
};

export class Annunciator extends EventTarget {
  constructor() {
    super();
    this.context = null;
    this.enabled = false;
    this.silenced = false;
    this.sounding = 0; // the priority the horn repeats for, 0 when quiet
    this.timer = null;
    this.played = 0; // patterns played, for tests and diagnostics
  }

  /** Must run inside a user gesture (tap). */
  enable() {
    if (!this.context) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return false;
      this.context = new Ctx();
    }
    if (this.context.state === 'suspended') this.context.resume();
    this.enabled = true;
    this._changed();
    return true;
  }

  /** Stop the horn until the next new alert. */
  silence() {
    this.silenced = true;
    this._stop();
    this._changed();
  }

  /** A new alert arrived: sound its pattern (and keep repeating for high priorities). */
  alert(priority) {
    this.silenced = false;
    const p = Math.min(5, Math.max(1, Math.round(Number(priority)) || 3));
    if (p >= this.sounding) this._start(p);
    this._changed();
  }

  /** The highest unacknowledged priority now; acknowledging everything stops the horn. */
  update(highestUnacked) {
    if (this.sounding && highestUnacked < this.sounding) {
      this._stop();
      if (highestUnacked >= 4 && !this.silenced) this._start(highestUnacked, false);
      this._changed();
    }
  }

  _start(p, playNow = true) {
    this._stop();
    const pattern = PATTERNS[p];
    if (playNow) this._play(pattern);
    if (pattern.repeat > 0) {
      this.sounding = p;
      this.timer = setInterval(() => this._play(pattern), pattern.repeat * 1000);
    }
  }

  _stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.sounding = 0;
  }

  _play(pattern) {
    this.played += 1;
    if (!this.enabled || !this.context) return;
    const ctx = this.context;
    let at = ctx.currentTime + 0.02;
    for (const [freq, duration, gap] of pattern.tones) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'square';
      osc.frequency.value = freq;
      // Short ramps: a hard-edged square wave clicks.
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.25, at + 0.01);
      gain.gain.setValueAtTime(0.25, at + duration - 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + duration);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + duration + 0.01);
      at += duration + gap;
    }
  }

  _changed() {
    this.dispatchEvent(new Event('change'));
  }
}
