// A small canvas chart of connections and events per second over the last minutes: two lines, no library.

const SECONDS = 300;

export class Chart {
  constructor(canvas) {
    this.canvas = canvas;
    this.points = []; // {t (s), connections, rate}
    this.lastEvents = null;
    this.lastAt = null;
  }

  /** Records a stats sample (from a feed batch); keeps one point per second. */
  add(atMs, stats) {
    const t = Math.floor(atMs / 1000);
    if (this.lastEvents !== null && atMs > this.lastAt) {
      const rate = ((stats.events_published - this.lastEvents) * 1000) / (atMs - this.lastAt);
      const last = this.points[this.points.length - 1];
      if (last && last.t === t) {
        last.connections = stats.connections;
        last.rate = Math.max(0, (last.rate * last.n + rate) / (last.n + 1));
        last.n += 1;
      } else {
        this.points.push({ t, connections: stats.connections, rate: Math.max(0, rate), n: 1 });
      }
    }
    this.lastEvents = stats.events_published;
    this.lastAt = atMs;
    while (this.points.length && this.points[0].t < t - SECONDS) this.points.shift();
  }

  /** The events-per-second rate of the last complete second. */
  rateNow() {
    const p = this.points[this.points.length - 2] || this.points[this.points.length - 1];
    return p ? p.rate : 0;
  }

  draw() {
    const c = this.canvas;
    if (!c.isConnected || c.offsetParent === null) return; // hidden: nothing to draw
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const line = css.getPropertyValue('--line').trim();
    const muted = css.getPropertyValue('--muted').trim();
    g.strokeStyle = line;
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = 8 + ((h - 24) * i) / 4;
      g.beginPath();
      g.moveTo(40, y);
      g.lineTo(w - 40, y);
      g.stroke();
    }
    const now = this.points.length ? this.points[this.points.length - 1].t : 0;
    const x = (t) => 40 + ((w - 80) * (t - (now - SECONDS))) / SECONDS;
    const series = [
      ['connections', css.getPropertyValue('--accent').trim(), 'left'],
      ['rate', css.getPropertyValue('--ok').trim(), 'right'],
    ];
    g.font = '11px system-ui, sans-serif';
    for (const [key, color, side] of series) {
      const max = Math.max(1, ...this.points.map((p) => p[key]));
      const y = (v) => 8 + (h - 24) * (1 - v / max);
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.beginPath();
      this.points.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key]))));
      g.stroke();
      g.fillStyle = muted;
      g.textAlign = side === 'left' ? 'right' : 'left';
      g.fillText(String(Math.round(max)), side === 'left' ? 36 : w - 36, 14);
    }
    g.textAlign = 'left';
    g.fillText('5 min ago', 40, h - 2);
    g.textAlign = 'right';
    g.fillText('now', w - 40, h - 2);
  }
}
