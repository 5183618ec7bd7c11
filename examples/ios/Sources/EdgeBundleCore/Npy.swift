import Foundation

/// One NumPy array: `descr` is NumPy's dtype string ('<f4', '<i8', '<U12', …).
public struct NpyArray {
    public enum Values {
        case float32([Float]), float64([Double]), int64([Int64]), int32([Int32]), bytes([UInt8]), strings([String])
    }
    public let descr: String
    public let shape: [Int]
    public let values: Values

    public init(descr: String, shape: [Int], values: Values) { self.descr = descr; self.shape = shape; self.values = values }
    public init(_ v: [Float], shape: [Int]) { self.init(descr: "<f4", shape: shape, values: .float32(v)) }
    public init(_ v: [Double], shape: [Int]) { self.init(descr: "<f8", shape: shape, values: .float64(v)) }
    public init(_ v: [Int64], shape: [Int]) { self.init(descr: "<i8", shape: shape, values: .int64(v)) }
    /// A 0-d string array, as np.array("iphone15") is.
    public init(string: String) {
        self.init(descr: "<U\(max(string.unicodeScalars.count, 1))", shape: [], values: .strings([string]))
    }

    public var count: Int { shape.reduce(1, *) }

    /// The values as float32 (numbers only).
    public func floats() throws -> [Float] {
        switch values {
        case .float32(let v): return v
        case .float64(let v): return v.map { Float($0) }
        case .int64(let v): return v.map { Float($0) }
        case .int32(let v): return v.map { Float($0) }
        case .bytes(let v): return descr == "|i1" ? v.map { Float(Int8(bitPattern: $0)) } : v.map { Float($0) }
        case .strings: throw BundleError("array of \(descr) is not numeric")
        }
    }

    /// The values as int64 (integers only: token ids, masks, labels).
    public func int64s() throws -> [Int64] {
        switch values {
        case .int64(let v): return v
        case .int32(let v): return v.map { Int64($0) }
        case .bytes(let v): return descr == "|i1" ? v.map { Int64(Int8(bitPattern: $0)) } : v.map { Int64($0) }
        default: throw BundleError("array of \(descr) is not an integer array")
        }
    }

    public func strings() throws -> [String] {
        guard case .strings(let v) = values else { throw BundleError("array of \(descr) is not a string array") }
        return v
    }
}

/// Reads and writes .npy (little-endian, C order) and .npz (a zip of .npy members, as np.savez
/// writes it: stored, not compressed — the exporter writes golden.npz that way).
public enum Npy {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// Parse one .npy file's bytes.
    public static func read(_ data: Data, name: String = "array") throws -> NpyArray {
        let b = [UInt8](data)
        guard b.count >= 10, Array(b[0..<6]) == magic else { throw BundleError("\(name) is not a .npy array") }
        let major = b[6]
        let headerLen = major == 1 ? Int(b[8]) | Int(b[9]) << 8 : Int(le32(b, 8))
        let start = major == 1 ? 10 : 12
        guard start + headerLen <= b.count, let header = String(bytes: b[start..<start + headerLen], encoding: .utf8) else {
            throw BundleError("\(name): unreadable .npy header")
        }
        guard let descr = capture(header, "'descr':\\s*'([^']+)'") else { throw BundleError("\(name): no dtype in the header") }
        if capture(header, "'fortran_order':\\s*(True|False)") == "True" { throw BundleError("\(name): Fortran order is not supported") }
        guard let dims = capture(header, "'shape':\\s*\\(([^)]*)\\)") else { throw BundleError("\(name): no shape in the header") }
        let shape = dims.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.compactMap { Int($0) }
        let count = shape.reduce(1, *)
        let body = Array(b[(start + headerLen)...])
        func need(_ width: Int) throws { if body.count < count * width { throw BundleError("\(name): truncated data") } }
        let values: NpyArray.Values
        switch descr {
        case "<f4": try need(4); values = .float32((0..<count).map { Float(bitPattern: le32(body, 4 * $0)) })
        case "<f8": try need(8); values = .float64((0..<count).map { Double(bitPattern: le64(body, 8 * $0)) })
        case "<i8": try need(8); values = .int64((0..<count).map { Int64(bitPattern: le64(body, 8 * $0)) })
        case "<i4": try need(4); values = .int32((0..<count).map { Int32(bitPattern: le32(body, 4 * $0)) })
        case "|i1", "|u1", "|b1": try need(1); values = .bytes(Array(body[0..<count]))
        case let d where d.hasPrefix("<U"):
            let width = Int(d.dropFirst(2)) ?? 0
            try need(4 * width)
            values = .strings((0..<count).map { (i: Int) -> String in
                var s = String.UnicodeScalarView()
                for k in 0..<width {
                    let cp = le32(body, 4 * (i * width + k))
                    if cp != 0, let u = Unicode.Scalar(cp) { s.append(u) }  // NumPy pads with NUL
                }
                return String(s)
            })
        default: throw BundleError("\(name): dtype \(descr) is not supported (little-endian f4, f8, i8, i4, i1, u1, b1, U)")
        }
        return NpyArray(descr: descr, shape: shape, values: values)
    }

    /// One array as .npy 1.0 bytes, header padded to 64 bytes as NumPy writes it.
    public static func write(_ a: NpyArray) -> Data {
        let dims = a.shape.map(String.init).joined(separator: ", ") + (a.shape.count == 1 ? "," : "")
        var header = "{'descr': '\(a.descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let pad = (64 - (10 + header.utf8.count + 1) % 64) % 64
        header += String(repeating: " ", count: pad) + "\n"
        var out = Data(magic + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        out.append(contentsOf: Array(header.utf8))
        switch a.values {
        case .float32(let v): v.forEach { out.append(contentsOf: bytes32($0.bitPattern)) }
        case .float64(let v): v.forEach { out.append(contentsOf: bytes64($0.bitPattern)) }
        case .int64(let v): v.forEach { out.append(contentsOf: bytes64(UInt64(bitPattern: $0))) }
        case .int32(let v): v.forEach { out.append(contentsOf: bytes32(UInt32(bitPattern: $0))) }
        case .bytes(let v): out.append(contentsOf: v)
        case .strings(let v):
            let width = Int(a.descr.dropFirst(2)) ?? 0
            for s in v {
                let points = Array(s.unicodeScalars.prefix(width))
                points.forEach { out.append(contentsOf: bytes32($0.value)) }
                for _ in points.count..<width { out.append(contentsOf: bytes32(0)) }
            }
        }
        return out
    }

    /// Every array of an .npz, by name (without .npy), in file order.
    public static func readNpz(_ url: URL) throws -> [(String, NpyArray)] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw BundleError("\(url.path) not found") }
        return try Zip.storedEntries(data, name: url.lastPathComponent).map { (entry: (String, Data)) -> (String, NpyArray) in
            let key = entry.0.hasSuffix(".npy") ? String(entry.0.dropLast(4)) : entry.0
            let array = try read(entry.1, name: "\(url.lastPathComponent):\(key)")
            return (key, array)
        }
    }

    /// Write an .npz atomically (a temporary file renamed into place).
    public static func writeNpz(_ url: URL, _ arrays: [(String, NpyArray)]) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Zip.stored(arrays.map { ("\($0.0).npy", write($0.1)) }).write(to: url, options: .atomic)
    }

    private static func capture(_ text: String, _ pattern: String) -> String? {
        guard let re = try? NSRegularExpression(pattern: pattern),
              let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              let r = Range(m.range(at: 1), in: text) else { return nil }
        return String(text[r])
    }
}

func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
    UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
}

func le64(_ b: [UInt8], _ at: Int) -> UInt64 { UInt64(le32(b, at)) | UInt64(le32(b, at + 4)) << 32 }
func bytes32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
func bytes64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
func bytes16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff)] }
