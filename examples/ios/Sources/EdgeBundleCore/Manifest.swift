import Foundation

/// A bundle the example cannot use: one line naming what is wrong.
public struct BundleError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One model input or output as manifest.json describes it; a "batch" first dimension is dynamic.
public struct TensorSpec {
    public let name: String
    public let shape: [Any]
    public let dtype: String

    /// The shape for one sample: the batch dimension (named or numbered) becomes 1.
    public func sampleShape() throws -> [Int] {
        try shape.enumerated().map { (i, d) -> Int in
            if i == 0 { return 1 }
            guard let n = d as? NSNumber else { throw BundleError("input \(name): dimension \(i) is '\(d)', not a number") }
            return n.intValue
        }
    }
}

/// The WordPiece settings of a text bundle (manifest.preprocessing with kind "wordpiece").
public struct WordPieceSettings {
    public let vocabFile: String
    public let doLowerCase: Bool
    public let stripAccents: Bool?
    public let tokenizeChineseChars: Bool
    public let maxLength: Int
    public let padding: String
    public let truncation: Bool
    public let clsToken: String, sepToken: String, padToken: String, unkToken: String
}

/// The fields of manifest.json the example apps read. Every key is read through `required` or
/// `optional` (the contract test greps those calls and checks each key against manifest.schema.json).
public struct Manifest {
    public let format: String
    public let quantization: String
    public let modelFile: String
    public let sha256: String
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    public let numClasses: Int
    public let labels: [String]?
    public let preprocessingKind: String?
    public let wordPiece: WordPieceSettings?
    public let goldenCount: Int

    /// Read `bundle/manifest.json`.
    public static func read(bundle: URL) throws -> Manifest {
        let url = bundle.appendingPathComponent("manifest.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { throw BundleError("bundle \(bundle.path) has no manifest.json") }
        return try parse(data)
    }

    /// Parse manifest bytes; a missing or mistyped field is a BundleError naming it.
    public static func parse(_ data: Data) throws -> Manifest {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch { throw BundleError("manifest.json is not valid JSON") }
        guard let m = object as? [String: Any] else { throw BundleError("manifest.json is not an object") }
        let pre = optional(m, "preprocessing") as? [String: Any] ?? [:]
        let golden = optional(m, "golden") as? [String: Any] ?? [:]
        let kind = optional(pre, "kind") as? String
        let settings: WordPieceSettings? = try (kind == "wordpiece" ? wordPiece(pre) : nil)
        return Manifest(
            format: try string(m, "format"),
            quantization: try string(m, "quantization"),
            modelFile: try string(m, "model_file"),
            sha256: try string(m, "sha256"),
            inputs: try tensors(try required(m, "inputs")),
            outputs: try tensors(try required(m, "outputs")),
            numClasses: try int(m, "num_classes"),
            labels: (optional(m, "labels") as? [Any])?.map { "\($0)" },
            preprocessingKind: kind,
            wordPiece: settings,
            goldenCount: (optional(golden, "count") as? NSNumber)?.intValue ?? -1
        )
    }

    /// The model file inside `bundle`.
    public func modelURL(bundle: URL) throws -> URL { try Manifest.inside(bundle, modelFile) }

    /// A bundle-relative path from the manifest, refused when it leaves the bundle (absolute, or `..`).
    public static func inside(_ bundle: URL, _ relative: String) throws -> URL {
        let root = bundle.standardizedFileURL.resolvingSymlinksInPath().path
        let file = bundle.appendingPathComponent(relative).standardizedFileURL.resolvingSymlinksInPath()
        guard !relative.hasPrefix("/"), file.path.hasPrefix(root + "/") else {
            throw BundleError("manifest path '\(relative)' points outside the bundle")
        }
        return file
    }

    private static func tensors(_ value: Any) throws -> [TensorSpec] {
        guard let list = value as? [[String: Any]] else { throw BundleError("inputs/outputs must be lists of objects") }
        return try list.map { t in
            guard let shape = try required(t, "shape") as? [Any] else { throw BundleError("a tensor's shape is not a list") }
            return TensorSpec(name: try string(t, "name"), shape: shape, dtype: try string(t, "dtype"))
        }
    }

    private static func wordPiece(_ p: [String: Any]) throws -> WordPieceSettings {
        guard let lower = try required(p, "do_lower_case") as? Bool else { throw BundleError("do_lower_case is not a boolean") }
        return WordPieceSettings(
            vocabFile: try string(p, "vocab_file"), doLowerCase: lower,
            stripAccents: optional(p, "strip_accents") as? Bool,
            tokenizeChineseChars: optional(p, "tokenize_chinese_chars") as? Bool ?? true,
            maxLength: try int(p, "max_length"),
            padding: optional(p, "padding") as? String ?? "max_length",
            truncation: optional(p, "truncation") as? Bool ?? true,
            clsToken: optional(p, "cls_token") as? String ?? "[CLS]", sepToken: optional(p, "sep_token") as? String ?? "[SEP]",
            padToken: optional(p, "pad_token") as? String ?? "[PAD]", unkToken: optional(p, "unk_token") as? String ?? "[UNK]"
        )
    }

    private static func required(_ m: [String: Any], _ key: String) throws -> Any {
        guard let v = m[key], !(v is NSNull) else { throw BundleError("manifest.json has no '\(key)'") }
        return v
    }

    private static func optional(_ m: [String: Any], _ key: String) -> Any? {
        guard let v = m[key], !(v is NSNull) else { return nil }
        return v
    }

    private static func string(_ m: [String: Any], _ key: String) throws -> String {
        guard let s = try required(m, key) as? String else { throw BundleError("manifest.json: '\(key)' is not a string") }
        return s
    }

    private static func int(_ m: [String: Any], _ key: String) throws -> Int {
        guard let n = try required(m, key) as? NSNumber else { throw BundleError("manifest.json: '\(key)' is not a number") }
        return n.intValue
    }
}
