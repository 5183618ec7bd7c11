package org.edgedistill.core

/**
 * Affine int8/uint8 tensors (LiteRT's int8 I/O): real = scale * (q - zeroPoint). Rounds half to
 * even (Math.rint), as NumPy's round does in edgedistill's host runner, so phone and host agree.
 */
object Quantization {
    /** Float values to int8 (or uint8 when [unsigned]) with the tensor's scale and zero point. */
    fun quantize(values: FloatArray, scale: Float, zeroPoint: Int, unsigned: Boolean): ByteArray {
        if (!(scale > 0f)) throw BundleError("an int8 tensor without a positive scale cannot be fed floats")
        val lo = if (unsigned) 0 else -128
        val hi = if (unsigned) 255 else 127
        return ByteArray(values.size) {
            val q = Math.rint((values[it] / scale).toDouble()) + zeroPoint
            Math.max(lo.toDouble(), Math.min(hi.toDouble(), q)).toInt().toByte()
        }
    }

    /** int8 (or uint8) values back to floats. */
    fun dequantize(values: ByteArray, scale: Float, zeroPoint: Int, unsigned: Boolean): FloatArray =
        FloatArray(values.size) {
            val q = if (unsigned) values[it].toInt() and 0xff else values[it].toInt()
            scale * (q - zeroPoint)
        }
}

/** Class probabilities and the top label, for an app that shows one prediction. */
object Predictions {
    /** Softmax of one row of logits (max-subtracted, so large logits do not overflow). */
    fun softmax(logits: FloatArray): FloatArray {
        if (logits.isEmpty()) return logits
        var top = logits[0]
        for (v in logits) if (v > top) top = v  // not max(): its signature differs across Kotlin versions
        val e = DoubleArray(logits.size) { Math.exp((logits[it] - top).toDouble()) }
        val sum = e.sum()
        return FloatArray(e.size) { (e[it] / sum).toFloat() }
    }

    /** The most likely class: its label (or index when the manifest has no labels) and probability. */
    fun top(logits: FloatArray, labels: List<String>?): Pair<String, Float> {
        val p = softmax(logits)
        var best = 0
        for (i in p.indices) if (p[i] > p[best]) best = i
        return Pair(labels?.getOrNull(best) ?: best.toString(), p[best])
    }
}
