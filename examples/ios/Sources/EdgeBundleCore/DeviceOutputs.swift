import Foundation

/// Writes outputs.npz in the device-outputs format (docs/device-outputs.md; keys and dtypes in
/// edgedistill/schemas/device-outputs.schema.json) — the same keys as the Kotlin example writes.
public enum DeviceOutputs {
    /// The arrays of one outputs file, in order.
    public static func arrays(_ r: GoldenResult, modelSha256: String, device: String) throws -> [(String, NpyArray)] {
        var flat: [Float] = []
        for (i, row) in r.logits.enumerated() {
            guard row.count == r.numClasses else { throw BundleError("row \(i) has \(row.count) outputs, expected \(r.numClasses)") }
            flat += row
        }
        var out: [(String, NpyArray)] = []
        out.append(("logits", NpyArray(flat, shape: [r.logits.count, r.numClasses])))
        out.append(("model_sha256", NpyArray(string: modelSha256)))
        out.append(("device", NpyArray(string: device)))
        out.append(("runtime", NpyArray(string: r.runtime)))
        out.append(("load_ms", NpyArray([r.loadMs], shape: [])))
        out.append(("first_inference_ms", NpyArray([r.firstInferenceMs], shape: [])))
        out.append(("warmup", NpyArray([Int64(r.warmup)], shape: [])))
        out.append(("latency_ms", NpyArray(r.latencyMs, shape: [r.latencyMs.count])))
        return out
    }

    /// Write the outputs file atomically.
    public static func write(_ url: URL, _ r: GoldenResult, modelSha256: String, device: String) throws {
        try Npy.writeNpz(url, try arrays(r, modelSha256: modelSha256, device: device))
    }
}

/// Latency statistics as edgedistill's bench defines them (NumPy linear percentiles, population std).
public struct TimingStats {
    let sorted: [Double]
    public init(_ samplesMs: [Double]) throws {
        guard !samplesMs.isEmpty else { throw BundleError("no timed runs") }
        sorted = samplesMs.sorted()
    }
    public var n: Int { sorted.count }
    public var min: Double { sorted.first! }
    public var max: Double { sorted.last! }
    public var mean: Double { sorted.reduce(0, +) / Double(n) }
    public var median: Double { percentile(50) }
    public var std: Double { let m = mean; return (sorted.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(n)).squareRoot() }

    /// The q-th percentile (0–100), linear interpolation between the closest ranks.
    public func percentile(_ q: Double) -> Double {
        let rank = q / 100 * Double(n - 1)
        let lo = Int(rank.rounded(.down)), hi = Swift.min(lo + 1, n - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - Double(lo))
    }

    public var summary: String {
        "n=\(n) " + String(format: "min=%.3f median=%.3f mean=%.3f p90=%.3f p99=%.3f max=%.3f ms",
                           min, median, mean, percentile(90), percentile(99), max)
    }
}

/// Class probabilities and the top label, for an app that shows one prediction.
public enum Predictions {
    public static func softmax(_ logits: [Float]) -> [Float] {
        guard let top = logits.max() else { return logits }
        let e = logits.map { Foundation.exp(Double($0 - top)) }
        let sum = e.reduce(0, +)
        return e.map { Float($0 / sum) }
    }

    public static func top(_ logits: [Float], labels: [String]?) -> (String, Float) {
        let p = softmax(logits)
        let best = p.indices.max { p[$0] < p[$1] } ?? 0
        return (labels.flatMap { best < $0.count ? $0[best] : nil } ?? String(best), p.isEmpty ? 0 : p[best])
    }
}
