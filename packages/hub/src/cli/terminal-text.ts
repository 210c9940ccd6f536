/**
 * Text from the hub (its error messages, device names and labels a device chose) goes to a
 * terminal: control characters in it could move the cursor, retitle the window or hide what
 * follows. Each one is shown escaped (`\x1b`), as a visible token, instead of being obeyed.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

export function printable(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
