import EdgeBundleCore
import ExecuTorch
import Foundation

/// ExecuTorch's Swift API (XNNPACK and Core ML delegates linked in): Module + forward.
public final class ExecuTorchRunner: BundleRunner {
    public let runtime = "executorch"
    let module: Module

    public init(model: URL) { module = Module(filePath: model.path) }

    public func load() throws {
        try module.load("forward")  // load the method now, so the first inference is timed on its own
    }

    public func run(_ inputs: [InputTensor]) throws -> [Float] {
        let values: [ValueConvertible] = inputs.map { (t: InputTensor) -> ValueConvertible in
            switch t.values {
            case .float32(let v): return Tensor<Float>(v, shape: t.shape)
            case .int64(let v): return Tensor<Int64>(v, shape: t.shape)
            case .int32(let v): return Tensor<Int32>(v, shape: t.shape)
            }
        }
        let outputs = try module.forward(values)
        guard let logits: Tensor<Float> = outputs.first?.tensor() else { throw BundleError("the program returned no float tensor") }
        return logits.scalars()
    }
}
