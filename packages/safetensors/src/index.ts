// @balora/safetensors public API (Node entry): stream tensors out of .safetensors files and HF checkpoint
// directories (paths, URLs, memory), write them byte-identical to the reference writer, convert 16-bit floats.
export { DTYPES, type Dtype, type DtypeArrays, type TensorArray, bytesPerElement } from "./dtypes.js";
export { writeFileAtomically, writeTextAtomically, type WriteBytes } from "./atomic-file.js";
export { SafetensorsFormatError } from "./errors.js";
export { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from "./float16.js";
export { MAX_HEADER_BYTES, type TensorInfo } from "./header.js";
export { type OrderedJson, PyFloat, pythonJsonDump, type PythonJsonOptions } from "./json.js";
export { SafetensorsFile, type Tensor, parseSafetensors } from "./file.js";
export { type TensorToWrite, type TensorsToWrite, type WriteOptions, serializeSafetensors } from "./writer.js";
export {
  Checkpoint,
  DEFAULT_MAX_SHARD_SIZE,
  INDEX_FILE_NAME,
  SINGLE_FILE_NAME,
  type SaveCheckpointOptions,
  type SavedCheckpoint,
  shardFileName,
} from "./checkpoint.js";
export {
  type BlobLike,
  type ByteSource,
  type CheckpointInput,
  type Directory,
  type DirectoryInput,
  type FileData,
  type FileInput,
  type FileListLike,
  type FilesToWrite,
  readText,
} from "./source.js";
export { type UrlOptions, urlDirectory, urlSource } from "./fetch.js";
export { openCheckpoint, openDirectory, openSafetensors, saveCheckpoint, writeFiles, writeSafetensors } from "./node.js";
