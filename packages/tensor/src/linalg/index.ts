// The linear-algebra module: thin QR, exact and randomized SVD, symmetric eigendecomposition and
// differentiable top-k singular values, on WebGPU (f32) and the float64 CPU oracle through one code path.
export { qr } from "./qr.js";
export { svd, svdLowRank, type SvdLowRankOptions, type SvdOptions, type SvdResult } from "./svd.js";
export { eigh, type EighOptions } from "./eigh.js";
export { svdvals, type SvdvalsOptions } from "./svdvals.js";
