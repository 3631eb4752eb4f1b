// Line icons drawn inline (no icon font, no emoji font needed on the kiosk).
const svg = (body) =>
  `<svg viewBox="0 0 24 24" width="1em" height="1em" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round">${body}</svg>`;

export const ICONS = {
  soundOn: svg('<path d="M4 9h4l5-4v14l-5-4H4z"/><path d="M16.5 8.5a5 5 0 0 1 0 7"/><path d="M19 6a8.5 8.5 0 0 1 0 12"/>'),
  soundOff: svg('<path d="M4 9h4l5-4v14l-5-4H4z"/><path d="M17 9l5 6M22 9l-5 6"/>'),
  silence: svg('<path d="M6 16V11a6 6 0 0 1 9.5-4.9M18 11v5l2 2H6"/><path d="M10 20a2 2 0 0 0 4 0"/><path d="M3 3l18 18"/>'),
  globe: svg('<circle cx="12" cy="12" r="9"/><path d="M3 12h18M12 3a14 14 0 0 1 0 18M12 3a14 14 0 0 0 0 18"/>'),
  warning: svg('<path d="M12 3l10 18H2z"/><path d="M12 10v5M12 18v.5"/>'),
};
