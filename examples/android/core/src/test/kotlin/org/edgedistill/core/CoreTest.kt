package org.edgedistill.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import java.nio.file.Files

/** Unit tests of the platform-independent part, run on a plain JVM by tests/test_examples_kotlin.py. */
class CoreTest {
    private val manifestText = """
        {"schema_version": 1, "format": "executorch", "backend": "xnnpack", "quantization": "int8",
         "model_file": "model.pte", "sha256": "ab\u00e9", "size_bytes": 10,
         "inputs": [{"name": "input_ids", "shape": ["batch", 16], "dtype": "int64"},
                    {"name": "attention_mask", "shape": [1, 16], "dtype": "int64"}],
         "outputs": [{"name": "logits", "shape": ["batch", 3], "dtype": "float32"}],
         "num_classes": 3, "labels": ["a", "b", "c"], "golden": {"count": 4},
         "preprocessing": {"kind": "wordpiece", "vocab_file": "tokenizer/vocab.txt", "do_lower_case": true,
                           "strip_accents": null, "tokenize_chinese_chars": true, "max_length": 16}}
    """

    @Test fun manifestGivesInputsLabelsAndTokenizerSettings() {
        val m = Manifest.parse(manifestText)
        assertEquals(listOf("input_ids", "attention_mask"), m.inputs.map { it.name })
        assertArrayEquals(longArrayOf(1, 16), m.inputs[0].sampleShape())
        assertEquals(listOf("a", "b", "c"), m.labels)
        assertEquals("ab\u00e9", m.sha256)
        assertEquals(4, m.goldenCount)
        assertEquals(16, m.wordPiece!!.maxLength)
        assertEquals(null, m.wordPiece?.stripAccents)
    }

    @Test fun manifestMissingFieldIsNamed() {
        try {
            Manifest.parse("""{"format": "litert"}""")
            fail("expected an error")
        } catch (e: BundleError) {
            assertTrue(e.message, e.message!!.contains("'quantization'"))
        }
    }

    @Test fun malformedJsonIsABundleError() {
        for (bad in listOf("{", "{\"a\": }", "[1, 2", "{\"a\": 1} x", "\"\\q\"")) {
            try { Json.parse(bad); fail("parsed $bad") } catch (e: BundleError) { assertTrue(e.message!!.startsWith("manifest.json")) }
        }
        assertEquals(mapOf("k" to listOf(1.5, "\u263a", null, true)), Json.parse("""{"k": [1.5, "\u263a", null, true]}"""))
    }

    @Test fun npyRoundTripsEveryDtype() {
        val arrays = linkedMapOf(
            "f" to NpyArray.of(floatArrayOf(1.5f, -2f, 3f, 4f, 5f, 6f), 2, 3),
            "d" to NpyArray.of(doubleArrayOf(0.25), 1),
            "i" to NpyArray.of(longArrayOf(Long.MAX_VALUE, -1), 2),
            "s" to NpyArray.scalar("pixel-8 \u00e9\ud83d\ude00"),
            "t" to NpyArray("<U3", longArrayOf(2), arrayOf("ab", "\u4e2d\u6587x")))
        val file = File(Files.createTempDirectory("npz").toFile(), "a.npz")
        Npy.writeNpz(file, arrays)
        val back = Npy.readNpz(file)
        assertEquals(arrays.keys.toList(), back.keys.toList())
        assertArrayEquals(floatArrayOf(1.5f, -2f, 3f, 4f, 5f, 6f), back.getValue("f").floats(), 0f)
        assertArrayEquals(longArrayOf(2, 3), back.getValue("f").shape)
        assertArrayEquals(longArrayOf(Long.MAX_VALUE, -1), back.getValue("i").longs())
        assertEquals("pixel-8 \u00e9\ud83d\ude00", back.getValue("s").strings()[0])
        assertEquals(0, back.getValue("s").shape.size)
        assertEquals(listOf("ab", "\u4e2d\u6587x"), back.getValue("t").strings().toList())
        assertTrue(file.parentFile.listFiles()!!.none { it.name.endsWith(".partial") })
    }

    @Test fun npyHeaderIsPaddedTo64Bytes() {
        val bytes = Npy.write(NpyArray.of(floatArrayOf(1f), 1))
        val headerEnd = 10 + (bytes[8].toInt() and 0xff)
        assertEquals(0, headerEnd % 64)
        assertEquals(headerEnd + 4, bytes.size)
    }

    @Test fun unsupportedDtypeIsRefused() {
        val bytes = Npy.write(NpyArray.of(floatArrayOf(1f), 1))
        val text = String(bytes, Charsets.ISO_8859_1).replace("'<f4'", "'>f4'")
        try { Npy.read(text.toByteArray(Charsets.ISO_8859_1)); fail("read big-endian") } catch (e: BundleError) {
            assertTrue(e.message!!.contains(">f4"))
        }
    }

    private fun tokenizer(maxLength: Int = 12, lower: Boolean = true): WordPieceTokenizer {
        val vocab = listOf("[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "un", "##aff", "##able", ",", "!", "cafe", "\u4e2d")
        return WordPieceTokenizer(WordPieceTokenizer.readVocab(vocab.joinToString("\n") + "\n"),
            WordPieceSettings("v", lower, null, true, maxLength, "max_length", true, "[CLS]", "[SEP]", "[PAD]", "[UNK]"))
    }

    @Test fun wordPieceSplitsLowercasesStripsAndPads() {
        val e = tokenizer().encode("Hello, UNAFFABLE world! Caf\u00e9 \u4e2d\u6587 xyz")
        // [CLS] hello , un ##aff ##able world ! cafe 中 [UNK](文) [UNK](xyz) [SEP] -> truncated to 12
        assertArrayEquals(longArrayOf(2, 4, 9, 6, 7, 8, 5, 10, 11, 12, 1, 3), e.inputIds)
        assertArrayEquals(LongArray(12) { 1L }, e.attentionMask)
        val short = tokenizer().encode("hello")
        assertArrayEquals(longArrayOf(2, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0), short.inputIds)
        assertArrayEquals(longArrayOf(1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0), short.attentionMask)
    }

    @Test fun casedTokenizerKeepsCase() {
        assertArrayEquals(longArrayOf(2, 1, 3, 0), tokenizer(4, lower = false).encode("Hello").inputIds)
    }

    @Test fun timingStatsMatchNumpyDefinitions() {
        val s = TimingStats(doubleArrayOf(4.0, 1.0, 3.0, 2.0, 10.0))
        assertEquals(1.0, s.min, 0.0); assertEquals(10.0, s.max, 0.0)
        assertEquals(3.0, s.median, 1e-12); assertEquals(4.0, s.mean, 1e-12)
        assertEquals(7.6, s.percentile(90.0), 1e-12)  // np.percentile([1,2,3,4,10], 90)
        assertEquals(Math.sqrt(10.0), s.std, 1e-12)
    }

    @Test fun quantizeRoundsHalfToEvenAndClamps() {
        val q = Quantization.quantize(floatArrayOf(0.25f, 0.75f, 100f, -100f, -0.25f), 0.5f, 3, unsigned = false)
        assertArrayEquals(byteArrayOf(3, 5, 127, -128, 3), q)  // 0.5 -> 0, 1.5 -> 2, -0.5 -> -0 (half to even)
        assertArrayEquals(floatArrayOf(0f, 1f, 62f, -65.5f, 0f), Quantization.dequantize(q, 0.5f, 3, unsigned = false), 0f)
        assertArrayEquals(floatArrayOf(127.5f), Quantization.dequantize(byteArrayOf(-1), 0.5f, 0, unsigned = true), 0f)
    }

    @Test fun topLabelAndSoftmax() {
        val (label, p) = Predictions.top(floatArrayOf(1f, 1000f, 3f), listOf("cat", "dog", "eel"))
        assertEquals("dog", label)
        assertEquals(1f, p, 1e-6f)
        assertEquals(1f, Predictions.softmax(floatArrayOf(0f, 0f)).sum(), 1e-6f)
    }

    @Test fun manifestPathsMayNotLeaveTheBundle() {
        val bundle = Files.createTempDirectory("bundle").toFile()
        assertEquals(File(bundle.canonicalFile, "model.pte"), Manifest.inside(bundle, "model.pte"))
        for (bad in listOf("../model.pte", "/etc/passwd", "tokenizer/../../x", "")) {
            try { Manifest.inside(bundle, bad); fail("accepted '$bad'") } catch (e: BundleError) {
                assertTrue(e.message!!.contains("outside the bundle"))
            }
        }
    }

    @Test fun signatureInputsInArgumentOrder() {
        assertEquals(listOf("args_0", "args_2", "args_10"), argumentOrder(listOf("args_10", "args_0", "args_2")))
        assertEquals(listOf("attention_mask", "input_ids"), argumentOrder(listOf("input_ids", "attention_mask")))
    }
}
