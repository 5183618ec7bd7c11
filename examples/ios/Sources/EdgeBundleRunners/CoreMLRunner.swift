import CoreML
import EdgeBundleCore
import Foundation

/// Core ML: compile the .mlpackage on the device, load it for all compute units, predict with
/// MLMultiArray inputs named as the manifest names them (the exporter names them so).
public final class CoreMLRunner: BundleRunner {
    public let runtime = "coreml"
    let modelURL: URL
    let outputName: String?
    var model: MLModel?

    public init(model: URL, outputName: String?) { self.modelURL = model; self.outputName = outputName }

    public func load() throws {
        let compiled = try MLModel.compileModel(at: modelURL)
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .all
        model = try MLModel(contentsOf: compiled, configuration: configuration)
    }

    public func run(_ inputs: [InputTensor]) throws -> [Float] {
        guard let model else { throw BundleError("load() before run()") }
        var features: [String: MLFeatureValue] = [:]
        for t in inputs {
            let shape = t.shape.map { NSNumber(value: $0) }
            let array: MLMultiArray
            switch t.values {
            case .float32(let v):
                array = try MLMultiArray(shape: shape, dataType: .float32)
                for (k, x) in v.enumerated() { array[k] = NSNumber(value: x) }
            case .int64(let v):  // Core ML has no int64 arrays: token ids go in as int32
                array = try MLMultiArray(shape: shape, dataType: .int32)
                for (k, x) in v.enumerated() { array[k] = NSNumber(value: Int32(x)) }
            case .int32(let v):
                array = try MLMultiArray(shape: shape, dataType: .int32)
                for (k, x) in v.enumerated() { array[k] = NSNumber(value: x) }
            }
            features[t.name] = MLFeatureValue(multiArray: array)
        }
        let result = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
        let name = outputName.flatMap { result.featureNames.contains($0) ? $0 : nil } ?? result.featureNames.sorted().first ?? ""
        guard let out = result.featureValue(for: name)?.multiArrayValue else { throw BundleError("the model returned no array '\(name)'") }
        return (0..<out.count).map { out[$0].floatValue }
    }
}
