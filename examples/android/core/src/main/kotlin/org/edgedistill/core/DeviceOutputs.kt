package org.edgedistill.core

import java.io.File

/** What one golden run measured: per-row logits and the timings of the timed runs. */
class GoldenResult(
    val logits: Array<FloatArray>, val numClasses: Int, val runtime: String,
    val loadMs: Double, val firstInferenceMs: Double, val warmup: Int, val latencyMs: DoubleArray
)

/**
 * Writes outputs.npz in the device-outputs format (docs/device-outputs.md; keys and dtypes in
 * edgedistill/schemas/device-outputs.schema.json): `logits` (N, num_classes) float32, row i for
 * golden input i; `model_sha256` and `device` strings; and the timings `edgedistill bench --app` reads.
 */
object DeviceOutputs {
    /** The arrays of one outputs file. */
    fun arrays(result: GoldenResult, modelSha256: String, device: String): Map<String, NpyArray> {
        val n = result.logits.size
        val flat = FloatArray(n * result.numClasses)
        result.logits.forEachIndexed { i, row ->
            if (row.size != result.numClasses) throw BundleError("row $i has ${row.size} outputs, expected ${result.numClasses}")
            System.arraycopy(row, 0, flat, i * result.numClasses, row.size)
        }
        val out = LinkedHashMap<String, NpyArray>()
        out["logits"] = NpyArray.of(flat, n.toLong(), result.numClasses.toLong())
        out["model_sha256"] = NpyArray.scalar(modelSha256)
        out["device"] = NpyArray.scalar(device)
        out["runtime"] = NpyArray.scalar(result.runtime)
        out["load_ms"] = NpyArray.scalar(result.loadMs)
        out["first_inference_ms"] = NpyArray.scalar(result.firstInferenceMs)
        out["warmup"] = NpyArray.scalar(result.warmup.toLong())
        out["latency_ms"] = NpyArray.of(result.latencyMs, result.latencyMs.size.toLong())
        return out
    }

    /** Write the outputs file (atomically: a partial file is never left under [file]'s name). */
    fun write(file: File, result: GoldenResult, modelSha256: String, device: String) =
        Npy.writeNpz(file, arrays(result, modelSha256, device))
}
