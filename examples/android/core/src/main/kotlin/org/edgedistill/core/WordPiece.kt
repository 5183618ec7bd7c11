package org.edgedistill.core

import java.io.File
import java.text.Normalizer

/** The token ids and attention mask of one text, padded to max_length. */
class Encoding(val inputIds: LongArray, val attentionMask: LongArray) {
    /** BERT's segment ids: all 0 for a single sentence. */
    val tokenTypeIds: LongArray get() = LongArray(inputIds.size)
}

/**
 * BERT tokenization as Hugging Face's BertTokenizerFast does it: clean the text, space out CJK
 * characters, strip accents (NFD, drop combining marks), lowercase, split on whitespace and
 * punctuation, then greedy longest-match WordPiece with "##" continuations; [CLS] … [SEP],
 * truncated and padded to max_length. Works on Unicode code points, so characters outside the
 * BMP (emoji, rare CJK) count as one character each, as they do in Python and Rust.
 */
class WordPieceTokenizer(private val vocab: Map<String, Int>, private val s: WordPieceSettings) {
    private val unkId = id(s.unkToken)
    private val maxCharsPerWord = 100

    companion object {
        /** The tokenizer of a text bundle: its vocab file (one token per line, id = line number). */
        fun forBundle(bundle: File, settings: WordPieceSettings): WordPieceTokenizer {
            val file = Manifest.inside(bundle, settings.vocabFile)
            if (!file.isFile) throw BundleError("bundle $bundle is missing its vocabulary ${settings.vocabFile}")
            return WordPieceTokenizer(readVocab(file.readText(Charsets.UTF_8)), settings)
        }

        /** vocab.txt -> token -> id (the first line is id 0; a repeated token keeps its last id, as HF does). */
        fun readVocab(text: String): Map<String, Int> {
            val vocab = HashMap<String, Int>()
            text.split("\n").let { if (it.last() == "") it.dropLast(1) else it }
                .forEachIndexed { i, line -> vocab[line.removeSuffix("\r")] = i }
            return vocab
        }
    }

    private fun id(token: String): Int = vocab[token] ?: throw BundleError("the vocabulary has no '$token'")

    /** Ids and mask for one text. */
    fun encode(text: String): Encoding {
        val ids = ArrayList<Int>()
        for (word in basicTokens(text)) ids.addAll(wordPiece(word))
        val room = s.maxLength - 2
        val kept = if (s.truncation && ids.size > room) ids.subList(0, maxOf(room, 0)) else ids
        val all = ArrayList<Int>()
        all.add(id(s.clsToken)); all.addAll(kept); all.add(id(s.sepToken))
        val length = if (s.padding == "max_length") maxOf(s.maxLength, all.size) else all.size
        val pad = id(s.padToken).toLong()
        return Encoding(LongArray(length) { if (it < all.size) all[it].toLong() else pad },
                        LongArray(length) { if (it < all.size) 1L else 0L })
    }

    /** The words and punctuation marks of a text, after normalization. */
    fun basicTokens(text: String): List<String> {
        val cleaned = StringBuilder()
        forEachCodePoint(text) { cp ->
            when {
                cp == 0 || cp == 0xFFFD || isControl(cp) -> Unit
                isWhitespace(cp) -> cleaned.append(' ')
                s.tokenizeChineseChars && isCjk(cp) -> cleaned.append(' ').appendCodePoint(cp).append(' ')
                else -> cleaned.appendCodePoint(cp)
            }
        }
        var normalized = cleaned.toString()
        if (s.stripAccents ?: s.doLowerCase) normalized = stripAccents(normalized)
        if (s.doLowerCase) normalized = lowercase(normalized)
        val words = ArrayList<String>()
        val word = StringBuilder()
        forEachCodePoint(normalized) { cp ->
            when {
                isWhitespace(cp) -> flush(word, words)
                isPunctuation(cp) -> { flush(word, words); words.add(String(Character.toChars(cp))) }
                else -> word.appendCodePoint(cp)
            }
        }
        flush(word, words)
        return words
    }

    /** Greedy longest-match pieces of one word; a word with an unmatchable part is one [UNK]. */
    fun wordPiece(word: String): List<Int> {
        val points = word.codePoints().toArray()
        if (points.size > maxCharsPerWord) return listOf(unkId)
        val pieces = ArrayList<Int>()
        var start = 0
        while (start < points.size) {
            var end = points.size
            var found: Int? = null
            while (start < end) {
                val piece = (if (start > 0) "##" else "") + String(points, start, end - start)
                found = vocab[piece]
                if (found != null) break
                end--
            }
            if (found == null) return listOf(unkId)
            pieces.add(found)
            start = end
        }
        return pieces
    }

    private fun flush(word: StringBuilder, words: MutableList<String>) {
        if (word.isNotEmpty()) { words.add(word.toString()); word.setLength(0) }
    }

    private inline fun forEachCodePoint(text: String, action: (Int) -> Unit) {
        var k = 0
        while (k < text.length) {
            val cp = text.codePointAt(k)
            action(cp)
            k += Character.charCount(cp)
        }
    }

    private fun stripAccents(text: String): String {
        val out = StringBuilder()
        forEachCodePoint(Normalizer.normalize(text, Normalizer.Form.NFD)) { cp ->
            if (Character.getType(cp) != Character.NON_SPACING_MARK.toInt()) out.appendCodePoint(cp)
        }
        return out.toString()
    }

    // Per code point, as the Rust tokenizer does; U+0130 is the one letter whose lowercase is two
    // code points (i + combining dot), which Character.toLowerCase(int) cannot return.
    private fun lowercase(text: String): String {
        val out = StringBuilder()
        forEachCodePoint(text) { cp -> if (cp == 0x130) out.append("i\u0307") else out.appendCodePoint(Character.toLowerCase(cp)) }
        return out.toString()
    }

    private fun isWhitespace(cp: Int): Boolean =
        cp == 0x20 || cp == 0x09 || cp == 0x0A || cp == 0x0D || Character.isWhitespace(cp) ||
            Character.getType(cp) == Character.SPACE_SEPARATOR.toInt()

    private fun isControl(cp: Int): Boolean {
        if (cp == 0x09 || cp == 0x0A || cp == 0x0D) return false
        return when (Character.getType(cp)) {
            Character.CONTROL.toInt(), Character.FORMAT.toInt(), Character.UNASSIGNED.toInt(),
            Character.PRIVATE_USE.toInt(), Character.SURROGATE.toInt() -> true
            else -> false
        }
    }

    private fun isPunctuation(cp: Int): Boolean {
        if (cp in 33..47 || cp in 58..64 || cp in 91..96 || cp in 123..126) return true
        return when (Character.getType(cp)) {
            Character.CONNECTOR_PUNCTUATION.toInt(), Character.DASH_PUNCTUATION.toInt(), Character.START_PUNCTUATION.toInt(),
            Character.END_PUNCTUATION.toInt(), Character.INITIAL_QUOTE_PUNCTUATION.toInt(),
            Character.FINAL_QUOTE_PUNCTUATION.toInt(), Character.OTHER_PUNCTUATION.toInt() -> true
            else -> false
        }
    }

    private fun isCjk(cp: Int): Boolean =
        cp in 0x4E00..0x9FFF || cp in 0x3400..0x4DBF || cp in 0x20000..0x2A6DF || cp in 0x2A700..0x2B73F ||
            cp in 0x2B740..0x2B81F || cp in 0x2B820..0x2CEAF || cp in 0xF900..0xFAFF || cp in 0x2F800..0x2FA1F
}
