package org.edgedistill.core

/**
 * A small JSON reader for manifest.json (no org.json: that class is Android-only, and this file
 * must compile and be tested on a plain JVM). Objects become Map<String, Any?>, arrays List<Any?>,
 * numbers Double, plus String, Boolean and null.
 */
object Json {
    /** Parse one JSON document; throws [BundleError] on malformed text. */
    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipSpace()
        val value = p.value()
        p.skipSpace()
        if (p.i != text.length) p.fail("trailing text")
        return value
    }

    private class Parser(val s: String) {
        var i = 0

        fun fail(what: String): Nothing = throw BundleError("manifest.json is not valid JSON: $what at offset $i")

        fun skipSpace() {
            while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
        }

        fun value(): Any? {
            if (i >= s.length) fail("unexpected end")
            return when (s[i]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        fun literal(word: String, result: Any?): Any? {
            if (!s.startsWith(word, i)) fail("unexpected character")
            i += word.length
            return result
        }

        fun obj(): Map<String, Any?> {
            val out = LinkedHashMap<String, Any?>()
            i++
            skipSpace()
            if (i < s.length && s[i] == '}') { i++; return out }
            while (true) {
                skipSpace()
                if (i >= s.length || s[i] != '"') fail("expected a key")
                val key = string()
                skipSpace()
                if (i >= s.length || s[i] != ':') fail("expected ':'")
                i++
                skipSpace()
                out[key] = value()
                skipSpace()
                if (i >= s.length) fail("unexpected end")
                if (s[i] == ',') { i++; continue }
                if (s[i] == '}') { i++; return out }
                fail("expected ',' or '}'")
            }
        }

        fun array(): List<Any?> {
            val out = ArrayList<Any?>()
            i++
            skipSpace()
            if (i < s.length && s[i] == ']') { i++; return out }
            while (true) {
                skipSpace()
                out.add(value())
                skipSpace()
                if (i >= s.length) fail("unexpected end")
                if (s[i] == ',') { i++; continue }
                if (s[i] == ']') { i++; return out }
                fail("expected ',' or ']'")
            }
        }

        fun string(): String {
            val b = StringBuilder()
            i++
            while (true) {
                if (i >= s.length) fail("unterminated string")
                val c = s[i++]
                when (c) {
                    '"' -> return b.toString()
                    '\\' -> {
                        if (i >= s.length) fail("unterminated escape")
                        when (val e = s[i++]) {
                            '"', '\\', '/' -> b.append(e)
                            'b' -> b.append('\b')
                            'f' -> b.append('\u000C')
                            'n' -> b.append('\n')
                            'r' -> b.append('\r')
                            't' -> b.append('\t')
                            'u' -> {
                                if (i + 4 > s.length) fail("short \\u escape")
                                val hex = s.substring(i, i + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                                b.appendCodePoint(hex)  // surrogate pairs arrive as two escapes, joined by the builder
                                i += 4
                            }
                            else -> fail("bad escape")
                        }
                    }
                    else -> b.append(c)
                }
            }
        }

        fun number(): Double {
            val start = i
            while (i < s.length && (s[i].isDigit() || s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' || s[i] == 'E')) i++
            return s.substring(start, i).toDoubleOrNull() ?: fail("bad number")
        }
    }
}

/** A bundle the example cannot use: one line naming what is wrong. */
class BundleError(message: String) : Exception(message)
