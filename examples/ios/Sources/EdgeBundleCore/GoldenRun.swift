import Foundation

/// One input tensor for one call: its manifest name, shape and values.
public struct InputTensor {
    public enum Values { case float32([Float]), int64([Int64]), int32([Int32]) }
    public let name: String
    public let shape: [Int]
    public let values: Values
}

/// A model runtime behind one protocol: Core ML (.mlpackage) or ExecuTorch (.pte). `run` takes the
/// inputs in manifest order and returns the first output as float logits.
public protocol BundleRunner {
    /// The runtime's name, written into the outputs (coreml, executorch).
    var runtime: String { get }
    /// Load (and for Core ML, compile) the model; timed apart from the first inference.
    func load() throws
    func run(_ inputs: [InputTensor]) throws -> [Float]
}

/// What one golden run measured: per-row logits and the timings of the timed runs.
public struct GoldenResult {
    public let logits: [[Float]]
    public let numClasses: Int
    public let runtime: String
    public let loadMs: Double
    public let firstInferenceMs: Double
    public let warmup: Int
    public let latencyMs: [Double]
}

/// The golden-input harness shared by the XCTest and the app: each golden row's inputs as the
/// manifest says (tokenizing `text` for text bundles); load, warm up, time, then every row once.
public final class GoldenRun {
    let manifest: Manifest
    let golden: [String: NpyArray]
    let tokenizer: WordPieceTokenizer?
    public let rows: Int

    public init(bundle: URL, manifest: Manifest) throws {
        self.manifest = manifest
        golden = Dictionary(try Npy.readNpz(bundle.appendingPathComponent("golden/golden.npz")), uniquingKeysWith: { a, _ in a })
        tokenizer = try manifest.wordPiece.map { try WordPieceTokenizer.forBundle(bundle, $0) }
        guard let first = golden[manifest.inputs.first?.name ?? ""] ?? golden["text"], let n = first.shape.first else {
            throw BundleError("golden.npz has no '\(manifest.inputs.first?.name ?? "?")' and no 'text'")
        }
        rows = n
    }

    /// The inputs of golden row `i`, in manifest order, with the manifest's dtypes.
    public func inputs(_ i: Int) throws -> [InputTensor] {
        let encoding = try tokenizer.flatMap { t in try golden["text"].map { try t.encode(try $0.strings()[i]) } }
        return try build(i, encoding)
    }

    /// The inputs for a text typed by a user (text bundles only).
    public func inputs(text: String) throws -> [InputTensor] {
        guard let t = tokenizer else { throw BundleError("this bundle has no tokenizer: it does not take text") }
        return try build(0, try t.encode(text))
    }

    func build(_ i: Int, _ encoding: Encoding?) throws -> [InputTensor] {
        try manifest.inputs.map { (spec: TensorSpec) -> InputTensor in
            let shape = try spec.sampleShape()
            let perRow = shape.reduce(1, *)
            let fromText: [Int64]?
            switch spec.name {
            case "input_ids": fromText = encoding?.inputIds
            case "attention_mask": fromText = encoding?.attentionMask
            case "token_type_ids": fromText = encoding?.tokenTypeIds
            default: fromText = nil
            }
            guard let array = golden[spec.name] ?? (fromText == nil ? nil : NpyArray(fromText!, shape: [1, perRow])) else {
                throw BundleError("golden.npz has no input '\(spec.name)'")
            }
            let rowRange = fromText != nil ? 0..<perRow : (i * perRow)..<((i + 1) * perRow)
            switch spec.dtype {
            case "float32", "float16", "int8", "uint8":  // quantized inputs are fed as floats; the runtime converts
                return InputTensor(name: spec.name, shape: shape, values: .float32(Array(try array.floats()[rowRange])))
            case "int64":
                return InputTensor(name: spec.name, shape: shape, values: .int64(Array((try fromText ?? array.int64s())[rowRange])))
            case "int32":
                return InputTensor(name: spec.name, shape: shape, values: .int32((try fromText ?? array.int64s())[rowRange].map { Int32($0) }))
            default:
                throw BundleError("input \(spec.name): dtype \(spec.dtype) is not supported by the example runners")
            }
        }
    }

    /// Load, warm up, time `runs` calls on row 0, then run every golden row once (milliseconds).
    public func measure(_ runner: BundleRunner, warmup: Int, runs: Int) throws -> GoldenResult {
        let clock = ContinuousClock()
        func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }
        let loadMs = ms(try clock.measure { try runner.load() })
        let first = try inputs(0)
        let firstMs = ms(try clock.measure { _ = try runner.run(first) })
        for _ in 0..<warmup { _ = try runner.run(first) }
        let latency = try (0..<runs).map { _ in ms(try clock.measure { _ = try runner.run(first) }) }
        let logits = try (0..<rows).map { try runner.run(try inputs($0)) }
        return GoldenResult(logits: logits, numClasses: manifest.numClasses, runtime: runner.runtime, loadMs: loadMs,
                            firstInferenceMs: firstMs, warmup: warmup, latencyMs: latency)
    }
}
