/** How the CLI talks: results on stdout (JSON with --json, tables for people), everything else on stderr. */

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** Left-aligned columns, two spaces apart, under an upper-case header. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  process.stdout.write([line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join("\n") + "\n");
}

export function note(message: string): void {
  process.stderr.write(message + "\n");
}

/** A one-line progress bar on stderr, drawn only when stderr is a terminal. */
export function progressBar(total: number): { update(done: number, detail: string): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  const width = 30;
  return {
    update(done, detail) {
      if (!tty) return;
      const filled = total === 0 ? width : Math.round((done / total) * width);
      process.stderr.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${detail}`);
    },
    end() {
      if (tty) process.stderr.write("\n");
    },
  };
}
