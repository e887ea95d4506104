// The one error type for bad safetensors content: a malformed file or index when reading, tensors
// that cannot be written. The message is one line: the file, then the reason.

export class SafetensorsFormatError extends Error {
  override name = "SafetensorsFormatError";
  /** The file (or directory) the problem is in. */
  readonly file: string;
  /** What is wrong, without the file name. */
  readonly reason: string;

  constructor(file: string, reason: string) {
    super(`${file}: ${reason}`.replace(/[\r\n]+/g, " "));
    this.file = file;
    this.reason = reason;
  }
}

/** A tensor or key name as it appears in messages: JSON-quoted (one line), long names cut short. */
export function quote(name: string): string {
  const shown = name.length > 120 ? `${name.slice(0, 117)}...` : name;
  return JSON.stringify(shown);
}
