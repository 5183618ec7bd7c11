import Foundation

/// The token ids and attention mask of one text, padded to max_length.
public struct Encoding {
    public let inputIds: [Int64]
    public let attentionMask: [Int64]
    /// BERT's segment ids: all 0 for a single sentence.
    public var tokenTypeIds: [Int64] { Array(repeating: 0, count: inputIds.count) }
}

/// BERT tokenization as Hugging Face's BertTokenizerFast does it (the same steps as the Kotlin
/// example's WordPieceTokenizer): clean, space out CJK, strip accents (NFD, drop Mn), lowercase,
/// split on whitespace and punctuation, greedy longest-match WordPiece with "##", [CLS] … [SEP],
/// truncation and padding to max_length. Works on Unicode scalars, as Python and Rust count characters.
public struct WordPieceTokenizer {
    let vocab: [String: Int]
    let s: WordPieceSettings
    let maxCharsPerWord = 100

    public init(vocab: [String: Int], settings: WordPieceSettings) { self.vocab = vocab; self.s = settings }

    /// The tokenizer of a text bundle: its vocab file (one token per line, id = line number).
    public static func forBundle(_ bundle: URL, _ settings: WordPieceSettings) throws -> WordPieceTokenizer {
        let url = try Manifest.inside(bundle, settings.vocabFile)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw BundleError("bundle \(bundle.path) is missing its vocabulary \(settings.vocabFile)")
        }
        return WordPieceTokenizer(vocab: readVocab(String(decoding: data, as: UTF8.self)), settings: settings)
    }

    /// vocab.txt -> token -> id (a repeated token keeps its last id, as Hugging Face does).
    public static func readVocab(_ text: String) -> [String: Int] {
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        var vocab: [String: Int] = [:]
        for (i, line) in lines.enumerated() { vocab[line.hasSuffix("\r") ? String(line.dropLast()) : line] = i }
        return vocab
    }

    func id(_ token: String) throws -> Int {
        guard let v = vocab[token] else { throw BundleError("the vocabulary has no '\(token)'") }
        return v
    }

    /// Ids and mask for one text.
    public func encode(_ text: String) throws -> Encoding {
        var ids: [Int] = []
        for word in basicTokens(text) { ids += try wordPiece(word) }
        let room = max(s.maxLength - 2, 0)
        if s.truncation && ids.count > room { ids = Array(ids.prefix(room)) }
        let cls = try id(s.clsToken), sep = try id(s.sepToken)
        let all = [cls] + ids + [sep]
        let length = s.padding == "max_length" ? max(s.maxLength, all.count) : all.count
        let pad = Int64(try id(s.padToken))
        return Encoding(inputIds: (0..<length).map { $0 < all.count ? Int64(all[$0]) : pad },
                        attentionMask: (0..<length).map { Int64($0 < all.count ? 1 : 0) })
    }

    /// The words and punctuation marks of a text, after normalization.
    public func basicTokens(_ text: String) -> [String] {
        var cleaned = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            if u.value == 0 || u.value == 0xFFFD || isControl(u) { continue }
            if isWhitespace(u) { cleaned.append(" ") }
            else if s.tokenizeChineseChars && isCjk(u) { cleaned.append(" "); cleaned.append(u); cleaned.append(" ") }
            else { cleaned.append(u) }
        }
        var normalized = String(cleaned)
        if s.stripAccents ?? s.doLowerCase {
            normalized = String(String.UnicodeScalarView(normalized.decomposedStringWithCanonicalMapping.unicodeScalars
                .filter { $0.properties.generalCategory != .nonspacingMark }))
        }
        if s.doLowerCase {  // per scalar, full mapping (U+0130 -> i + U+0307), as the Rust tokenizer does
            normalized = normalized.unicodeScalars.map { $0.properties.lowercaseMapping }.joined()
        }
        var words: [String] = [], word = String.UnicodeScalarView()
        func flush() { if !word.isEmpty { words.append(String(word)); word = String.UnicodeScalarView() } }
        for u in normalized.unicodeScalars {
            if isWhitespace(u) { flush() }
            else if isPunctuation(u) { flush(); words.append(String(u)) }
            else { word.append(u) }
        }
        flush()
        return words
    }

    /// Greedy longest-match pieces of one word; a word with an unmatchable part is one [UNK].
    public func wordPiece(_ word: String) throws -> [Int] {
        let points = Array(word.unicodeScalars)
        let unk = try id(s.unkToken)
        if points.count > maxCharsPerWord { return [unk] }
        var pieces: [Int] = [], start = 0
        while start < points.count {
            var end = points.count, found: Int? = nil
            while start < end {
                let piece = (start > 0 ? "##" : "") + String(String.UnicodeScalarView(points[start..<end]))
                if let v = vocab[piece] { found = v; break }
                end -= 1
            }
            guard let v = found else { return [unk] }
            pieces.append(v)
            start = end
        }
        return pieces
    }

    func isWhitespace(_ u: Unicode.Scalar) -> Bool {
        u == " " || u == "\t" || u == "\n" || u == "\r" || u.properties.isWhitespace || u.properties.generalCategory == .spaceSeparator
    }

    func isControl(_ u: Unicode.Scalar) -> Bool {
        if u == "\t" || u == "\n" || u == "\r" { return false }
        switch u.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    func isPunctuation(_ u: Unicode.Scalar) -> Bool {
        let c = u.value
        if (33...47).contains(c) || (58...64).contains(c) || (91...96).contains(c) || (123...126).contains(c) { return true }
        switch u.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    func isCjk(_ u: Unicode.Scalar) -> Bool {
        let ranges: [ClosedRange<UInt32>] = [0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
                                             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F]
        return ranges.contains { $0.contains(u.value) }
    }
}
