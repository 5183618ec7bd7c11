import Foundation

/// The part of ZIP that .npz needs, in Foundation alone: reading and writing stored (uncompressed)
/// entries with their CRC-32. Compressed entries (np.savez_compressed) are refused with a message.
enum Zip {
    /// (name, bytes) of every entry, from the central directory.
    static func storedEntries(_ data: Data, name: String) throws -> [(String, Data)] {
        let b = [UInt8](data)
        guard b.count >= 22, let eocd = stride(from: b.count - 22, through: max(0, b.count - 65_557), by: -1)
            .first(where: { le32(b, $0) == 0x0605_4b50 }) else { throw BundleError("\(name) is not a zip (.npz) file") }
        let entries = Int(b[eocd + 10]) | Int(b[eocd + 11]) << 8
        var at = Int(le32(b, eocd + 16))
        var out: [(String, Data)] = []
        for _ in 0..<entries {
            guard at + 46 <= b.count, le32(b, at) == 0x0201_4b50 else { throw BundleError("\(name): broken zip directory") }
            let method = Int(b[at + 10]) | Int(b[at + 11]) << 8
            var size = Int(le32(b, at + 20))
            let nameLen = Int(b[at + 28]) | Int(b[at + 29]) << 8
            let extraLen = Int(b[at + 30]) | Int(b[at + 31]) << 8
            let commentLen = Int(b[at + 32]) | Int(b[at + 33]) << 8
            var local = Int(le32(b, at + 42))
            let entryName = String(decoding: b[(at + 46)..<(at + 46 + nameLen)], as: UTF8.self)
            if size == 0xFFFF_FFFF || local == 0xFFFF_FFFF {  // zip64 (NumPy writes it for big members)
                var e = at + 46 + nameLen
                while e + 4 <= at + 46 + nameLen + extraLen {
                    let id = Int(b[e]) | Int(b[e + 1]) << 8, len = Int(b[e + 2]) | Int(b[e + 3]) << 8
                    if id == 1 {
                        var f = e + 4
                        if Int(le32(b, at + 24)) == 0xFFFF_FFFF { f += 8 }  // uncompressed size first
                        if size == 0xFFFF_FFFF { size = Int(le64(b, f)); f += 8 }
                        if local == 0xFFFF_FFFF { local = Int(le64(b, f)) }
                    }
                    e += 4 + len
                }
            }
            guard method == 0 else { throw BundleError("\(name): \(entryName) is compressed; write golden/outputs with np.savez, not savez_compressed") }
            guard local + 30 <= b.count else { throw BundleError("\(name): broken zip entry") }
            let start = local + 30 + (Int(b[local + 26]) | Int(b[local + 27]) << 8) + (Int(b[local + 28]) | Int(b[local + 29]) << 8)
            guard start + size <= b.count else { throw BundleError("\(name): truncated entry \(entryName)") }
            out.append((entryName, Data(b[start..<(start + size)])))
            at += 46 + nameLen + extraLen + commentLen
        }
        return out
    }

    /// A zip of stored entries.
    static func stored(_ entries: [(String, Data)]) -> Data {
        var out = Data(), directory = Data()
        for (name, body) in entries {
            let n = Array(name.utf8), crc = crc32(body), offset = out.count
            // flags, method (0 = stored), time, date, CRC-32, sizes, name length, extra length
            var common: [UInt8] = []
            for field in [bytes16(0), bytes16(0), bytes16(0), bytes16(0), bytes32(crc), bytes32(UInt32(body.count)),
                          bytes32(UInt32(body.count)), bytes16(n.count), bytes16(0)] { common += field }
            var local: [UInt8] = bytes32(0x0403_4b50)
            local += bytes16(20)
            local += common
            local += n
            out.append(contentsOf: local)
            out.append(body)
            var central: [UInt8] = bytes32(0x0201_4b50)
            for field in [bytes16(20), bytes16(20), common, bytes16(0), bytes16(0), bytes16(0), bytes32(0),
                          bytes32(UInt32(offset)), n] { central += field }
            directory.append(contentsOf: central)
        }
        let dirOffset = out.count
        out.append(directory)
        var end: [UInt8] = []
        for field in [bytes32(0x0605_4b50), bytes16(0), bytes16(0), bytes16(entries.count), bytes16(entries.count),
                      bytes32(UInt32(directory.count)), bytes32(UInt32(dirOffset)), bytes16(0)] { end += field }
        out.append(contentsOf: end)
        return out
    }

    static func crc32(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }
}
