/** The demos' console output: numbered bold steps and indented detail lines. */

/** `text` in bold on a terminal. */
export const bold = (text: string): string => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);

/** A numbered step heading. */
export const step = (n: number, text: string): void => console.log(`\n${bold(`[${n}] ${text}`)}`);

/** Detail lines under a step, indented. */
export const show = (text: string): void => console.log(text.replace(/^/gm, '    '));
