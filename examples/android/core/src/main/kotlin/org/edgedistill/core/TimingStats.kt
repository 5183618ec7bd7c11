package org.edgedistill.core

/**
 * Latency statistics over timed runs, defined as edgedistill's bench defines them (NumPy's
 * linear-interpolation percentiles, population standard deviation), so numbers printed on the
 * phone and in bench.md agree.
 */
class TimingStats(samplesMs: DoubleArray) {
    private val sorted = samplesMs.sortedArray()
    val n = sorted.size
    val min get() = sorted.first()
    val max get() = sorted.last()
    val mean get() = sorted.sum() / n
    val median get() = percentile(50.0)
    val std: Double get() {
        val m = mean
        return Math.sqrt(sorted.map { (it - m) * (it - m) }.sum() / n)
    }

    init {
        if (n == 0) throw IllegalArgumentException("no timed runs")
    }

    /** The q-th percentile (0–100), linear interpolation between the closest ranks. */
    fun percentile(q: Double): Double {
        val rank = q / 100.0 * (n - 1)
        val lo = Math.floor(rank).toInt()
        val hi = Math.min(lo + 1, n - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo)
    }

    /** One line for a log: n, min, median, mean, p90, p99, max in milliseconds. */
    fun summary(): String = "n=$n min=%.3f median=%.3f mean=%.3f p90=%.3f p99=%.3f max=%.3f ms"
        .format(min, median, mean, percentile(90.0), percentile(99.0), max)
}
