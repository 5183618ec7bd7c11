import EdgeBundleCore
import Foundation

/// The runner for a bundle's format: Core ML for .mlpackage, ExecuTorch for .pte.
public enum BundleRunners {
    public static func open(bundle: URL, manifest: Manifest) throws -> BundleRunner {
        let model = try manifest.modelURL(bundle: bundle)
        guard FileManager.default.fileExists(atPath: model.path) else {
            throw BundleError("bundle \(bundle.lastPathComponent) is missing its model file \(manifest.modelFile)")
        }
        switch manifest.format {
        case "coreml": return CoreMLRunner(model: model, outputName: manifest.outputs.first?.name)
        case "executorch": return ExecuTorchRunner(model: model)
        default: throw BundleError("this app runs coreml (.mlpackage) and executorch (.pte) bundles, not \(manifest.format)")
        }
    }
}
