@testable import EdgeBundleCore
import XCTest

/// Foundation-only tests of the platform-independent part (the same cases as the Kotlin CoreTest):
/// `swift test --filter EdgeBundleCoreTests` on macOS, or on Linux with a Swift toolchain.
final class CoreTests: XCTestCase {
    let manifestText = """
    {"schema_version": 1, "format": "executorch", "backend": "xnnpack", "quantization": "int8",
     "model_file": "model.pte", "sha256": "ab\\u00e9", "size_bytes": 10,
     "inputs": [{"name": "input_ids", "shape": ["batch", 16], "dtype": "int64"},
                {"name": "attention_mask", "shape": [1, 16], "dtype": "int64"}],
     "outputs": [{"name": "logits", "shape": ["batch", 3], "dtype": "float32"}],
     "num_classes": 3, "labels": ["a", "b", "c"], "golden": {"count": 4},
     "preprocessing": {"kind": "wordpiece", "vocab_file": "tokenizer/vocab.txt", "do_lower_case": true,
                       "strip_accents": null, "tokenize_chinese_chars": true, "max_length": 16}}
    """

    func testManifestGivesInputsLabelsAndTokenizerSettings() throws {
        let m = try Manifest.parse(Data(manifestText.utf8))
        XCTAssertEqual(m.inputs.map(\.name), ["input_ids", "attention_mask"])
        XCTAssertEqual(try m.inputs[0].sampleShape(), [1, 16])
        XCTAssertEqual(m.labels, ["a", "b", "c"])
        XCTAssertEqual(m.sha256, "ab\u{e9}")
        XCTAssertEqual(m.goldenCount, 4)
        XCTAssertEqual(m.wordPiece?.maxLength, 16)
        XCTAssertNil(m.wordPiece?.stripAccents)
    }

    func testManifestMissingFieldIsNamed() {
        XCTAssertThrowsError(try Manifest.parse(Data(#"{"format": "litert"}"#.utf8))) { error in
            XCTAssertTrue("\(error)".contains("'quantization'"), "\(error)")
        }
    }

    func testNpzRoundTripsEveryDtype() throws {
        let arrays: [(String, NpyArray)] = [
            ("f", NpyArray([1.5, -2, 3, 4, 5, 6] as [Float], shape: [2, 3])),
            ("d", NpyArray([0.25] as [Double], shape: [1])),
            ("i", NpyArray([Int64.max, -1], shape: [2])),
            ("s", NpyArray(string: "pixel-8 \u{e9}\u{1F600}")),
            ("t", NpyArray(descr: "<U3", shape: [2], values: .strings(["ab", "\u{4e2d}\u{6587}x"]))),
        ]
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(UUID().uuidString + ".npz")
        try Npy.writeNpz(url, arrays)
        let back = Dictionary(try Npy.readNpz(url), uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(try Npy.readNpz(url).map(\.0), ["f", "d", "i", "s", "t"])
        XCTAssertEqual(try back["f"]!.floats(), [1.5, -2, 3, 4, 5, 6])
        XCTAssertEqual(back["f"]!.shape, [2, 3])
        XCTAssertEqual(try back["i"]!.int64s(), [Int64.max, -1])
        XCTAssertEqual(try back["s"]!.strings(), ["pixel-8 \u{e9}\u{1F600}"])
        XCTAssertEqual(back["s"]!.shape, [])
        XCTAssertEqual(try back["t"]!.strings(), ["ab", "\u{4e2d}\u{6587}x"])
    }

    func testZipCrcIsTheStandardOne() {
        XCTAssertEqual(Zip.crc32(Data("123456789".utf8)), 0xCBF4_3926)
    }

    func tokenizer(maxLength: Int = 12, lower: Bool = true) -> WordPieceTokenizer {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "un", "##aff", "##able", ",", "!", "cafe", "\u{4e2d}"]
        return WordPieceTokenizer(vocab: WordPieceTokenizer.readVocab(vocab.joined(separator: "\n") + "\n"),
                                  settings: WordPieceSettings(vocabFile: "v", doLowerCase: lower, stripAccents: nil,
                                                              tokenizeChineseChars: true, maxLength: maxLength, padding: "max_length",
                                                              truncation: true, clsToken: "[CLS]", sepToken: "[SEP]",
                                                              padToken: "[PAD]", unkToken: "[UNK]"))
    }

    func testWordPieceSplitsLowercasesStripsAndPads() throws {
        let e = try tokenizer().encode("Hello, UNAFFABLE world! Caf\u{e9} \u{4e2d}\u{6587} xyz")
        XCTAssertEqual(e.inputIds, [2, 4, 9, 6, 7, 8, 5, 10, 11, 12, 1, 3])
        XCTAssertEqual(e.attentionMask, Array(repeating: 1, count: 12))
        let short = try tokenizer().encode("hello")
        XCTAssertEqual(short.inputIds, [2, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(short.attentionMask, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    func testCasedTokenizerKeepsCase() throws {
        XCTAssertEqual(try tokenizer(maxLength: 4, lower: false).encode("Hello").inputIds, [2, 1, 3, 0])
    }

    func testTimingStatsMatchNumpyDefinitions() throws {
        let s = try TimingStats([4, 1, 3, 2, 10])
        XCTAssertEqual(s.median, 3, accuracy: 1e-12)
        XCTAssertEqual(s.mean, 4, accuracy: 1e-12)
        XCTAssertEqual(s.percentile(90), 7.6, accuracy: 1e-12)
        XCTAssertEqual(s.std, 10.0.squareRoot(), accuracy: 1e-12)
    }

    func testManifestPathsMayNotLeaveTheBundle() throws {
        let bundle = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: bundle, withIntermediateDirectories: true)
        XCTAssertEqual(try Manifest.inside(bundle, "model.pte").lastPathComponent, "model.pte")
        for bad in ["../model.pte", "/etc/passwd", "tokenizer/../../x", ""] {
            XCTAssertThrowsError(try Manifest.inside(bundle, bad), bad)
        }
    }

    func testTopLabel() {
        let (label, p) = Predictions.top([1, 1000, 3], labels: ["cat", "dog", "eel"])
        XCTAssertEqual(label, "dog")
        XCTAssertEqual(p, 1, accuracy: 1e-6)
    }
}
