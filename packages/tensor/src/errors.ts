// Typed errors: every mistake a user can make names the op, the shapes or the fix in one line.
// Catch `BaloraError` for all of them, or a subclass for one kind.

export class BaloraError extends Error {
  override name = "BaloraError";
}

/** Shapes that do not fit the op (broadcast, matmul inner dims, reshape sizes, axes). */
export class ShapeError extends BaloraError {
  override name = "ShapeError";
}

/** A dtype the op cannot take (e.g. a bf16 tensor where f32 is required). */
export class DTypeError extends BaloraError {
  override name = "DTypeError";
}

/** A tensor used after `dispose()` (or after the scope that owned it ended). */
export class DisposedError extends BaloraError {
  override name = "DisposedError";
}

/** An index out of range: a gather id, a slice bound, an axis. */
export class IndexError extends BaloraError {
  override name = "IndexError";
}

/** Tensors from two different backends (CPU oracle vs WebGPU) met in one op. */
export class BackendMismatchError extends BaloraError {
  override name = "BackendMismatchError";
}

/** No WebGPU adapter, a lost device, or a WebGPU validation failure. */
export class DeviceError extends BaloraError {
  override name = "DeviceError";
}

/** Something the caller asked for is not meaningful (bad argument value). */
export class ArgumentError extends BaloraError {
  override name = "ArgumentError";
}

export const fmtShape = (s: readonly number[]): string => `[${s.join(",")}]`;
